"""We test these aspects of ``driftline.operator.rollout_status``:

- ``policy_from_spec``: the API's defaults and durations become the machine's plain policy;
- phase, kstatus result and condition reasons for every kind of state (the notes' §4 table);
- the status stores the whole state: write → JSON wire → read gives the same state;
- history is appended per decision and bounded; fields the rollout does not own are kept.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from driftline.operator.analysis import PerformanceBound, ShadowThresholds, Thresholds
from driftline.operator.api.deployment import (
    MAX_HISTORY,
    DeploymentSpec,
    DeploymentStatus,
    VariantStatus,
)
from driftline.operator.conditions import KStatus, kstatus
from driftline.operator.rollout import (
    Decision,
    DecisionKind,
    Policy,
    RolloutState,
    ShadowPolicy,
    Stage,
    Step,
)
from driftline.operator.rollout_status import (
    policy_from_spec,
    state_from_status,
    summarize,
    write_status,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_policy_from_the_api_defaults() -> None:
    spec = DeploymentSpec.model_validate({"model": "churn-v1"})
    p = policy_from_spec(spec.rollout)
    assert p == Policy(
        strategy="canary",
        shadow=None,
        steps=(Step(10, 60.0), Step(50, 60.0), Step(100, 60.0)),
        thresholds=Thresholds(min_samples=50, max_error_rate=0.01, no_data="pause"),
        interval_s=30.0,
        failure_limit=0,
        on_failure="rollback",
        progress_deadline_s=600.0,
    )


def test_policy_from_a_full_spec() -> None:
    spec = DeploymentSpec.model_validate(
        {
            "model": "churn-v2",
            "rollout": {
                "shadow": {"percent": 25, "duration": "2m", "minSamples": 30, "minAgreement": 0.9},
                "steps": [{"weight": 5, "pause": "30s", "approval": True}, {"weight": 100}],
                "analysis": {
                    "interval": "15s",
                    "minSamples": 20,
                    "maxErrorRate": 0.05,
                    "maxLatencyP99Ms": 250,
                    "maxLatencyRatio": 1.5,
                    "maxDriftScore": 0.3,
                    "maxPredictionShift": 0.2,
                    "performance": {"metric": "auc", "maxDrop": 0.01},
                    "failureLimit": 2,
                    "noData": "fail",
                },
                "onFailure": "pause",
                "progressDeadline": "1h",
            },
        }
    )
    p = policy_from_spec(spec.rollout)
    assert p.shadow == ShadowPolicy(25, 120.0, ShadowThresholds(30, 0.9))
    assert p.steps == (Step(5, 30.0, approval=True), Step(100, None))
    assert p.step_pause_s(1) == 15.0  # unset pause = one interval
    assert p.thresholds == Thresholds(
        min_samples=20,
        max_error_rate=0.05,
        max_latency_p99_ms=250,
        max_latency_ratio=1.5,
        max_drift_score=0.3,
        max_prediction_shift=0.2,
        performance=PerformanceBound("auc", 0.01),
        no_data="fail",
    )
    assert (p.interval_s, p.failure_limit, p.on_failure, p.progress_deadline_s) == (
        15.0,
        2,
        "pause",
        3600.0,
    )


P = Policy(steps=(Step(10), Step(50), Step(100)))


@pytest.mark.parametrize(
    ("state", "phase", "kstat", "reason"),
    [
        (RolloutState(), "Progressing", KStatus.IN_PROGRESS, "AwaitingModel"),
        (RolloutState(stable="v1"), "Healthy", KStatus.CURRENT, "Succeeded"),
        (
            RolloutState(stable="v1", target="v2", stage=Stage.CANARY, step=1, weight=50),
            "Progressing",
            KStatus.IN_PROGRESS,
            "RolloutInProgress",
        ),
        (
            RolloutState(stable="v1", target="v2", stage=Stage.SHADOW, mirror=100),
            "Progressing",
            KStatus.IN_PROGRESS,
            "RolloutInProgress",
        ),
        (
            RolloutState(stable="v1", target="v2", stage=Stage.CANARY, step=0, pause="NoData"),
            "Paused",
            KStatus.IN_PROGRESS,
            "NoData",
        ),
        (
            RolloutState(
                stable="v1", target="v2", stage=Stage.CANARY, step=0, pause="AwaitingApproval"
            ),
            "Paused",
            KStatus.IN_PROGRESS,
            "AwaitingApproval",
        ),
        (
            RolloutState(
                stable="v1", target="v2", stage=Stage.CANARY, step=0, pause="AnalysisFailed"
            ),
            "Degraded",
            KStatus.FAILED,
            "AnalysisFailed",
        ),
        (
            RolloutState(stable="v1", target="v2", stage=Stage.ABORTED, reason="ErrorRateTooHigh"),
            "Degraded",
            KStatus.FAILED,
            "ErrorRateTooHigh",
        ),
    ],
)
def test_phase_and_kstatus_per_state(
    state: RolloutState, phase: str, kstat: KStatus, reason: str
) -> None:
    summary = summarize(state, P)
    assert (summary.phase, summary.reason) == (phase, reason)
    status = write_status(None, state, (), P, now=NOW, generation=3)
    assert status.phase == phase
    assert status.observed_generation == 3
    assert kstatus(generation=3, observed_generation=3, conditions=status.conditions) == kstat
    assert {c.type for c in status.conditions} == {"Ready", "Reconciling", "Stalled"}
    assert all(c.reason == reason and c.observed_generation == 3 for c in status.conditions)


def test_canary_message_says_step_and_weight() -> None:
    state = RolloutState(stable="v1", target="v2", stage=Stage.CANARY, step=1, weight=50)
    assert summarize(state, P).message == "canary v2 step 2/3, weight 50%"


def test_status_fields_for_a_canary() -> None:
    state = RolloutState(
        stable="v1",
        target="v2",
        stage=Stage.CANARY,
        step=1,
        weight=50,
        message="m",
        started_at=NOW,
        stage_started_at=NOW + timedelta(seconds=5),
        progress_at=NOW + timedelta(seconds=7),
        commands=("a", "b"),
        draining="v0",
        drain_until=NOW + timedelta(seconds=9),
    )
    status = write_status(None, state, (), P, now=NOW, generation=1)
    wire = status.to_wire()
    assert wire["stableModel"] == "v1" and wire["canaryModel"] == "v2"
    assert wire["canaryWeight"] == 50 and wire["currentStep"] == 1
    assert wire["rollout"]["stage"] == "Canary"
    assert wire["rollout"]["commands"] == ["a", "b"]
    assert [(v["name"], v["model"], v["weight"]) for v in wire["variants"]] == [
        ("stable", "v1", 50),
        ("canary", "v2", 50),
    ]
    assert state_from_status(DeploymentStatus.model_validate(wire), P) == state


def test_writing_keeps_what_the_rollout_does_not_own() -> None:
    before = DeploymentStatus(
        endpoint="http://churn.default.svc/v2/models/churn/infer",
        variants=[
            VariantStatus(name="stable", model="v1", weight=100, replicas=3, ready_replicas=2)
        ],
    )
    after = write_status(
        before, RolloutState(stable="v1", message="x"), (), P, now=NOW, generation=None
    )
    assert after.endpoint == before.endpoint
    assert after.variants[0].replicas == 3 and after.variants[0].ready_replicas == 2
    assert after.observed_generation is None


def test_history_is_appended_and_bounded() -> None:
    d = Decision(DecisionKind.STEP_ADVANCED, "AnalysisPassed", "step 2/3", "v1", "v2", 50)
    status: DeploymentStatus | None = None
    state = RolloutState(
        stable="v1", target="v2", stage=Stage.CANARY, step=1, weight=50, message="m"
    )
    for i in range(MAX_HISTORY + 7):
        status = write_status(status, state, (d,), P, now=NOW + timedelta(seconds=i), generation=1)
    assert status is not None
    assert len(status.history) == MAX_HISTORY
    assert status.history[-1].time == NOW + timedelta(seconds=MAX_HISTORY + 6)
    assert (status.history[-1].action, status.history[-1].model) == ("StepAdvanced", "v2")


def test_conditions_keep_their_transition_time_while_status_holds() -> None:
    state = RolloutState(
        stable="v1", target="v2", stage=Stage.CANARY, step=0, weight=10, message="m"
    )
    first = write_status(None, state, (), P, now=NOW, generation=1)
    later = write_status(first, state, (), P, now=NOW + timedelta(minutes=5), generation=1)
    assert first.condition("Reconciling") == later.condition("Reconciling")


def test_reading_an_empty_status() -> None:
    assert state_from_status(None, P) == RolloutState()
    assert state_from_status(DeploymentStatus(), P) == RolloutState()


def test_reading_a_status_written_without_the_rollout_record() -> None:
    status = DeploymentStatus(
        stable_model="v1", canary_model="v2", canary_weight=10, current_step=0
    )
    state = state_from_status(status, P)
    assert (state.stable, state.target, state.weight, state.step) == ("v1", "v2", 10, 0)
    assert state.stage == Stage.CANARY


def test_a_spec_model_not_ready_yet_is_not_ready() -> None:
    idle = RolloutState(stable="v1", message="v1 serving")
    status = write_status(None, idle, (), P, now=NOW, generation=2, spec_model="v2")
    assert status.phase == "Progressing"
    assert kstatus(generation=2, observed_generation=2, conditions=status.conditions) == (
        KStatus.IN_PROGRESS
    )
    ready = status.condition("Ready")
    assert ready is not None and ready.reason == "AwaitingModel"
    assert "v2" in ready.message
    # the same spec once it serves, or while it rolls out, reads as usual
    assert summarize(idle, P, spec_model="v1").phase == "Healthy"
    canary = RolloutState(stable="v1", target="v2", stage=Stage.CANARY, step=0, weight=10)
    assert summarize(canary, P, spec_model="v2").reason == "RolloutInProgress"
    aborted = RolloutState(stable="v1", target="v2", stage=Stage.ABORTED, reason="ErrorRateTooHigh")
    assert summarize(aborted, P, spec_model="v2").phase == "Degraded"
    assert summarize(aborted, P, spec_model="v3").reason == "AwaitingModel"
