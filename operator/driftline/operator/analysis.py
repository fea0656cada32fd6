"""Judging a canary (or shadow) against stable: plain measurements in, per-metric verdicts out.

Owns the *meaning* of an analysis tick. The rollout state machine (``driftline.operator.rollout``)
consumes its results; the I/O that gathers the numbers lives behind the ``Provider`` protocol
(``driftline.operator.analysis_http`` reads the router's and the monitors' JSON over HTTP; tests and
local mode pass their own). Pure: the standard library only, no clock (the caller stamps ``at``).

Judgement rules (see ``/work/shared/notes/rollouts-analysis-and-gitops.md`` and the README's
``## Rollouts``):

- Every check has a bound; a check whose bound is unset is skipped (not reported).
- A check is judged only on enough samples: fewer than ``min_samples`` (requests, drifted rows,
  predictions or labelled rows, whichever the check reads) or a missing value makes it
  ``inconclusive``, never a crash and never a silent pass. Non-finite values count as missing.
- Relative checks (latency ratio, prediction shift, performance drop) also need enough samples on
  stable; a stable with no data makes them inconclusive, never failed.
- The tick's verdict is the worst check: any ``fail`` → ``Failed``; else any ``inconclusive`` →
  ``NoData``; else ``Successful``. The ``noData`` policy maps ``NoData`` to an outcome: ``pass``
  (advance as if successful), ``pause`` (hold: neither advance nor count a failure) or ``fail``
  (count a failure). During a shadow phase the agreement check can never *pass* on missing data: a
  shadow with too few compared predictions holds even under ``noData: pass``.

Usage::

    from driftline.operator import analysis

    thresholds = analysis.Thresholds(min_samples=50, max_error_rate=0.01, max_latency_ratio=1.2)
    canary = analysis.Measurements(requests=400, errors=12, latency_p99_ms=80.0)
    stable = analysis.Measurements(requests=3600, errors=3, latency_p99_ms=60.0)
    result = analysis.judge(canary, stable, thresholds, at=now)
    result.verdict   # "Failed"
    result.outcome   # "fail"
    result.reason    # "ErrorRateTooHigh"
    [c.metric for c in result.checks]   # ["errorRate", "latencyRatio"]
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal, Protocol

__all__ = [
    "METRICS",
    "AnalysisResult",
    "CheckResult",
    "CheckVerdict",
    "Measurements",
    "NoDataPolicy",
    "Outcome",
    "PerformanceBound",
    "Provider",
    "ShadowThresholds",
    "Target",
    "Thresholds",
    "VariantRole",
    "Verdict",
    "combine",
    "js_distance",
    "judge",
    "measure_and_judge",
]

CheckVerdict = Literal["pass", "fail", "inconclusive"]
"""The verdict of one check."""

Verdict = Literal["Successful", "Failed", "NoData"]
"""The verdict of a whole tick (the API's ``AnalysisStatus.verdict`` vocabulary)."""

Outcome = Literal["pass", "fail", "hold"]
"""What the rollout does with a tick after the ``noData`` policy: advance, count a failure, or hold
(neither advance nor count)."""

NoDataPolicy = Literal["pass", "pause", "fail"]
"""What a tick without enough data means (``spec.rollout.analysis.noData``)."""

VariantRole = Literal["stable", "canary", "shadow"]
"""The role a model version plays in a Deployment."""

METRICS: Final = (
    "errorRate",
    "latencyP99Ms",
    "latencyRatio",
    "driftScore",
    "predictionShift",
    "performance",
    "shadowAgreement",
)
"""Every metric name a check can carry, in the order checks are reported (also the label values of
the operator's analysis metrics)."""

HIGHER_IS_BETTER: Final[Mapping[str, bool]] = {
    "accuracy": True,
    "auc": True,
    "f1": True,
    "mae": False,
    "rmse": False,
}
"""Direction of each performance metric the monitors report, so a drop is always positive."""


# ------------------------------------------------------------------------------------ measurements


@dataclass(frozen=True)
class Measurements:
    """What one variant did over the last analysis interval, as plain numbers.

    Every field defaults to "no data" (zero counts, ``None`` values), so a provider that could not
    reach a source returns ``Measurements()`` and the judge says ``inconclusive``.

    Attributes:
        requests: requests routed (or mirrored, for a shadow) to the variant in the interval.
        errors: of those, the ones that failed with a server error (5xx or a transport error).
        latency_p50_ms: median latency in milliseconds over the interval.
        latency_p99_ms: 99th percentile latency in milliseconds over the interval.
        drift_score: the variant's input drift score (the monitor's dataset score, 0 = identical to
            the reference).
        drift_samples: rows the drift score was computed from.
        prediction_shift: distance between this variant's prediction distribution and stable's, when
            the source computes it; otherwise ``prediction_counts`` lets the judge compute it.
        prediction_counts: predicted label → count over the window (classifiers), used to compute
            the shift against stable as a Jensen-Shannon distance.
        prediction_samples: predictions the shift is computed from.
        shadow_agreement: fraction (0..1) of mirrored requests where this shadow and stable agreed.
        shadow_compared: mirrored requests that were compared.
        performance: metric name (``accuracy``, ``auc``, ``mae``, ``rmse``…) → value from delayed
            labels.
        labelled_samples: predictions joined with a label, behind ``performance``.
    """

    requests: int = 0
    errors: int = 0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    drift_score: float | None = None
    drift_samples: int = 0
    prediction_shift: float | None = None
    prediction_counts: Mapping[str, float] = field(default_factory=dict)
    prediction_samples: int = 0
    shadow_agreement: float | None = None
    shadow_compared: int = 0
    performance: Mapping[str, float] = field(default_factory=dict)
    labelled_samples: int = 0


def _weighted(values: Iterable[tuple[float | None, int]]) -> float | None:
    """Sample-weighted mean of the finite values that have samples; None when there are none."""
    total = 0.0
    weight = 0
    for value, n in values:
        if value is None or not math.isfinite(value) or n <= 0:
            continue
        total += value * n
        weight += n
    return total / weight if weight else None


def _maximum(values: Iterable[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return max(finite) if finite else None


def combine(parts: Iterable[Measurements]) -> Measurements:
    """Merge measurements of one variant taken from several sources (router replicas, monitor pods).

    Counts add up. Quantiles cannot be merged exactly from summaries, so p99 and the drift score
    take the worst (largest) part — the conservative choice for a gate — while p50, agreement,
    prediction shift and performance are sample-weighted means. Parts with no data for a field do
    not dilute it.

    Args:
        parts: the measurements to merge (any number, possibly none).

    Returns:
        One ``Measurements`` for the variant; ``Measurements()`` when ``parts`` is empty.
    """
    items = list(parts)
    counts: dict[str, float] = {}
    for m in items:
        for label, n in m.prediction_counts.items():
            counts[label] = counts.get(label, 0.0) + n
    metrics = sorted({name for m in items for name in m.performance})
    performance = {
        name: value
        for name in metrics
        if (value := _weighted((m.performance.get(name), m.labelled_samples) for m in items))
        is not None
    }
    return Measurements(
        requests=sum(m.requests for m in items),
        errors=sum(m.errors for m in items),
        latency_p50_ms=_weighted((m.latency_p50_ms, m.requests) for m in items),
        latency_p99_ms=_maximum(m.latency_p99_ms for m in items if m.requests > 0),
        drift_score=_maximum(m.drift_score for m in items if m.drift_samples > 0),
        drift_samples=sum(m.drift_samples for m in items),
        prediction_shift=_weighted((m.prediction_shift, m.prediction_samples) for m in items),
        prediction_counts=counts,
        prediction_samples=sum(m.prediction_samples for m in items),
        shadow_agreement=_weighted((m.shadow_agreement, m.shadow_compared) for m in items),
        shadow_compared=sum(m.shadow_compared for m in items),
        performance=performance,
        labelled_samples=sum(m.labelled_samples for m in items),
    )


def js_distance(p: Mapping[str, float], q: Mapping[str, float]) -> float | None:
    """Jensen-Shannon distance (base 2, so 0..1) between two label-count distributions.

    Args:
        p: label → count (or weight) of one distribution.
        q: label → count of the other; labels missing on one side count as zero there.

    Returns:
        ``sqrt(JS divergence)`` in [0, 1]: 0 for identical distributions, 1 for disjoint ones; None
        when either side has no mass.
    """
    labels = set(p) | set(q)
    p_total = sum(max(p.get(k, 0.0), 0.0) for k in labels)
    q_total = sum(max(q.get(k, 0.0), 0.0) for k in labels)
    if p_total <= 0 or q_total <= 0:
        return None
    divergence = 0.0
    for label in labels:
        pi = max(p.get(label, 0.0), 0.0) / p_total
        qi = max(q.get(label, 0.0), 0.0) / q_total
        mi = (pi + qi) / 2
        if pi > 0:
            divergence += 0.5 * pi * math.log2(pi / mi)
        if qi > 0:
            divergence += 0.5 * qi * math.log2(qi / mi)
    return math.sqrt(min(max(divergence, 0.0), 1.0))


# -------------------------------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class PerformanceBound:
    """Model quality from delayed labels must not drop more than ``max_drop`` below stable.

    Attributes:
        metric: the metric the monitors report (``accuracy``, ``auc``, ``f1``, ``mae``, ``rmse``).
        max_drop: how much worse than stable the candidate may be, in metric units (0 = not worse).
    """

    metric: str
    max_drop: float = 0.0

    @property
    def higher_is_better(self) -> bool:
        """True for scores (accuracy, auc, f1), False for errors (mae, rmse, unknown names)."""
        return HIGHER_IS_BETTER.get(self.metric, False)


@dataclass(frozen=True)
class Thresholds:
    """The bounds one analysis tick is judged against (``spec.rollout.analysis``, as plain values).

    A bound set to ``None`` skips its check. Defaults equal the API's defaults.

    Attributes:
        min_samples: samples a check needs before it is judged (default 50).
        max_error_rate: highest fraction of failed requests, 0..1 (default 0.01).
        max_latency_p99_ms: highest p99 latency in milliseconds.
        max_latency_ratio: highest candidate p99 / stable p99 (1.2 = at most 20% slower).
        max_drift_score: highest input drift score of the candidate's monitor.
        max_prediction_shift: highest distance between candidate and stable predictions.
        performance: the quality bound relative to stable.
        no_data: what a tick without enough data means (default ``pause``: hold).
    """

    min_samples: int = 50
    max_error_rate: float | None = 0.01
    max_latency_p99_ms: float | None = None
    max_latency_ratio: float | None = None
    max_drift_score: float | None = None
    max_prediction_shift: float | None = None
    performance: PerformanceBound | None = None
    no_data: NoDataPolicy = "pause"


@dataclass(frozen=True)
class ShadowThresholds:
    """The extra check of a shadow phase (``spec.rollout.shadow``).

    Attributes:
        min_samples: compared predictions needed before agreement is judged (default 100).
        min_agreement: lowest fraction of compared predictions where shadow and stable agree.
    """

    min_samples: int = 100
    min_agreement: float = 0.95


# ---------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CheckResult:
    """One check of one tick: the number, its bound and the verdict, with the reason.

    Attributes:
        metric: one of ``METRICS``.
        value: the measured value; None when there was no data.
        threshold: the bound it was judged against.
        verdict: ``pass``, ``fail`` or ``inconclusive`` (not enough data).
        reason: CamelCase cause, e.g. ``ErrorRateTooHigh``, ``NotEnoughSamples``, ``Passed``.
        message: the numbers behind the verdict, for humans.
        samples: samples the value is computed from.
    """

    metric: str
    value: float | None
    threshold: float
    verdict: CheckVerdict
    reason: str
    message: str
    samples: int = 0


@dataclass(frozen=True)
class AnalysisResult:
    """The result of one analysis tick.

    Attributes:
        at: when the measurements were taken (the rollout machine consumes each tick once, by this
            time, and ignores ticks measured before the current step began).
        verdict: ``Successful``, ``Failed`` or ``NoData``.
        outcome: what the rollout does with it after the ``noData`` policy: ``pass``, ``fail`` or
            ``hold``.
        reason: CamelCase: the first failed check's reason, ``NoData`` or ``AnalysisPassed``.
        message: one line for humans with the numbers behind the verdict.
        checks: every judged check, in ``METRICS`` order.
    """

    at: datetime
    verdict: Verdict
    outcome: Outcome
    reason: str
    message: str
    checks: tuple[CheckResult, ...] = ()

    def check(self, metric: str) -> CheckResult | None:
        """The check of the given metric, or None when it was not judged."""
        return next((c for c in self.checks if c.metric == metric), None)


# ------------------------------------------------------------------------------------------- judge


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _inconclusive(metric: str, threshold: float, message: str, samples: int) -> CheckResult:
    return CheckResult(metric, None, threshold, "inconclusive", "NotEnoughData", message, samples)


def _upper(
    metric: str, value: float, threshold: float, samples: int, fail_reason: str, label: str
) -> CheckResult:
    """A check that passes when ``value <= threshold``."""
    if value <= threshold:
        return CheckResult(
            metric,
            value,
            threshold,
            "pass",
            "Passed",
            f"{label} {_fmt(value)} <= {_fmt(threshold)}",
            samples,
        )
    return CheckResult(
        metric,
        value,
        threshold,
        "fail",
        fail_reason,
        f"{label} {_fmt(value)} > {_fmt(threshold)}",
        samples,
    )


def _too_few(what: str, n: int, need: int) -> str:
    return f"{n} {what} < minSamples {need}"


def _error_rate(c: Measurements, t: Thresholds, bound: float) -> CheckResult:
    if c.requests < max(t.min_samples, 1):
        return _inconclusive(
            "errorRate", bound, _too_few("requests", c.requests, t.min_samples), c.requests
        )
    rate = min(max(c.errors, 0) / c.requests, 1.0)
    return _upper("errorRate", rate, bound, c.requests, "ErrorRateTooHigh", "error rate")


def _latency(c: Measurements, t: Thresholds, bound: float) -> CheckResult:
    p99 = _finite(c.latency_p99_ms)
    if c.requests < t.min_samples or p99 is None:
        why = (
            _too_few("requests", c.requests, t.min_samples)
            if p99 is not None
            else "no p99 latency reported"
        )
        return _inconclusive("latencyP99Ms", bound, why, c.requests)
    return _upper("latencyP99Ms", p99, bound, c.requests, "LatencyTooHigh", "p99 latency ms")


def _latency_ratio(c: Measurements, s: Measurements, t: Thresholds, bound: float) -> CheckResult:
    cp, sp = _finite(c.latency_p99_ms), _finite(s.latency_p99_ms)
    if c.requests < t.min_samples or cp is None:
        why = (
            _too_few("requests", c.requests, t.min_samples)
            if cp is not None
            else "no p99 latency reported"
        )
        return _inconclusive("latencyRatio", bound, why, c.requests)
    if s.requests < t.min_samples or sp is None or sp <= 0:
        return _inconclusive(
            "latencyRatio", bound, "stable has no p99 latency to compare with", c.requests
        )
    return _upper(
        "latencyRatio", cp / sp, bound, c.requests, "LatencyRatioTooHigh", "p99 latency ratio"
    )


def _drift(c: Measurements, t: Thresholds, bound: float) -> CheckResult:
    score = _finite(c.drift_score)
    if c.drift_samples < t.min_samples or score is None:
        why = (
            _too_few("rows", c.drift_samples, t.min_samples)
            if score is not None
            else "no drift score"
        )
        return _inconclusive("driftScore", bound, why, c.drift_samples)
    return _upper("driftScore", score, bound, c.drift_samples, "DriftScoreTooHigh", "drift score")


def _prediction_shift(c: Measurements, s: Measurements, t: Thresholds, bound: float) -> CheckResult:
    if c.prediction_samples < t.min_samples:
        why = _too_few("predictions", c.prediction_samples, t.min_samples)
        return _inconclusive("predictionShift", bound, why, c.prediction_samples)
    shift = _finite(c.prediction_shift)
    if shift is None and s.prediction_samples >= t.min_samples:
        shift = js_distance(c.prediction_counts, s.prediction_counts)
    if shift is None:
        return _inconclusive(
            "predictionShift",
            bound,
            "no prediction distribution to compare with stable",
            c.prediction_samples,
        )
    return _upper(
        "predictionShift",
        shift,
        bound,
        c.prediction_samples,
        "PredictionShiftTooHigh",
        "prediction shift",
    )


def _performance(
    c: Measurements, s: Measurements, t: Thresholds, bound: PerformanceBound
) -> CheckResult:
    name = bound.metric
    cv, sv = _finite(c.performance.get(name)), _finite(s.performance.get(name))
    if c.labelled_samples < t.min_samples or cv is None:
        why = (
            _too_few("labelled predictions", c.labelled_samples, t.min_samples)
            if cv is not None
            else f"no {name} reported"
        )
        return _inconclusive("performance", bound.max_drop, why, c.labelled_samples)
    if s.labelled_samples < t.min_samples or sv is None:
        return _inconclusive(
            "performance",
            bound.max_drop,
            f"stable has no {name} to compare with",
            c.labelled_samples,
        )
    drop = sv - cv if bound.higher_is_better else cv - sv
    result = _upper(
        "performance",
        drop,
        bound.max_drop,
        c.labelled_samples,
        "PerformanceDropped",
        f"{name} drop",
    )
    return CheckResult(
        result.metric,
        result.value,
        result.threshold,
        result.verdict,
        result.reason,
        f"{result.message} (candidate {_fmt(cv)}, stable {_fmt(sv)})",
        result.samples,
    )


def _agreement(c: Measurements, shadow: ShadowThresholds) -> CheckResult:
    agreement = _finite(c.shadow_agreement)
    if c.shadow_compared < max(shadow.min_samples, 1) or agreement is None:
        why = (
            _too_few("compared predictions", c.shadow_compared, shadow.min_samples)
            if agreement is not None
            else "no shadow comparison reported"
        )
        return _inconclusive("shadowAgreement", shadow.min_agreement, why, c.shadow_compared)
    if agreement >= shadow.min_agreement:
        return CheckResult(
            "shadowAgreement",
            agreement,
            shadow.min_agreement,
            "pass",
            "Passed",
            f"shadow agreement {_fmt(agreement)} >= {_fmt(shadow.min_agreement)}",
            c.shadow_compared,
        )
    return CheckResult(
        "shadowAgreement",
        agreement,
        shadow.min_agreement,
        "fail",
        "ShadowAgreementTooLow",
        f"shadow agreement {_fmt(agreement)} < {_fmt(shadow.min_agreement)}",
        c.shadow_compared,
    )


def judge(
    candidate: Measurements,
    stable: Measurements,
    thresholds: Thresholds,
    *,
    at: datetime,
    shadow: ShadowThresholds | None = None,
) -> AnalysisResult:
    """Judge one tick of the candidate (canary or shadow) against stable.

    Args:
        candidate: the canary's (or shadow's) measurements over the last interval.
        stable: the stable variant's measurements over the same interval (for relative checks).
        thresholds: the bounds; unset bounds skip their checks.
        at: when the measurements were taken (stamped on the result; the judge reads no clock).
        shadow: during a shadow phase, the agreement bound; None otherwise.

    Returns:
        The per-check results and the tick's verdict and outcome (see the module docstring).
    """
    t = thresholds
    checks: list[CheckResult] = []
    if t.max_error_rate is not None:
        checks.append(_error_rate(candidate, t, t.max_error_rate))
    if t.max_latency_p99_ms is not None:
        checks.append(_latency(candidate, t, t.max_latency_p99_ms))
    if t.max_latency_ratio is not None:
        checks.append(_latency_ratio(candidate, stable, t, t.max_latency_ratio))
    if t.max_drift_score is not None:
        checks.append(_drift(candidate, t, t.max_drift_score))
    if t.max_prediction_shift is not None:
        checks.append(_prediction_shift(candidate, stable, t, t.max_prediction_shift))
    if t.performance is not None:
        checks.append(_performance(candidate, stable, t, t.performance))
    if shadow is not None:
        checks.append(_agreement(candidate, shadow))
    return _conclude(tuple(checks), t.no_data, at)


_NO_DATA_OUTCOME: Final[Mapping[NoDataPolicy, Outcome]] = {
    "pass": "pass",
    "pause": "hold",
    "fail": "fail",
}


def _conclude(
    checks: tuple[CheckResult, ...], no_data: NoDataPolicy, at: datetime
) -> AnalysisResult:
    failed = [c for c in checks if c.verdict == "fail"]
    if failed:
        return AnalysisResult(
            at, "Failed", "fail", failed[0].reason, "; ".join(c.message for c in failed), checks
        )
    missing = [c for c in checks if c.verdict == "inconclusive"]
    if missing:
        message = "; ".join(f"{c.metric}: {c.message}" for c in missing)
        outcome = _NO_DATA_OUTCOME[no_data]
        if outcome == "pass" and any(c.metric == "shadowAgreement" for c in missing):
            # A shadow phase exists to compare predictions: passing it on none would defeat it.
            outcome = "hold"
        return AnalysisResult(
            at, "NoData", outcome, "NoData", f"{message} (noData: {no_data})", checks
        )
    summary = "; ".join(c.message for c in checks) or "no checks configured"
    return AnalysisResult(at, "Successful", "pass", "AnalysisPassed", summary, checks)


# ----------------------------------------------------------------------------------- provider seam


@dataclass(frozen=True)
class Target:
    """Which variant of which Deployment to measure.

    Attributes:
        namespace: the Deployment's namespace (``default`` in local mode).
        deployment: the Driftline Deployment's name.
        role: ``stable``, ``canary`` or ``shadow``.
        model: the Model the variant serves.
    """

    namespace: str
    deployment: str
    role: VariantRole
    model: str


class Provider(Protocol):
    """The seam between the judge and wherever the numbers live (HTTP, Prometheus, a test fake).

    ``measure`` never raises for missing or unreachable data: it returns ``Measurements()`` (or a
    partial one) so the judge says ``inconclusive`` and the ``noData`` policy decides.
    """

    async def measure(self, target: Target) -> Measurements:
        """The variant's measurements over the last analysis interval."""
        ...


async def measure_and_judge(
    provider: Provider,
    candidate: Target,
    stable: Target,
    thresholds: Thresholds,
    *,
    at: datetime,
    shadow: ShadowThresholds | None = None,
) -> AnalysisResult:
    """Measure the candidate and stable concurrently, then judge: one analysis tick.

    Args:
        provider: where the numbers come from.
        candidate: the canary or shadow variant.
        stable: the stable variant.
        thresholds: the bounds.
        at: the tick's time (the caller's clock).
        shadow: the agreement bound during a shadow phase.

    Returns:
        The judged tick, ready for ``rollout.step``.
    """
    c, s = await asyncio.gather(provider.measure(candidate), provider.measure(stable))
    return judge(c, s, thresholds, at=at, shadow=shadow)
