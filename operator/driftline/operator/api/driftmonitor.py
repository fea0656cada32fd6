"""The ``DriftMonitor`` kind: what to watch on a Deployment, and what to do on a breach.

The monitor sidecars keep windows of recent predictions; a DriftMonitor says which features to
compare with the Model's reference profile, with which tests and thresholds, over which window,
and which action a breach triggers (``alert``, ``rollback`` or ``retrain``). Pure: pydantic only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Final, Literal, Self

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from driftline.operator import names
from driftline.operator.api.meta import (
    ApiModel,
    Duration,
    KubernetesName,
    StatusBase,
    ValidationRule,
    cel_rules,
)
from driftline.operator.api.resource import Resource
from driftline.operator.names import KindNames

__all__ = [
    "CategoricalTest",
    "DriftAction",
    "DriftMonitor",
    "DriftMonitorPhase",
    "DriftMonitorSpec",
    "DriftMonitorStatus",
    "DriftTests",
    "FeatureResult",
    "MonitorPerformance",
    "NumericTest",
    "PerformanceResult",
    "PredictionDrift",
    "Segment",
    "SegmentResult",
    "Window",
]

MAX_SEGMENTS: Final = 64
"""Segments per monitor: each one multiplies the work and the metric series."""

P_VALUE_TESTS: Final = frozenset({"ks", "chisquare"})
"""Tests whose threshold is a significance level (drift when p < threshold), so it must be < 1."""


def _significance_rule(tests: str) -> ValidationRule:
    return {
        "rule": f"!(self.method in [{tests}]) || self.threshold < 1.0",
        "message": "the threshold of a p-value test is a significance level: it must be below 1",
        "fieldPath": ".threshold",
    }


def _check_significance(method: str, threshold: float) -> None:
    if method in P_VALUE_TESTS and threshold >= 1:
        raise ValueError(
            f"threshold ({threshold}) of the p-value test {method!r} is a significance level: "
            "it must be below 1"
        )


class NumericTest(ApiModel):
    """The drift test applied to every numeric feature."""

    model_config = ConfigDict(json_schema_extra=cel_rules(_significance_rule("'ks'")))

    method: Literal["psi", "ks", "wasserstein", "jensenshannon"] = "psi"
    """``psi`` (population stability index over reference quantile bins; default), ``ks``
    (Kolmogorov-Smirnov p-value), ``wasserstein`` (earth mover's distance in units of the reference
    standard deviation) or ``jensenshannon`` (distance over reference bins, 0..1)."""

    threshold: Annotated[float, Field(gt=0)] = 0.2
    """Breach bound. For ``ks`` a significance level: drift when the (corrected) p-value is below
    it (e.g. 0.05). For the others a distance: drift when the statistic is above it
    (default 0.2, the usual PSI alarm level)."""

    @model_validator(mode="after")
    def _significance_below_one(self) -> Self:
        _check_significance(self.method, self.threshold)
        return self


class CategoricalTest(ApiModel):
    """The drift test applied to every categorical feature."""

    model_config = ConfigDict(json_schema_extra=cel_rules(_significance_rule("'chisquare'")))

    method: Literal["chisquare", "psi", "jensenshannon"] = "chisquare"
    """``chisquare`` (chi-square test of the window's category counts against the reference;
    default), ``psi`` or ``jensenshannon`` over category frequencies."""

    threshold: Annotated[float, Field(gt=0)] = 0.05
    """Breach bound: a significance level for ``chisquare`` (drift when the corrected p-value is
    below it; default 0.05), a distance for the others (drift when above it)."""

    @model_validator(mode="after")
    def _significance_below_one(self) -> Self:
        _check_significance(self.method, self.threshold)
        return self


class DriftTests(ApiModel):
    """Drift tests per feature type."""

    numeric: NumericTest = Field(default_factory=NumericTest)
    """Test for numeric features (default PSI > 0.2)."""

    categorical: CategoricalTest = Field(default_factory=CategoricalTest)
    """Test for categorical features (default chi-square, p < 0.05)."""


class Window(ApiModel):
    """Which recent predictions one evaluation looks at."""

    size: Annotated[int, Field(ge=10, le=1_000_000)] = 1000
    """Predictions per window (default 1000)."""

    kind: Literal["tumbling", "sliding"] = "sliding"
    """``sliding`` (the last ``size`` predictions, re-evaluated every ``interval``; default) or
    ``tumbling`` (consecutive non-overlapping windows, each evaluated once when full)."""

    max_age: Duration | None = None
    """Predictions older than this leave the window even if it is not full; unset keeps them."""


class PredictionDrift(ApiModel):
    """Drift of the model's output distribution against the predictions on the reference data."""

    model_config = ConfigDict(json_schema_extra=cel_rules(_significance_rule("'chisquare', 'ks'")))

    enabled: bool = True
    """Compare prediction distributions (default true when this block is present)."""

    method: Literal["psi", "jensenshannon", "chisquare", "ks"] = "jensenshannon"
    """Test: ``jensenshannon`` (default), ``psi``, ``chisquare`` (labels) or ``ks`` (values)."""

    threshold: Annotated[float, Field(gt=0)] = 0.1
    """Breach bound (a distance, or a significance level for ``chisquare``/``ks``; default 0.1)."""

    @model_validator(mode="after")
    def _significance_below_one(self) -> Self:
        _check_significance(self.method, self.threshold)
        return self


class Segment(ApiModel):
    """Evaluate drift separately for each value of a categorical feature (e.g. per region)."""

    feature: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    """The categorical feature that splits the traffic."""

    values: Annotated[list[str], Field(max_length=MAX_SEGMENTS)] = Field(default_factory=list)
    """Values that get their own segment; default: every value seen in the reference data."""


class MonitorPerformance(ApiModel):
    """Model quality from delayed labels (feedback joined to predictions by request id)."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            {
                "rule": "!(self.metric in ['accuracy', 'auc']) || "
                "(self.threshold >= 0.0 && self.threshold <= 1.0)",
                "message": "an accuracy or auc threshold must be between 0 and 1",
                "fieldPath": ".threshold",
            }
        )
    )

    metric: Literal["accuracy", "auc", "mae", "rmse"]
    """``accuracy``/``auc`` (classification, higher is better) or ``mae``/``rmse`` (regression,
    lower is better)."""

    threshold: float
    """Breach bound: the lowest acceptable ``accuracy``/``auc``, or the highest acceptable
    ``mae``/``rmse``."""

    min_labels: Annotated[int, Field(ge=1)] = 100
    """Labelled predictions needed before the metric is judged (default 100)."""

    max_label_delay: Duration = "1h"
    """Predictions whose label has not arrived by then are dropped from the join (default
    ``1h``)."""

    @model_validator(mode="after")
    def _fraction_for_fractions(self) -> MonitorPerformance:
        if self.metric in ("accuracy", "auc") and not 0 <= self.threshold <= 1:
            raise ValueError(
                f"an {self.metric} threshold must be between 0 and 1, not {self.threshold}"
            )
        return self


DriftAction = Literal["alert", "rollback", "retrain"]
"""``alert`` (condition, Event and metric only), ``rollback`` (also fail the Deployment's rollout
in progress), ``retrain`` (also trigger RetrainPolicies that name this monitor)."""


class DriftMonitorSpec(ApiModel):
    """The desired state of a DriftMonitor."""

    deployment: KubernetesName
    """Name of the Driftline Deployment (same namespace) to watch."""

    variant: Literal["stable", "canary", "shadow"] = "stable"
    """Which variant's traffic to evaluate (default ``stable``)."""

    features: Annotated[list[str], Field(max_length=256)] = Field(default_factory=list)
    """Features to test, by name; default: every feature of the served Model."""

    tests: DriftTests = Field(default_factory=DriftTests)
    """Test and threshold per feature type."""

    window: Window = Field(default_factory=Window)
    """Window size and kind."""

    min_samples: Annotated[int, Field(ge=1)] = 200
    """Predictions needed in the window before it is judged (default 200); fewer reports
    ``InsufficientData`` instead of a verdict."""

    p_value_correction: Literal["bonferroni", "fdr", "none"] = "bonferroni"
    """Multiple-testing correction for p-value tests across features: ``bonferroni`` (default),
    ``fdr`` (Benjamini-Hochberg) or ``none``."""

    min_drifted_features: Annotated[int, Field(ge=1)] = 1
    """Drifted features needed for the whole window to count as drifted (default 1)."""

    prediction_drift: PredictionDrift | None = None
    """Also test the prediction distribution; unset skips it."""

    segments: Annotated[list[Segment], Field(max_length=MAX_SEGMENTS)] = Field(default_factory=list)
    """Evaluate drift per value of these categorical features as well as overall."""

    performance: MonitorPerformance | None = None
    """Judge model quality from delayed labels; unset skips it."""

    action: DriftAction = "alert"
    """What a breach triggers: ``alert`` (default), ``rollback`` or ``retrain``."""

    interval: Duration = "1m"
    """Time between evaluations (default ``1m``)."""


DriftMonitorPhase = Literal["Pending", "Healthy", "Drifted", "InsufficientData", "Failed"]
"""``Pending`` (not yet evaluated), ``Healthy``, ``Drifted`` (breach), ``InsufficientData`` (fewer
than ``minSamples``), ``Failed`` (cannot evaluate: missing Deployment, Model or profile)."""


class FeatureResult(ApiModel):
    """The drift test result of one feature in the last evaluation."""

    name: str
    """Feature name."""

    test: str
    """Test applied (``psi``, ``ks``, ``chisquare``…)."""

    statistic: float
    """Test statistic (PSI, KS D, chi-square, distance)."""

    p_value: float | None = None
    """p-value after correction, for tests that have one."""

    threshold: float | None = None
    """The bound it was judged against."""

    drifted: bool
    """Whether this feature breached."""


class SegmentResult(ApiModel):
    """Drift within one segment."""

    feature: str
    """The segmenting feature."""

    value: str
    """The segment's value of that feature."""

    samples: Annotated[int, Field(ge=0)]
    """Predictions of this segment in the window."""

    drifted: bool
    """Whether the segment drifted."""

    score: float | None = None
    """Segment drift score (the largest normalised statistic)."""

    drifted_features: list[str] = Field(default_factory=list)
    """Features that drifted within the segment."""


class PerformanceResult(ApiModel):
    """Model quality measured from delayed labels."""

    metric: str
    """Metric name."""

    value: float | None = None
    """Measured value; unset until ``minLabels`` labels arrived."""

    threshold: float
    """The bound it was judged against."""

    labels: Annotated[int, Field(ge=0)] = 0
    """Labelled predictions the value is computed from."""

    breached: bool = False
    """Whether the value is on the wrong side of the bound."""


class DriftMonitorStatus(StatusBase):
    """The verdict of the last evaluation."""

    phase: DriftMonitorPhase | None = None
    """``Pending``, ``Healthy``, ``Drifted``, ``InsufficientData`` or ``Failed``."""

    model: str | None = None
    """The Model whose reference the window was compared with."""

    last_evaluated: datetime | None = None
    """When the last evaluation ran."""

    window_samples: Annotated[int, Field(ge=0)] = 0
    """Predictions in the evaluated window."""

    drifted: bool = False
    """Whether the last evaluation found drift."""

    score: float | None = None
    """Overall drift score: the largest per-feature statistic divided by its threshold
    (1.0 = at the bound)."""

    features: list[FeatureResult] = Field(default_factory=list)
    """Per-feature results."""

    prediction: FeatureResult | None = None
    """Prediction drift result, when enabled."""

    segments: list[SegmentResult] = Field(default_factory=list)
    """Per-segment results."""

    performance: PerformanceResult | None = None
    """Quality from delayed labels, when configured."""

    last_action: datetime | None = None
    """When the breach action last fired (it fires once per breach, not per evaluation)."""


class DriftMonitor(Resource[DriftMonitorSpec, DriftMonitorStatus]):
    """A ``DriftMonitor``: drift and performance checks on a Deployment, and the breach action."""

    kind_names: ClassVar[KindNames] = names.DRIFT_MONITOR
    kind: Literal["DriftMonitor"] = "DriftMonitor"
    """``DriftMonitor``."""
