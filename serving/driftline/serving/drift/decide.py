"""Verdicts: a feature drifts only when its effect size AND its corrected p-value say so.

Who calls it: the monitor sidecar (per window, per variant, per segment) and ``driftline drift``.

Why both gates: at 50k reference rows and a 10k window, KS calls a negligible 0.08 sigma shift
significant (p ~ 1e-6), while a distance threshold alone raises alarms from noise on small
windows and many-level categoricals. Requiring ``effect >= threshold`` and
``p_adjusted < alpha`` (Bonferroni or Benjamini-Hochberg over every hypothesis tested in the
window: features x segments) keeps both failure modes out.

Defaults: numeric features are tested with KS and gated on the Wasserstein distance normalised
by the reference standard deviation (>= 0.1, i.e. a tenth of a sigma of transport); categorical
features with the chi-square homogeneity test, gated on the Jensen-Shannon distance (>= 0.1,
base 2). Each feature may override its effect statistic and threshold.

"Not enough data" is its own state: a window (or feature, or segment) with fewer than
``min_samples`` values is never reported as "no drift".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from driftline.serving.drift.profile import Layout
from driftline.serving.drift.stats import Statistics

Float = npt.NDArray[np.float64]


class Correction(StrEnum):
    """Multiple-testing correction over the hypotheses of one window."""

    BONFERRONI = "bonferroni"
    FDR = "fdr"
    NONE = "none"


class Status(StrEnum):
    """The state of a feature, a segment or a whole window."""

    DRIFT = "drift"
    NO_DRIFT = "no_drift"
    NOT_ENOUGH_DATA = "not_enough_data"


NUMERIC_EFFECTS: Final = ("wasserstein", "ks", "psi", "jensen_shannon")
CATEGORICAL_EFFECTS: Final = ("jensen_shannon", "psi")
DEFAULT_THRESHOLDS: Final[Mapping[str, float]] = {
    "wasserstein": 0.1,
    "ks": 0.1,
    "psi": 0.2,
    "jensen_shannon": 0.1,
}
"""Effect-size gates: W1 >= 0.1 sigma; KS D >= 0.1; PSI >= 0.2 (the "moderate shift" band);
JS >= 0.1 (Evidently's default distance threshold)."""


class DecisionError(ValueError):
    """A decision configuration that cannot be applied; the message names the field."""


@dataclass(frozen=True)
class Rule:
    """The effect-size gate of a feature.

    Attributes:
        effect: ``wasserstein``, ``ks``, ``psi`` or ``jensen_shannon`` (the last two for both
            feature types; the first two for numeric features only).
        threshold: minimum effect for a drift verdict.
    """

    effect: str
    threshold: float


@dataclass(frozen=True)
class DecisionConfig:
    """How statistics become verdicts.

    Attributes:
        alpha: family-wise error rate (Bonferroni) or false discovery rate (FDR).
        correction: multiple-testing correction over every hypothesis of the window.
        min_samples: minimum values of a feature (and rows of a window or segment) to judge.
        numeric: default rule for numeric features.
        categorical: default rule for categorical features.
        overrides: per-feature rules.
        min_drifted: drifted features that make the window drift (1: any feature).
        predictions: feature names that are model outputs (prediction drift).
        features: the input features to test (empty: every feature of the layout); prediction
            features are tested whatever this says.
    """

    alpha: float = 0.05
    correction: Correction = Correction.BONFERRONI
    min_samples: int = 500
    numeric: Rule = Rule("wasserstein", DEFAULT_THRESHOLDS["wasserstein"])
    categorical: Rule = Rule("jensen_shannon", DEFAULT_THRESHOLDS["jensen_shannon"])
    overrides: Mapping[str, Rule] = field(default_factory=dict)
    min_drifted: int = 1
    predictions: frozenset[str] = frozenset()
    features: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise DecisionError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.min_samples < 1 or self.min_drifted < 1:
            raise DecisionError("min_samples and min_drifted must be at least 1")
        if self.numeric.effect not in NUMERIC_EFFECTS:
            raise DecisionError(f"numeric effect must be one of {NUMERIC_EFFECTS}")
        if self.categorical.effect not in CATEGORICAL_EFFECTS:
            raise DecisionError(f"categorical effect must be one of {CATEGORICAL_EFFECTS}")
        for name, rule in self.overrides.items():
            if rule.effect not in NUMERIC_EFFECTS or rule.threshold < 0:
                raise DecisionError(f"overrides.{name}: unknown effect {rule.effect!r}")

    def rule_for(self, name: str, kind: Literal["numeric", "categorical"]) -> Rule:
        """The rule of one feature (override, else the type's default).

        Raises:
            DecisionError: when a categorical feature is given a numeric-only effect.
        """
        rule = self.overrides.get(name, self.numeric if kind == "numeric" else self.categorical)
        if kind == "categorical" and rule.effect not in CATEGORICAL_EFFECTS:
            raise DecisionError(
                f"overrides.{name}: {rule.effect} does not apply to a categorical feature"
            )
        return rule


def adjust(p_values: Float, correction: Correction) -> Float:
    """Multiplicity-adjusted p-values (Bonferroni, or Benjamini-Hochberg step-up)."""
    p = np.asarray(p_values, dtype=np.float64)
    d = len(p)
    if d == 0 or correction is Correction.NONE:
        return p.copy()
    if correction is Correction.BONFERRONI:
        return np.minimum(p * d, 1.0)
    order = np.argsort(p)
    ranked = p[order] * d / np.arange(1, d + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(d)
    out[order] = np.minimum(ranked, 1.0)
    return out


@dataclass(frozen=True)
class FeatureVerdict:
    """The verdict of one feature in one window (and segment).

    Attributes:
        name: feature name.
        kind: ``numeric`` or ``categorical``.
        role: ``input`` or ``prediction``.
        segment: ``None`` for the whole window, else ``"feature=value"``.
        status: drift, no_drift or not_enough_data.
        test: ``ks`` or ``chi2``.
        statistic: the test statistic (KS D or chi-square).
        p_value: the raw p-value.
        p_adjusted: the corrected p-value (NaN when not tested).
        effect: the gating effect statistic.
        effect_value: its value.
        threshold: its threshold.
        n_reference: reference values.
        n_current: current values.
        scores: every statistic computed for the feature.
    """

    name: str
    kind: Literal["numeric", "categorical"]
    role: Literal["input", "prediction"]
    segment: str | None
    status: Status
    test: Literal["ks", "chi2"]
    statistic: float
    p_value: float
    p_adjusted: float
    effect: str
    effect_value: float
    threshold: float
    n_reference: int
    n_current: int
    scores: Mapping[str, float]


@dataclass(frozen=True)
class Verdict:
    """The verdict of one window.

    Attributes:
        status: drift when ``min_drifted`` or more features drift (inputs, predictions or any
            segment); not_enough_data when the window has fewer than ``min_samples`` rows.
        rows: rows in the window.
        drifted: names of drifted features of the whole window (segment hits as ``name@seg``).
        share: drifted / judged features of the whole window (the dataset-level score).
        prediction_status: the status over prediction features only (None when there are none).
        features: every feature verdict, whole window first, then segments.
        alpha: the configured alpha.
        correction: the configured correction.
        hypotheses: hypotheses counted in the correction.
    """

    status: Status
    rows: int
    drifted: tuple[str, ...]
    share: float
    prediction_status: Status | None
    features: tuple[FeatureVerdict, ...]
    alpha: float
    correction: Correction
    hypotheses: int


@dataclass(frozen=True)
class Scope:
    """The statistics of one window part to judge: the whole window or one segment.

    Attributes:
        stats: the statistics.
        rows: rows counted in this part.
        segment: ``None`` for the whole window, else ``"feature=value"``.
    """

    stats: Statistics
    rows: int
    segment: str | None = None


@dataclass
class _Candidate:
    name: str
    kind: Literal["numeric", "categorical"]
    segment: str | None
    test: Literal["ks", "chi2"]
    statistic: float
    p_value: float
    rule: Rule
    effect_value: float
    n_ref: int
    n_cur: int
    enough: bool
    scores: dict[str, float]


def _candidates(layout: Layout, scope: Scope, cfg: DecisionConfig) -> list[_Candidate]:
    s = scope.stats
    out: list[_Candidate] = []
    enough_rows = scope.rows >= cfg.min_samples
    for i, spec in enumerate(layout.numeric):
        scores = {
            "wasserstein": float(s.wasserstein[i]),
            "ks": float(s.ks[i]),
            "psi": float(s.numeric_psi[i]),
            "jensen_shannon": float(s.numeric_js[i]),
            "mean_shift": float(s.mean_shift[i]),
        }
        rule = cfg.rule_for(spec.name, "numeric")
        n_ref, n_cur = int(s.numeric_n_ref[i]), int(s.numeric_n_cur[i])
        out.append(
            _Candidate(
                spec.name, "numeric", scope.segment, "ks", scores["ks"], float(s.ks_p[i]),
                rule, scores[rule.effect], n_ref, n_cur,
                enough_rows and n_cur >= cfg.min_samples and n_ref > 0, scores,
            )
        )  # fmt: skip
    for i, spec_c in enumerate(layout.categorical):
        scores = {
            "jensen_shannon": float(s.categorical_js[i]),
            "psi": float(s.categorical_psi[i]),
            "chi2": float(s.chi2[i]),
            "unseen_share": float(s.unseen_share[i]),
        }
        rule = cfg.rule_for(spec_c.name, "categorical")
        n_ref, n_cur = int(s.categorical_n_ref[i]), int(s.categorical_n_cur[i])
        out.append(
            _Candidate(
                spec_c.name, "categorical", scope.segment, "chi2", scores["chi2"],
                float(s.chi2_p[i]), rule, scores[rule.effect], n_ref, n_cur,
                enough_rows and n_cur >= cfg.min_samples and n_ref > 0, scores,
            )
        )  # fmt: skip
    return out


def _finite(value: float) -> float:
    return value if math.isfinite(value) else float("nan")


def decide(layout: Layout, scopes: Sequence[Scope], cfg: DecisionConfig) -> Verdict:
    """Judge a window: the whole window (first scope) and its segments (the other scopes).

    Args:
        layout: the binning the statistics were computed over.
        scopes: the whole window first, then any segments.
        cfg: thresholds, alpha and correction.

    Returns:
        The window's verdict; every hypothesis with enough data counts in the correction.
    """
    if not scopes:
        raise DecisionError("decide needs at least the whole-window scope")
    candidates = [
        c
        for scope in scopes
        for c in _candidates(layout, scope, cfg)
        if not cfg.features or c.name in cfg.features or c.name in cfg.predictions
    ]
    tested = [c for c in candidates if c.enough]
    adjusted = adjust(np.array([c.p_value for c in tested]), cfg.correction)
    adj_by_id = {id(c): float(a) for c, a in zip(tested, adjusted, strict=True)}
    features: list[FeatureVerdict] = []
    for c in candidates:
        p_adj = adj_by_id.get(id(c), float("nan"))
        if not c.enough:
            status = Status.NOT_ENOUGH_DATA
        elif c.effect_value >= c.rule.threshold and p_adj < cfg.alpha:
            status = Status.DRIFT
        else:
            status = Status.NO_DRIFT
        features.append(
            FeatureVerdict(
                name=c.name,
                kind=c.kind,
                role="prediction" if c.name in cfg.predictions else "input",
                segment=c.segment,
                status=status,
                test=c.test,
                statistic=_finite(c.statistic),
                p_value=_finite(c.p_value),
                p_adjusted=p_adj,
                effect=c.rule.effect,
                effect_value=_finite(c.effect_value),
                threshold=c.rule.threshold,
                n_reference=c.n_ref,
                n_current=c.n_cur,
                scores=c.scores,
            )
        )
    whole = [f for f in features if f.segment is None]
    judged = [f for f in whole if f.status is not Status.NOT_ENOUGH_DATA]
    drifted = [f.name for f in whole if f.status is Status.DRIFT]
    drifted += [f"{f.name}@{f.segment}" for f in features if f.segment and f.status is Status.DRIFT]
    preds = [f for f in whole if f.role == "prediction"]
    rows = scopes[0].rows
    if rows < cfg.min_samples or not judged:
        status = Status.NOT_ENOUGH_DATA
    elif len(drifted) >= cfg.min_drifted:
        status = Status.DRIFT
    else:
        status = Status.NO_DRIFT
    return Verdict(
        status=status,
        rows=rows,
        drifted=tuple(drifted),
        share=sum(f.status is Status.DRIFT for f in judged) / len(judged) if judged else 0.0,
        prediction_status=_group_status(preds) if preds else None,
        features=tuple(features),
        alpha=cfg.alpha,
        correction=cfg.correction,
        hypotheses=len(tested),
    )


def _group_status(features: Sequence[FeatureVerdict]) -> Status:
    if any(f.status is Status.DRIFT for f in features):
        return Status.DRIFT
    if all(f.status is Status.NOT_ENOUGH_DATA for f in features):
        return Status.NOT_ENOUGH_DATA
    return Status.NO_DRIFT


def _num(value: float) -> float | None:
    return value if math.isfinite(value) else None


def verdict_to_json(verdict: Verdict) -> dict[str, object]:
    """The verdict as a JSON-ready document (NaN and infinities become null)."""
    return {
        "status": verdict.status.value,
        "rows": verdict.rows,
        "drifted": list(verdict.drifted),
        "share": verdict.share,
        "prediction_status": verdict.prediction_status.value if verdict.prediction_status else None,
        "alpha": verdict.alpha,
        "correction": verdict.correction.value,
        "hypotheses": verdict.hypotheses,
        "features": [
            {
                "name": f.name,
                "kind": f.kind,
                "role": f.role,
                "segment": f.segment,
                "status": f.status.value,
                "test": f.test,
                "statistic": _num(f.statistic),
                "p_value": _num(f.p_value),
                "p_adjusted": _num(f.p_adjusted),
                "effect": f.effect,
                "effect_value": _num(f.effect_value),
                "threshold": f.threshold,
                "n_reference": f.n_reference,
                "n_current": f.n_current,
                "scores": {k: _num(v) for k, v in f.scores.items()},
            }
            for f in verdict.features
        ],
    }
