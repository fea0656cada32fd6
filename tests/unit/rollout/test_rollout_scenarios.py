"""We test these aspects of ``driftline.operator.rollout`` through whole scenarios on a fake clock:

- a good rollout promoted step by step, with the pauses honoured and the old stable drained;
- rollbacks with the right reason: error rate, slow canary (absolute and relative), drift,
  prediction shift, performance, shadow disagreement;
- no data under each policy (pass, pause, fail) and the progress deadline;
- failureLimit counts consecutive failures; a passing tick resets the count;
- onFailure: pause holds the weight for a human;
- supersede mid-rollout, revert to stable mid-rollout and after an abort, direct strategy;
- shadow phase and approval gates.

Every tick also checks restart safety (the state reloads from the stored status) and idempotence
(re-running the same step changes nothing); see conftest.Sim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from driftline.operator.analysis import Measurements, PerformanceBound, ShadowThresholds, Thresholds
from driftline.operator.conditions import KStatus, kstatus
from driftline.operator.rollout import ShadowPolicy, Stage, Step, traffic

from .conftest import T0, Sim, healthy

SimFactory = Callable[..., Sim]


def secs(now: datetime) -> float:
    return (now - T0).total_seconds()


def model_dependent(
    bad_model: str, bad: Measurements
) -> Callable[[str, str, datetime], Measurements]:
    def measure(role: str, model: str, now: datetime) -> Measurements:
        return bad if model == bad_model else healthy(role, model, now)

    return measure


def test_first_model_is_deployed_without_a_rollout(sim: SimFactory) -> None:
    s = sim()
    assert s.kinds() == ["Deployed"]
    assert s.state.stable == "v1" and s.state.stage == Stage.IDLE
    assert s.status is not None and s.status.phase == "Healthy"
    assert (
        kstatus(generation=1, observed_generation=1, conditions=s.status.conditions)
        == KStatus.CURRENT
    )


def test_good_rollout_is_promoted_step_by_step(sim: SimFactory) -> None:
    s = sim()
    s.desired = "v2"
    weights: list[int] = []

    def record(x: Sim) -> bool:
        weights.append(x.state.weight)
        return False

    s.run(100, until=record)
    assert s.kinds() == [
        "Deployed",
        "RolloutStarted",
        "StepAdvanced",
        "StepAdvanced",
        "Promoted",
        "Drained",
    ]
    # each step holds its 20 s pause: started at t=1, advanced at 21 and 41, promoted at 61
    assert [t for t, d in s.log if d.kind.value in ("StepAdvanced", "Promoted")] == [21, 41, 61]
    assert s.first("Promoted")[1].reason == "AllStepsPassed"
    assert s.first("Drained") == (66, s.first("Drained")[1])
    assert s.first("Drained")[1].from_model == "v1"
    assert sorted(set(weights)) == [0, 10, 50, 100]
    assert s.state.stable == "v2" and s.state.target is None and s.state.draining is None
    assert s.status is not None and s.status.phase == "Healthy"
    assert [h.action for h in s.status.history][-2:] == ["Promoted", "Drained"]
    assert s.status.variants[0].model == "v2" and s.status.variants[0].weight == 100


def test_promotion_waits_for_a_passing_tick_in_every_step(sim: SimFactory) -> None:
    # A long interval: the hold (20 s) passes before the first tick (30 s) of each step.
    s = sim(interval_s=30.0)
    s.desired = "v2"
    s.run(200, until=lambda x: x.state.stage == Stage.IDLE and x.state.stable == "v2")
    advanced = [t for t, d in s.log if d.kind.value in ("StepAdvanced", "Promoted")]
    assert advanced == [31, 61, 91]


@pytest.mark.parametrize(
    ("bad", "thresholds", "reason"),
    [
        (
            Measurements(requests=400, errors=40, latency_p99_ms=20.0),
            Thresholds(),
            "ErrorRateTooHigh",
        ),
        (
            Measurements(requests=400, latency_p99_ms=900.0),
            Thresholds(max_latency_p99_ms=500.0),
            "LatencyTooHigh",
        ),
        (
            Measurements(requests=400, latency_p99_ms=30.0),
            Thresholds(max_latency_ratio=1.2),
            "LatencyRatioTooHigh",
        ),
        (
            Measurements(requests=400, drift_score=0.8, drift_samples=400),
            Thresholds(max_drift_score=0.2),
            "DriftScoreTooHigh",
        ),
        (
            Measurements(
                requests=400, prediction_counts={"churn": 390, "stay": 10}, prediction_samples=400
            ),
            Thresholds(max_prediction_shift=0.2),
            "PredictionShiftTooHigh",
        ),
        (
            Measurements(requests=400, performance={"accuracy": 0.6}, labelled_samples=400),
            Thresholds(performance=PerformanceBound("accuracy", 0.02)),
            "PerformanceDropped",
        ),
    ],
)
def test_breach_rolls_back_with_the_right_reason(
    sim: SimFactory, bad: Measurements, thresholds: Thresholds, reason: str
) -> None:
    s = sim(model_dependent("v2", bad), thresholds=thresholds)
    s.desired = "v2"
    s.run(60, until=lambda x: x.state.stage == Stage.ABORTED)
    t, decision = s.first("RolledBack")
    assert t == 11  # the first analysis tick, one interval after the canary started
    assert decision.reason == reason
    assert decision.weight == 0
    assert s.state.weight == 0 and s.state.stable == "v1" and s.state.target == "v2"
    assert traffic(s.state).canary is None and traffic(s.state).stable_weight == 100
    assert traffic(s.state).draining == ("v2",)
    assert s.status is not None
    assert s.status.phase == "Degraded"
    assert (
        kstatus(generation=1, observed_generation=1, conditions=s.status.conditions)
        == KStatus.FAILED
    )
    stalled = s.status.condition("Stalled")
    assert stalled is not None and stalled.reason == reason
    assert s.status.history[-1].action == "RolledBack"
    # the aborted rollout stays aborted: no retry storm while spec.model still says v2
    s.run(120)
    assert s.kinds().count("RolloutStarted") == 1
    assert s.kinds()[-1] == "Drained"


def test_breach_in_a_later_step_is_rolled_back(sim: SimFactory) -> None:
    def measure(role: str, model: str, now: datetime) -> Measurements:
        if model == "v2" and secs(now) >= 30:  # degrades during step 2
            return Measurements(requests=400, errors=200)
        return healthy(role, model, now)

    s = sim(measure)
    s.desired = "v2"
    s.run(80, until=lambda x: x.state.stage == Stage.ABORTED)
    assert s.kinds() == ["Deployed", "RolloutStarted", "StepAdvanced", "RolledBack"]
    assert s.state.step == 1  # remembered: retry resumes here


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("pass", ["Deployed", "RolloutStarted", "StepAdvanced", "StepAdvanced", "Promoted"]),
        ("fail", ["Deployed", "RolloutStarted", "RolledBack"]),
        ("pause", ["Deployed", "RolloutStarted", "Paused", "RolledBack"]),
    ],
)
def test_no_data_under_each_policy(sim: SimFactory, policy: str, expected: list[str]) -> None:
    quiet = model_dependent("v2", Measurements(requests=3))
    s = sim(quiet, thresholds=Thresholds(no_data=policy))  # type: ignore[arg-type]
    s.desired = "v2"
    s.run(200, until=lambda x: x.state.stage != Stage.CANARY)
    assert s.kinds() == expected
    last = s.log[-1][1]
    if policy == "fail":
        assert last.reason == "NoData"
    if policy == "pause":
        t_paused, paused = s.first("Paused")
        assert (t_paused, paused.reason) == (11, "NoData")
        # held, not failed: rolled back only when the progress deadline (120 s) runs out
        assert (s.log[-1][0], last.reason) == (121, "ProgressDeadlineExceeded")


def test_no_data_hold_resumes_by_itself_when_traffic_arrives(sim: SimFactory) -> None:
    def measure(role: str, model: str, now: datetime) -> Measurements:
        if model == "v2" and secs(now) < 40:
            return Measurements(requests=3)
        return healthy(role, model, now)

    s = sim(measure)
    s.desired = "v2"
    s.run(20)
    assert s.state.pause == "NoData"
    assert s.status is not None and s.status.phase == "Paused"
    assert s.status.pause_reason == "NoData"
    s.run(100, until=lambda x: x.state.stage == Stage.IDLE and x.state.stable == "v2")
    assert s.kinds()[2:5] == ["Paused", "Resumed", "StepAdvanced"]
    assert s.first("Resumed")[1].reason == "DataArrived"
    assert s.state.stable == "v2"


@pytest.mark.parametrize(
    ("limit", "bad_ticks", "rolled_back"), [(0, 1, True), (2, 2, False), (2, 3, True)]
)
def test_failure_limit_counts_consecutive_failed_ticks(
    sim: SimFactory, limit: int, bad_ticks: int, rolled_back: bool
) -> None:
    seen = {"v2": 0}

    def measure(role: str, model: str, now: datetime) -> Measurements:
        if model == "v2":
            seen["v2"] += 1
            if seen["v2"] <= bad_ticks:
                return Measurements(requests=400, errors=100)
        return healthy(role, model, now)

    s = sim(measure, failure_limit=limit)
    s.desired = "v2"
    s.run(300, until=lambda x: x.state.stage != Stage.CANARY)
    assert ("RolledBack" in s.kinds()) is rolled_back
    assert s.kinds().count("AnalysisFailed") == min(bad_ticks, limit)
    if not rolled_back:
        assert s.state.stable == "v2"
        # the step does not advance while the last tick failed: 2 failed ticks delay step 1
        assert s.first("StepAdvanced")[0] == 31


def test_a_passing_tick_resets_the_failure_count(sim: SimFactory) -> None:
    count = {"n": 0}

    def flaky(role: str, model: str, now: datetime) -> Measurements:
        if model == "v2":
            count["n"] += 1
            if count["n"] % 2 == 1:  # fail, pass, fail, pass ...
                return Measurements(requests=400, errors=100)
        return healthy(role, model, now)

    s = sim(flaky, failure_limit=1)
    s.desired = "v2"
    s.run(300, until=lambda x: x.state.stage != Stage.CANARY)
    assert "RolledBack" not in s.kinds()
    assert s.state.stable == "v2"


def test_on_failure_pause_holds_the_weight_for_a_human(sim: SimFactory) -> None:
    bad = model_dependent("v2", Measurements(requests=400, errors=100))
    s = sim(bad, on_failure="pause")
    s.desired = "v2"
    s.run(60)
    assert s.state.stage == Stage.CANARY
    assert (s.state.pause, s.state.weight) == ("AnalysisFailed", 10)
    assert traffic(s.state).canary == "v2"
    assert s.status is not None and s.status.phase == "Degraded"
    assert (
        kstatus(generation=1, observed_generation=1, conditions=s.status.conditions)
        == KStatus.FAILED
    )
    assert s.kinds() == ["Deployed", "RolloutStarted", "Paused"]
    s.run(300)  # held: no deadline, no more decisions while a human decides
    assert s.kinds() == ["Deployed", "RolloutStarted", "Paused"]
    s.send("abort", "a1")
    s.tick()
    assert s.kinds()[-1] == "Aborted" and s.state.weight == 0


def test_progress_deadline_bounds_a_stuck_rollout(sim: SimFactory) -> None:
    quiet = model_dependent("v2", Measurements(requests=0))
    s = sim(quiet, progress_deadline_s=45.0)
    s.desired = "v2"
    s.run(200, until=lambda x: x.state.stage == Stage.ABORTED)
    t, d = s.log[-1]
    assert (t, d.kind.value, d.reason) == (46, "RolledBack", "ProgressDeadlineExceeded")
    assert s.status is not None
    stalled = s.status.condition("Stalled")
    assert stalled is not None and stalled.status == "True"
    assert stalled.reason == "ProgressDeadlineExceeded"


def test_a_new_model_mid_rollout_supersedes_cleanly(sim: SimFactory) -> None:
    s = sim()
    s.desired = "v2"
    s.run(30)
    assert s.state.step == 1
    s.desired = "v3"
    decisions = s.tick()
    assert [d.kind.value for d in decisions] == ["Superseded", "RolloutStarted"]
    assert (s.state.target, s.state.step, s.state.weight) == ("v3", 0, 10)
    assert s.state.failures == 0 and s.state.last_analysis is None
    assert traffic(s.state).draining == ("v2",)
    s.run(120, until=lambda x: x.state.stage == Stage.IDLE)
    assert s.state.stable == "v3"
    assert s.kinds().count("Promoted") == 1


def test_spec_back_to_stable_mid_rollout_rolls_back(sim: SimFactory) -> None:
    s = sim()
    s.desired = "v2"
    s.run(25)
    s.desired = "v1"
    (decision,) = s.tick()
    assert (decision.kind.value, decision.reason) == ("RolledBack", "SpecReverted")
    assert s.state.stage == Stage.IDLE and s.state.weight == 0
    assert s.status is not None and s.status.phase == "Healthy"


def test_spec_back_to_stable_after_an_abort_is_healthy_again(sim: SimFactory) -> None:
    s = sim(model_dependent("v2", Measurements(requests=400, errors=100)))
    s.desired = "v2"
    s.run(30, until=lambda x: x.state.stage == Stage.ABORTED)
    s.now = T0 + timedelta(seconds=40)
    s.desired = "v1"
    decisions = s.tick()
    assert [d.kind.value for d in decisions] == ["Reverted", "Drained"]
    assert s.state.stage == Stage.IDLE and s.state.target is None
    assert s.status is not None and s.status.phase == "Healthy"


def test_direct_strategy_switches_at_once(sim: SimFactory) -> None:
    s = sim(strategy="direct")
    s.desired = "v2"
    (decision,) = s.tick()
    assert (decision.kind.value, decision.reason) == ("Promoted", "DirectRollout")
    assert s.state.stable == "v2" and traffic(s.state).draining == ("v1",)


def test_shadow_phase_then_canary(sim: SimFactory) -> None:
    shadow = ShadowPolicy(percent=50, duration_s=30.0, thresholds=ShadowThresholds(100, 0.95))
    s = sim(shadow=shadow)
    s.desired = "v2"
    s.tick()
    assert s.state.stage == Stage.SHADOW
    t = traffic(s.state)
    assert (t.shadow, t.mirror_percent, t.canary, t.stable_weight) == ("v2", 50, None, 100)
    assert s.status is not None and s.status.shadow_model == "v2" and s.status.canary_model is None
    s.run(200, until=lambda x: x.state.stage == Stage.IDLE)
    assert s.kinds()[:4] == ["Deployed", "RolloutStarted", "ShadowStarted", "StepAdvanced"]
    assert s.first("StepAdvanced")[1].reason == "ShadowPassed"
    assert s.first("StepAdvanced")[0] == 31
    assert s.state.stable == "v2"


def test_shadow_that_disagrees_is_rolled_back(sim: SimFactory) -> None:
    disagree = Measurements(requests=400, shadow_agreement=0.7, shadow_compared=400)
    s = sim(model_dependent("v2", disagree), shadow=ShadowPolicy(100, 30.0))
    s.desired = "v2"
    s.run(60, until=lambda x: x.state.stage == Stage.ABORTED)
    assert s.log[-1][1].reason == "ShadowAgreementTooLow"
    assert s.state.weight == 0 and s.state.mirror == 0


def test_approval_gate_waits_for_resume(sim: SimFactory) -> None:
    s = sim(steps=(Step(10, 20.0, approval=True), Step(100, 20.0)))
    s.desired = "v2"
    s.run(100, until=lambda x: x.state.pause is not None)
    assert s.state.pause == "AwaitingApproval"
    assert s.status is not None and s.status.phase == "Paused"
    s.run(300)
    assert s.state.step == 0  # waits indefinitely, no deadline while waiting for a human
    s.send("resume", "ok-1")
    (decision,) = s.tick()
    assert (decision.kind.value, decision.reason) == ("StepAdvanced", "Approved")
    assert s.state.weight == 100


def test_policy_rejects_what_the_machine_cannot_run() -> None:
    from .conftest import policy

    with pytest.raises(ValueError, match="ascending"):
        policy(steps=(Step(50), Step(10)))
    with pytest.raises(ValueError, match="at least one"):
        policy(steps=())
    with pytest.raises(ValueError, match=r"within 1\.\.100"):
        policy(steps=(Step(0),))


def test_state_is_a_plain_value() -> None:
    from driftline.operator.rollout import RolloutState

    a = RolloutState(stable="v1")
    assert replace(a, stable="v1") == a
    with pytest.raises(AttributeError):
        a.stable = "v2"  # type: ignore[misc]
