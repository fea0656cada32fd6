"""We test these aspects of the rollout machine's scheduling helpers (what the edge loop reads):

- ``analysis_request``: what to measure in shadow and canary stages; nothing when idle, aborted or
  held by a human (a NoData hold keeps measuring, to notice traffic coming back);
- ``analysis_due``: one interval after the step began, then one interval after each tick;
- ``wake_at``: the next moment ``step`` can change something without new input (tick, hold end,
  deadline, drain), never a past hold end (no busy loop).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from driftline.operator.analysis import AnalysisResult, ShadowThresholds
from driftline.operator.rollout import (
    Policy,
    RolloutState,
    ShadowPolicy,
    Stage,
    Step,
    analysis_due,
    analysis_request,
    wake_at,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
P = Policy(
    steps=(Step(10, 60.0), Step(100, 60.0)),
    interval_s=10.0,
    progress_deadline_s=300.0,
    shadow=ShadowPolicy(50, 120.0, ShadowThresholds(10, 0.9)),
)


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


CANARY = RolloutState(
    stable="v1",
    target="v2",
    stage=Stage.CANARY,
    step=0,
    weight=10,
    stage_started_at=s(0),
    progress_at=s(0),
    message="m",
)


def test_what_to_measure_in_each_stage() -> None:
    request = analysis_request(CANARY, P)
    assert request is not None
    assert (request.candidate_role, request.candidate_model, request.stable_model) == (
        "canary",
        "v2",
        "v1",
    )
    assert request.shadow is None and request.thresholds == P.thresholds
    shadow = analysis_request(RolloutState(stable="v1", target="v2", stage=Stage.SHADOW), P)
    assert shadow is not None and shadow.candidate_role == "shadow"
    assert shadow.shadow == ShadowThresholds(10, 0.9)


def test_nothing_to_measure_when_idle_aborted_or_held_by_a_human() -> None:
    assert analysis_request(RolloutState(stable="v1"), P) is None
    assert analysis_request(RolloutState(stable="v1", target="v2", stage=Stage.ABORTED), P) is None
    for pause in ("ManualPause", "AwaitingApproval", "AnalysisFailed"):
        held = RolloutState(stable="v1", target="v2", stage=Stage.CANARY, step=0, pause=pause)
        assert analysis_request(held, P) is None
    waiting = RolloutState(stable="v1", target="v2", stage=Stage.CANARY, step=0, pause="NoData")
    assert analysis_request(waiting, P) is not None


def test_ticks_are_due_an_interval_after_the_step_and_after_each_tick() -> None:
    assert analysis_due(CANARY, P) == s(10)
    ticked = replace(
        CANARY, last_analysis=AnalysisResult(s(17), "Successful", "pass", "AnalysisPassed", "")
    )
    assert analysis_due(ticked, P) == s(27)
    assert analysis_due(RolloutState(stable="v1"), P) is None


def test_wake_at_is_the_earliest_pending_moment() -> None:
    assert wake_at(CANARY, P, s(0)) == s(10)  # the first tick
    # after the hold ended, the next tick is what matters (the past hold end is not returned)
    late = replace(CANARY, last_analysis=AnalysisResult(s(55), "NoData", "hold", "NoData", ""))
    assert wake_at(late, P, s(61)) == s(65)
    # the deadline, when it comes first
    slow = Policy(steps=P.steps, interval_s=100.0, progress_deadline_s=30.0)
    assert wake_at(CANARY, slow, s(0)) == s(30)


def test_wake_at_for_a_drain_and_for_nothing() -> None:
    draining = RolloutState(stable="v2", draining="v1", drain_until=s(8), message="m")
    assert wake_at(draining, P, s(0)) == s(8)
    assert wake_at(RolloutState(stable="v2"), P, s(0)) is None
    held = RolloutState(stable="v1", target="v2", stage=Stage.CANARY, step=0, pause="ManualPause")
    assert wake_at(held, P, s(0)) is None
