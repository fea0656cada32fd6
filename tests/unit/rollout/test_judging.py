"""We test these aspects of ``driftline.operator.analysis``:

- each check's pass / fail / inconclusive boundary, with the reason and the numbers;
- minimum samples before judging, missing and non-finite values (never a crash, never a pass);
- relative checks against stable (latency ratio, prediction shift, performance drop);
- the noData policy (pass, pause → hold, fail) and the shadow rule (never pass on no comparison);
- merging measurements from several sources, and the Jensen-Shannon distance;
- the Provider seam (measure_and_judge with a fake provider).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from driftline.operator import analysis
from driftline.operator.analysis import (
    Measurements,
    PerformanceBound,
    ShadowThresholds,
    Target,
    Thresholds,
    judge,
)

AT = datetime(2026, 1, 1, tzinfo=UTC)
GOOD = Measurements(requests=500, errors=1, latency_p50_ms=5.0, latency_p99_ms=20.0)
STABLE = Measurements(requests=5000, errors=5, latency_p50_ms=5.0, latency_p99_ms=20.0)


@pytest.mark.parametrize(
    ("errors", "verdict", "reason"),
    [
        (0, "pass", "Passed"),
        (5, "pass", "Passed"),  # exactly 0.01 passes: the bound is inclusive
        (6, "fail", "ErrorRateTooHigh"),
        (500, "fail", "ErrorRateTooHigh"),
    ],
)
def test_judging_error_rate_at_its_boundary(errors: int, verdict: str, reason: str) -> None:
    canary = Measurements(requests=500, errors=errors)
    result = judge(canary, STABLE, Thresholds(max_error_rate=0.01), at=AT)
    check = result.check("errorRate")
    assert check is not None
    assert (check.verdict, check.reason) == (verdict, reason)
    assert check.value == pytest.approx(errors / 500)
    assert check.threshold == 0.01
    assert check.samples == 500
    assert result.verdict == ("Successful" if verdict == "pass" else "Failed")


def test_failing_check_message_carries_the_numbers() -> None:
    result = judge(Measurements(requests=100, errors=30), STABLE, Thresholds(), at=AT)
    assert result.reason == "ErrorRateTooHigh"
    assert result.outcome == "fail"
    assert "0.3 > 0.01" in result.message


@pytest.mark.parametrize("requests", [0, 1, 49])
def test_too_few_requests_is_inconclusive_never_a_pass(requests: int) -> None:
    canary = Measurements(requests=requests, errors=0, latency_p99_ms=1.0)
    result = judge(canary, STABLE, Thresholds(min_samples=50, max_latency_p99_ms=100), at=AT)
    assert {c.verdict for c in result.checks} == {"inconclusive"}
    assert all(c.value is None for c in result.checks)
    assert result.verdict == "NoData"
    assert f"{requests} requests < minSamples 50" in result.message


def test_errors_on_too_few_requests_do_not_fail_the_tick() -> None:
    # 10 of 10 failed, but 10 requests are below minSamples: the policy decides, not the ratio.
    result = judge(Measurements(requests=10, errors=10), STABLE, Thresholds(no_data="pass"), at=AT)
    assert result.verdict == "NoData"
    assert result.outcome == "pass"


def test_latency_absolute_bound() -> None:
    slow = Measurements(requests=500, latency_p99_ms=250.0)
    t = Thresholds(max_error_rate=None, max_latency_p99_ms=200.0)
    result = judge(slow, STABLE, t, at=AT)
    assert result.reason == "LatencyTooHigh"
    check = result.check("latencyP99Ms")
    assert check is not None and check.value == 250.0 and check.threshold == 200.0


@pytest.mark.parametrize(
    ("canary_p99", "stable_p99", "verdict", "value"),
    [
        (24.0, 20.0, "pass", 1.2),
        (24.2, 20.0, "fail", 1.21),
        (10.0, 20.0, "pass", 0.5),
    ],
)
def test_latency_relative_to_stable(
    canary_p99: float, stable_p99: float, verdict: str, value: float
) -> None:
    canary = Measurements(requests=500, latency_p99_ms=canary_p99)
    stable = Measurements(requests=500, latency_p99_ms=stable_p99)
    t = Thresholds(max_error_rate=None, max_latency_ratio=1.2)
    check = judge(canary, stable, t, at=AT).check("latencyRatio")
    assert check is not None
    assert check.verdict == verdict
    assert check.value == pytest.approx(value)
    if verdict == "fail":
        assert check.reason == "LatencyRatioTooHigh"


@pytest.mark.parametrize(
    "stable",
    [
        Measurements(),
        Measurements(requests=10, latency_p99_ms=20.0),
        Measurements(requests=500, latency_p99_ms=0.0),
        Measurements(requests=500, latency_p99_ms=math.nan),
    ],
)
def test_latency_ratio_without_a_usable_stable_is_inconclusive(stable: Measurements) -> None:
    canary = Measurements(requests=500, latency_p99_ms=500.0)
    t = Thresholds(max_error_rate=None, max_latency_ratio=1.2)
    check = judge(canary, stable, t, at=AT).check("latencyRatio")
    assert check is not None
    assert check.verdict == "inconclusive"
    assert "stable" in check.message


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, None])
def test_non_finite_values_count_as_missing(bad: float | None) -> None:
    canary = Measurements(requests=500, latency_p99_ms=bad, drift_score=bad, drift_samples=500)
    t = Thresholds(max_error_rate=None, max_latency_p99_ms=100.0, max_drift_score=0.2)
    result = judge(canary, STABLE, t, at=AT)
    assert [c.verdict for c in result.checks] == ["inconclusive", "inconclusive"]


@pytest.mark.parametrize(
    ("score", "rows", "verdict"),
    [(0.1, 500, "pass"), (0.2, 500, "pass"), (0.35, 500, "fail"), (0.9, 10, "inconclusive")],
)
def test_drift_score(score: float, rows: int, verdict: str) -> None:
    canary = Measurements(drift_score=score, drift_samples=rows)
    t = Thresholds(max_error_rate=None, max_drift_score=0.2)
    check = judge(canary, STABLE, t, at=AT).check("driftScore")
    assert check is not None and check.verdict == verdict
    if verdict == "fail":
        assert check.reason == "DriftScoreTooHigh"


def test_prediction_shift_is_computed_from_label_counts_against_stable() -> None:
    canary = Measurements(prediction_counts={"churn": 90, "stay": 10}, prediction_samples=100)
    stable = Measurements(prediction_counts={"churn": 20, "stay": 80}, prediction_samples=100)
    same = Measurements(prediction_counts={"churn": 2, "stay": 8}, prediction_samples=100)
    t = Thresholds(max_error_rate=None, max_prediction_shift=0.1)
    shifted = judge(canary, stable, t, at=AT).check("predictionShift")
    assert shifted is not None and shifted.verdict == "fail"
    assert shifted.reason == "PredictionShiftTooHigh"
    assert shifted.value == pytest.approx(
        analysis.js_distance(canary.prediction_counts, stable.prediction_counts)
    )
    equal = judge(same, stable, t, at=AT).check("predictionShift")
    assert (
        equal is not None
        and equal.verdict == "pass"
        and equal.value == pytest.approx(0.0, abs=1e-9)
    )


def test_prediction_shift_reported_by_the_source_wins() -> None:
    canary = Measurements(prediction_shift=0.05, prediction_samples=100, prediction_counts={"a": 1})
    stable = Measurements(prediction_counts={"b": 1}, prediction_samples=100)
    t = Thresholds(max_error_rate=None, max_prediction_shift=0.1)
    check = judge(canary, stable, t, at=AT).check("predictionShift")
    assert check is not None and check.value == 0.05 and check.verdict == "pass"


def test_js_distance_bounds() -> None:
    assert analysis.js_distance({"a": 1}, {"b": 1}) == pytest.approx(1.0)
    assert analysis.js_distance({"a": 3, "b": 1}, {"a": 6, "b": 2}) == pytest.approx(0.0, abs=1e-9)
    assert analysis.js_distance({}, {"a": 1}) is None
    # hand-computed: p=(1,0), q=(0.5,0.5), m=(0.75,0.25):
    # JS = 0.5*log2(1/0.75) + 0.5*(0.5*log2(0.5/0.75) + 0.5*log2(0.5/0.25))
    p, q = {"a": 1.0}, {"a": 1.0, "b": 1.0}
    expected = 0.5 * math.log2(1 / 0.75) + 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * 1.0)
    assert analysis.js_distance(p, q) == pytest.approx(math.sqrt(expected))


@pytest.mark.parametrize(
    ("metric", "canary", "stable", "max_drop", "verdict", "drop"),
    [
        ("accuracy", 0.90, 0.91, 0.02, "pass", 0.01),
        ("accuracy", 0.85, 0.91, 0.02, "fail", 0.06),
        ("auc", 0.95, 0.90, 0.0, "pass", -0.05),
        ("rmse", 1.5, 1.0, 0.2, "fail", 0.5),
        ("mae", 0.9, 1.0, 0.0, "pass", -0.1),
    ],
)
def test_performance_drop_relative_to_stable(
    metric: str, canary: float, stable: float, max_drop: float, verdict: str, drop: float
) -> None:
    c = Measurements(performance={metric: canary}, labelled_samples=200)
    s = Measurements(performance={metric: stable}, labelled_samples=200)
    t = Thresholds(max_error_rate=None, performance=PerformanceBound(metric, max_drop))
    check = judge(c, s, t, at=AT).check("performance")
    assert check is not None
    assert check.verdict == verdict
    assert check.value == pytest.approx(drop)
    if verdict == "fail":
        assert check.reason == "PerformanceDropped"


def test_performance_without_labels_on_stable_is_inconclusive() -> None:
    c = Measurements(performance={"accuracy": 0.2}, labelled_samples=200)
    s = Measurements(performance={"accuracy": 0.9}, labelled_samples=3)
    t = Thresholds(max_error_rate=None, performance=PerformanceBound("accuracy"))
    check = judge(c, s, t, at=AT).check("performance")
    assert check is not None and check.verdict == "inconclusive"


@pytest.mark.parametrize(
    ("policy", "outcome"), [("pass", "pass"), ("pause", "hold"), ("fail", "fail")]
)
def test_no_data_policy_maps_to_outcome(policy: str, outcome: str) -> None:
    result = judge(Measurements(), Measurements(), Thresholds(no_data=policy), at=AT)  # type: ignore[arg-type]
    assert result.verdict == "NoData"
    assert result.reason == "NoData"
    assert result.outcome == outcome
    assert f"noData: {policy}" in result.message


def test_a_failure_beats_no_data() -> None:
    canary = Measurements(requests=500, errors=100, drift_samples=0)
    t = Thresholds(max_drift_score=0.2, no_data="pass")
    result = judge(canary, STABLE, t, at=AT)
    assert (result.verdict, result.outcome, result.reason) == ("Failed", "fail", "ErrorRateTooHigh")


def test_unset_bounds_skip_their_checks() -> None:
    t = Thresholds(max_error_rate=None)
    result = judge(Measurements(), Measurements(), t, at=AT)
    assert result.checks == ()
    assert (result.verdict, result.outcome) == ("Successful", "pass")


def test_checks_come_in_metric_order() -> None:
    t = Thresholds(
        max_latency_p99_ms=100,
        max_latency_ratio=2,
        max_drift_score=1,
        max_prediction_shift=1,
        performance=PerformanceBound("accuracy", 1),
    )
    result = judge(GOOD, STABLE, t, at=AT, shadow=ShadowThresholds())
    assert [c.metric for c in result.checks] == list(analysis.METRICS)


@pytest.mark.parametrize(
    ("agreement", "compared", "verdict"),
    [(0.99, 200, "pass"), (0.95, 200, "pass"), (0.80, 200, "fail"), (0.99, 20, "inconclusive")],
)
def test_shadow_agreement(agreement: float, compared: int, verdict: str) -> None:
    shadow = Measurements(requests=500, shadow_agreement=agreement, shadow_compared=compared)
    result = judge(shadow, STABLE, Thresholds(), at=AT, shadow=ShadowThresholds(100, 0.95))
    check = result.check("shadowAgreement")
    assert check is not None and check.verdict == verdict
    if verdict == "fail":
        assert result.reason == "ShadowAgreementTooLow"


def test_shadow_without_comparisons_holds_even_when_no_data_passes() -> None:
    shadow = Measurements(requests=500, shadow_compared=0)
    result = judge(shadow, STABLE, Thresholds(no_data="pass"), at=AT, shadow=ShadowThresholds())
    assert result.verdict == "NoData"
    assert result.outcome == "hold"


def test_combining_sources_adds_counts_and_keeps_the_worst_tail() -> None:
    router_a = Measurements(requests=100, errors=1, latency_p50_ms=4.0, latency_p99_ms=30.0)
    router_b = Measurements(requests=300, errors=2, latency_p50_ms=8.0, latency_p99_ms=10.0)
    monitor_a = Measurements(
        drift_score=0.1,
        drift_samples=100,
        prediction_counts={"x": 3},
        prediction_samples=3,
        performance={"accuracy": 0.8},
        labelled_samples=10,
    )
    monitor_b = Measurements(
        drift_score=0.3,
        drift_samples=50,
        prediction_counts={"x": 1, "y": 2},
        prediction_samples=3,
        performance={"accuracy": 0.9},
        labelled_samples=30,
    )
    m = analysis.combine([router_a, router_b, monitor_a, monitor_b])
    assert (m.requests, m.errors) == (400, 3)
    assert m.latency_p99_ms == 30.0
    assert m.latency_p50_ms == pytest.approx((4 * 100 + 8 * 300) / 400)
    assert m.drift_score == 0.3 and m.drift_samples == 150
    assert dict(m.prediction_counts) == {"x": 4, "y": 2}
    assert m.performance["accuracy"] == pytest.approx((0.8 * 10 + 0.9 * 30) / 40)
    assert analysis.combine([]) == Measurements()


def test_combining_ignores_values_without_samples() -> None:
    m = analysis.combine(
        [
            Measurements(requests=0, latency_p99_ms=999.0),
            Measurements(requests=10, latency_p99_ms=5.0),
        ]
    )
    assert m.latency_p99_ms == 5.0


class _FakeProvider:
    def __init__(self, by_role: dict[str, Measurements]) -> None:
        self.by_role = by_role
        self.seen: list[Target] = []

    async def measure(self, target: Target) -> Measurements:
        self.seen.append(target)
        return self.by_role.get(target.role, Measurements())


async def test_measure_and_judge_asks_the_provider_for_both_variants() -> None:
    provider = _FakeProvider({"canary": Measurements(requests=100, errors=50), "stable": STABLE})
    canary = Target("ns", "churn", "canary", "v2")
    stable = Target("ns", "churn", "stable", "v1")
    result = await analysis.measure_and_judge(provider, canary, stable, Thresholds(), at=AT)
    assert sorted(t.role for t in provider.seen) == ["canary", "stable"]
    assert result.reason == "ErrorRateTooHigh"
    assert result.at == AT
