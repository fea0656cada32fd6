"""Promotion without rolling the stable in place: the ``Promoting`` stage.

When the target passes (or ``promote``), the operator (which passes the readiness fact
``rolled_out``) routes 100% to the canary, rolls ``<dep>-stable`` to the new Model, and only when
that Deployment is fully rolled out and ready on it routes everything back to stable and drains
the canary. We test:
- every transition in and out of ``Promoting`` as a table (state, inputs -> state, decisions);
- the commands while promoting (only ``abort`` applies; a second one does not);
- a spec change while promoting (back to the old Model: roll the stable back; a third Model: waits
  and starts right after the promotion);
- the progress deadline while promoting (held, Degraded, traffic stays on the canary; it still
  finishes once the stable is ready);
- the views: traffic, plan topology, status round trip, summary, wake time, no analysis;
- the whole run through the fake-clock simulator (state reloaded from status every tick, as a
  restarted operator does), and local mode's path (``rolled_out=None``: promoted at once);
- ``status.rolled_out_model``, the fact read from the child apps/v1 Deployment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from driftline.operator import plan, status
from driftline.operator.api import Deployment, Model
from driftline.operator.api.deployment import DeploymentStatus
from driftline.operator.rollout import (
    PAUSE_DEADLINE,
    PROMOTE_POLL_S,
    Command,
    DrainSlot,
    Policy,
    RolloutState,
    Stage,
    Step,
    analysis_request,
    command_blocker,
    step,
    traffic,
    wake_at,
)
from driftline.operator.rollout_status import state_from_status, summarize, write_status

from .conftest import Sim

SimFactory = Callable[..., Sim]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(seconds=100)
POLICY = Policy(
    steps=(Step(10, 20.0), Step(50, 20.0), Step(100, 20.0)),
    interval_s=10.0,
    progress_deadline_s=120.0,
    drain_s=5.0,
)
CANARY_LAST = RolloutState(
    stable="v1",
    target="v2",
    stage=Stage.CANARY,
    step=2,
    weight=100,
    started_at=T0,
    stage_started_at=T0 + timedelta(seconds=60),
    progress_at=T0 + timedelta(seconds=60),
)
PROMOTING = replace(
    CANARY_LAST,
    stage=Stage.PROMOTING,
    stable="v2",
    previous="v1",
    step=None,
    reason="AllStepsPassed",
    message="promoting v2",
    stage_started_at=T0 + timedelta(seconds=90),
    progress_at=T0 + timedelta(seconds=90),
)
"""Promoting, the stable slot rolling to v2 (its traffic drained)."""
ROUTING = replace(PROMOTING, stable="v1", stage_started_at=NOW - timedelta(seconds=1))
"""Promoting, just entered: 100% on the canary, the stable slot still on v1 while it drains."""
SCALING = replace(ROUTING, weight=10, progress_at=NOW - timedelta(seconds=1))
"""Promoting, promoted at a 10% step: the canary scales to full size before it takes 100%."""
REVERTING = replace(PROMOTING, stable="v1", previous=None, reason="ManualAbort")
"""Promoting after an abort: the stable slot rolls back to v1."""


def _run(
    state: RolloutState,
    *,
    desired: str | None = "v2",
    rolled_out: Mapping[str, str] | None = None,
    verb: str | None = None,
    now: datetime = NOW,
) -> tuple[RolloutState, list[str]]:
    commands = [Command(verb, f"{verb}-1")] if verb else []  # type: ignore[arg-type]
    out, decisions = step(state, POLICY, desired, now=now, commands=commands, rolled_out=rolled_out)
    return out, [d.kind.value for d in decisions]


# --------------------------------------------------------------------------- transitions (table)

ENTER = replace(CANARY_LAST, stage_started_at=T0, progress_at=T0)
"""The last step, held long enough; a command makes it move (no analysis tick needed)."""
SETTLED = T0 + timedelta(seconds=99 + 5)
"""When ``ROUTING``'s drain (5 s) ends: the stable slot may roll."""

TRANSITIONS: list[tuple[str, RolloutState, dict[str, Any], dict[str, Any], list[str]]] = [
    (
        "promote at the last step -> Promoting: canary 100%, the stable slot stays on v1 first",
        ENTER,
        {"verb": "promote", "rolled_out": {"stable": "v1"}},
        {"stage": Stage.PROMOTING, "stable": "v1", "previous": "v1", "target": "v2", "weight": 100},
        ["PromotionStarted"],
    ),
    (
        "promote at step 1 -> Promoting at weight 10 while the canary scales to full size",
        replace(ENTER, step=0, weight=10),
        {"verb": "promote", "rolled_out": {}},
        {"stage": Stage.PROMOTING, "weight": 10, "stable": "v1", "step": None},
        ["PromotionStarted"],
    ),
    (
        "promote at step 1, the canary already ready at full size: 100% in the same call",
        replace(ENTER, step=0, weight=10),
        {"verb": "promote", "rolled_out": {"stable": "v1", "canary": "v2"}},
        {"stage": Stage.PROMOTING, "weight": 100, "stable": "v1", "stage_started_at": NOW},
        ["PromotionStarted", "StepAdvanced"],
    ),
    (
        "scaling up: the canary not ready at full size yet, the weight stays",
        SCALING,
        {"rolled_out": {"stable": "v1"}, "now": SETTLED + timedelta(seconds=30)},
        {"stage": Stage.PROMOTING, "weight": 10, "stable": "v1", "pause": None},
        [],
    ),
    (
        "scaling up: a canary ready on another Model does not count",
        SCALING,
        {"rolled_out": {"stable": "v1", "canary": "v1"}},
        {"stage": Stage.PROMOTING, "weight": 10},
        [],
    ),
    (
        "scaling up: the canary ready at full size takes 100%, the stable's drain starts now",
        SCALING,
        {"rolled_out": {"stable": "v1", "canary": "v2"}},
        {
            "stage": Stage.PROMOTING,
            "weight": 100,
            "stable": "v1",
            "stage_started_at": NOW,
            "progress_at": NOW,
            "reason": "AllStepsPassed",
        },
        ["StepAdvanced"],
    ),
    (
        "scaling up past the progress deadline: held, the weight stays",
        SCALING,
        {
            "rolled_out": {"stable": "v1"},
            "now": NOW - timedelta(seconds=1) + timedelta(seconds=120),
        },
        {"stage": Stage.PROMOTING, "weight": 10, "pause": PAUSE_DEADLINE},
        ["Paused"],
    ),
    (
        "abort while scaling up: Aborted at once, all traffic on v1",
        SCALING,
        {"verb": "abort", "rolled_out": {"stable": "v1"}},
        {"stage": Stage.ABORTED, "stable": "v1", "target": "v2", "weight": 0},
        ["Aborted"],
    ),
    (
        "local mode (no fact): promoted at once, as before",
        ENTER,
        {"verb": "promote", "rolled_out": None},
        {"stage": Stage.IDLE, "stable": "v2", "previous": None, "weight": 0},
        ["Promoted"],
    ),
    (
        "routing: before the drain ends the stable slot stays on v1",
        ROUTING,
        {"rolled_out": {"stable": "v1"}, "now": SETTLED - timedelta(seconds=1)},
        {"stage": Stage.PROMOTING, "stable": "v1", "weight": 100},
        [],
    ),
    (
        "routing: once the drain ends the stable slot rolls to v2 (the deadline counts from now)",
        ROUTING,
        {"rolled_out": {"stable": "v1"}, "now": SETTLED},
        {"stage": Stage.PROMOTING, "stable": "v2", "progress_at": SETTLED, "weight": 100},
        [],
    ),
    (
        "Promoting, stable still rolling: nothing changes",
        PROMOTING,
        {"rolled_out": {}},
        {"stage": Stage.PROMOTING, "weight": 100},
        [],
    ),
    (
        "Promoting, the stable Deployment still fully on v1 is not ready on v2: wait",
        PROMOTING,
        {"rolled_out": {"stable": "v1"}},
        {"stage": Stage.PROMOTING, "stable": "v2"},
        [],
    ),
    (
        "Promoting, stable fully rolled out on v2: all traffic back to stable, canary drains",
        PROMOTING,
        {"rolled_out": {"stable": "v2"}},
        {
            "stage": Stage.IDLE,
            "stable": "v2",
            "target": None,
            "previous": None,
            "weight": 0,
            "drain_slot": DrainSlot("canary", "v2", 100),
            "drain_until": NOW + timedelta(seconds=5),
            "reason": "AllStepsPassed",
        },
        ["Promoted"],
    ),
    (
        "abort while the stable rolls: it rolls back to v1, the canary keeps 100%",
        PROMOTING,
        {"verb": "abort", "rolled_out": {}},
        {"stage": Stage.PROMOTING, "stable": "v1", "previous": None, "weight": 100},
        ["Aborted"],
    ),
    (
        "abort before the stable rolled (still fully on v1): Aborted at once, all on v1",
        ROUTING,
        {"verb": "abort", "rolled_out": {"stable": "v1"}},
        {"stage": Stage.ABORTED, "stable": "v1", "target": "v2", "weight": 0},
        ["Aborted"],
    ),
    (
        "rolling back, stable still fully on v2: wait (the canary on v2 is the ready one)",
        REVERTING,
        {"rolled_out": {"stable": "v2"}},
        {"stage": Stage.PROMOTING, "stable": "v1", "weight": 100},
        [],
    ),
    (
        "rolling back, stable fully rolled out on v1 again: Aborted, all traffic on stable",
        REVERTING,
        {"rolled_out": {"stable": "v1"}},
        {
            "stage": Stage.ABORTED,
            "stable": "v1",
            "target": "v2",
            "weight": 0,
            "previous": None,
            "drain_slot": DrainSlot("canary", "v2", 100),
            "reason": "ManualAbort",
        },
        [],
    ),
    (
        "spec back to v1 while Promoting: roll the stable back (RolledBack, SpecReverted)",
        PROMOTING,
        {"desired": "v1", "rolled_out": {}},
        {"stage": Stage.PROMOTING, "stable": "v1", "reason": "SpecReverted"},
        ["RolledBack"],
    ),
    (
        "spec back to v1 and the stable already ready on v1: Aborted then Idle in one call",
        PROMOTING,
        {"desired": "v1", "rolled_out": {"stable": "v1"}},
        {"stage": Stage.IDLE, "stable": "v1", "target": None, "weight": 0},
        ["RolledBack", "Reverted"],
    ),
    (
        "spec back to v1 while rolling back already: nothing more",
        REVERTING,
        {"desired": "v1", "rolled_out": {}},
        {"stage": Stage.PROMOTING, "stable": "v1"},
        [],
    ),
    (
        "a third Model while Promoting waits",
        PROMOTING,
        {"desired": "v3", "rolled_out": {}},
        {"stage": Stage.PROMOTING, "stable": "v2", "target": "v2"},
        [],
    ),
    (
        "a third Model that waited starts right after the promotion ends",
        PROMOTING,
        {"desired": "v3", "rolled_out": {"stable": "v2"}},
        {"stage": Stage.CANARY, "stable": "v2", "target": "v3", "step": 0, "weight": 10},
        ["Promoted", "RolloutStarted"],
    ),
    (
        "spec.model not ready (desired None) changes nothing while Promoting",
        PROMOTING,
        {"desired": None, "rolled_out": {}},
        {"stage": Stage.PROMOTING},
        [],
    ),
    (
        "past the progress deadline: held, Degraded, traffic stays on the canary",
        PROMOTING,
        {"rolled_out": {}, "now": T0 + timedelta(seconds=90 + 120)},
        {"stage": Stage.PROMOTING, "pause": PAUSE_DEADLINE, "weight": 100},
        ["Paused"],
    ),
    (
        "just before the deadline: nothing",
        PROMOTING,
        {"rolled_out": {}, "now": T0 + timedelta(seconds=90 + 119)},
        {"stage": Stage.PROMOTING, "pause": None},
        [],
    ),
    (
        "held past the deadline, then the stable gets ready: promoted",
        replace(PROMOTING, pause=PAUSE_DEADLINE),
        {"rolled_out": {"stable": "v2"}, "now": T0 + timedelta(seconds=400)},
        {"stage": Stage.IDLE, "stable": "v2", "pause": None},
        ["Promoted"],
    ),
    (
        "held past the deadline, abort: the stable rolls back to v1",
        replace(PROMOTING, pause=PAUSE_DEADLINE),
        {"verb": "abort", "rolled_out": {}, "now": T0 + timedelta(seconds=400)},
        {"stage": Stage.PROMOTING, "stable": "v1", "pause": None},
        ["Aborted"],
    ),
    (
        "promote from Aborted (forced): Promoting, at weight 0 until the canary is full size",
        replace(ENTER, stage=Stage.ABORTED, weight=0, stage_started_at=None, progress_at=None),
        {"verb": "promote", "rolled_out": {}},
        {"stage": Stage.PROMOTING, "stable": "v1", "previous": "v1", "weight": 0},
        ["PromotionStarted"],
    ),
]


@pytest.mark.parametrize(
    ("state", "inputs", "expected", "kinds"),
    [pytest.param(s, i, e, k, id=name) for name, s, i, e, k in TRANSITIONS],
)
def test_transition(
    state: RolloutState, inputs: dict[str, Any], expected: dict[str, Any], kinds: list[str]
) -> None:
    out, decided = _run(state, **inputs)
    assert {k: getattr(out, k) for k in expected} == expected
    assert decided == kinds
    again, repeated = _run(out, **inputs)
    assert (again, repeated) == (out, []), "a step re-run on its output changes nothing"


@pytest.mark.parametrize(
    ("state", "verb", "blocker"),
    [
        (PROMOTING, "promote", "a promotion is in progress (only abort applies)"),
        (PROMOTING, "retry", "a promotion is in progress (only abort applies)"),
        (PROMOTING, "pause", "a promotion is in progress (only abort applies)"),
        (PROMOTING, "resume", "a promotion is in progress (only abort applies)"),
        (PROMOTING, "abort", None),
        (REVERTING, "abort", "already rolling the stable variant back"),
    ],
)
def test_commands_while_promoting(state: RolloutState, verb: str, blocker: str | None) -> None:
    assert command_blocker(state, verb) == blocker  # type: ignore[arg-type]
    out, kinds = _run(state, verb=verb, rolled_out={}, desired=state.stable)
    if blocker is None:
        assert kinds == ["Aborted"]
    else:
        assert kinds == ["CommandIgnored"]
        assert replace(out, commands=()) == state


def test_an_abort_is_counted_as_a_rollback_once() -> None:
    _, decisions = step(
        PROMOTING, POLICY, "v2", now=NOW, commands=[Command("abort", "a1")], rolled_out={}
    )
    assert [d.rollback for d in decisions] == [True]
    assert decisions[0].warning
    reverted, _ = step(
        PROMOTING, POLICY, "v2", now=NOW, commands=[Command("abort", "a1")], rolled_out={}
    )
    _, finished = step(reverted, POLICY, "v2", now=NOW, rolled_out={"stable": "v1"})
    assert not any(d.rollback for d in finished)


# ------------------------------------------------------------------------------------------ views


def test_traffic_while_promoting_is_all_on_the_canary() -> None:
    t = traffic(ROUTING)
    assert (t.stable, t.stable_weight, t.canary, t.canary_weight) == ("v1", 0, "v2", 100)
    t = traffic(PROMOTING)
    assert (t.stable, t.stable_weight, t.canary, t.canary_weight) == ("v2", 0, "v2", 100)
    t = traffic(REVERTING)
    assert (t.stable, t.stable_weight, t.canary, t.canary_weight) == ("v1", 0, "v2", 100)


def test_no_analysis_and_a_short_wake_while_promoting() -> None:
    assert analysis_request(PROMOTING, POLICY) is None
    assert wake_at(ROUTING, POLICY, NOW) == SETTLED  # the stable slot rolls then
    assert wake_at(PROMOTING, POLICY, NOW) == NOW + timedelta(seconds=PROMOTE_POLL_S)
    fast = replace(POLICY, interval_s=1.0)
    assert wake_at(PROMOTING, fast, NOW) == NOW + timedelta(seconds=1)
    # the deadline is a wake too (when it comes before the next poll)
    late = T0 + timedelta(seconds=90 + 119.5)
    assert wake_at(PROMOTING, POLICY, late) == T0 + timedelta(seconds=90 + 120)
    # scaling the canary up: readiness is polled, nothing drains yet
    assert wake_at(SCALING, POLICY, NOW) == NOW + timedelta(seconds=PROMOTE_POLL_S)


@pytest.mark.parametrize(
    ("state", "phase", "reason", "previous"),
    [
        (ROUTING, "Progressing", "Promoting", "v1"),
        (PROMOTING, "Progressing", "Promoting", "v1"),
        (REVERTING, "Progressing", "RollingBack", None),
        (replace(PROMOTING, pause=PAUSE_DEADLINE), "Degraded", PAUSE_DEADLINE, "v1"),
    ],
)
def test_status_round_trip_and_summary(
    state: RolloutState, phase: str, reason: str, previous: str | None
) -> None:
    written = write_status(None, state, (), POLICY, now=NOW, generation=3)
    wire = DeploymentStatus.model_validate(written.to_wire())
    assert state_from_status(wire, POLICY) == replace(state, last_analysis=None)
    assert wire.rollout is not None and wire.rollout.stage == "Promoting"
    assert wire.rollout.previous == previous
    assert (wire.canary_model, wire.canary_weight, wire.stable_model) == (
        "v2",
        100,
        state.stable,
    )
    summary = summarize(state, POLICY)
    assert (summary.phase, summary.reason) == (phase, reason)
    assert wire.phase == phase


def _model(name: str) -> Model:
    return Model.from_manifest(
        {
            "apiVersion": "driftline.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": name, "namespace": "ml"},
            "spec": {
                "family": "churn",
                "version": name,
                "source": {"uri": f"s3://models/{name}.onnx", "sha256": "b" * 64},
                "features": [{"name": "tenure"}],
            },
        }
    )


@pytest.mark.parametrize(
    ("state", "variants"),
    [
        (ROUTING, [("stable", "v1", 0, 10), ("canary", "v2", 100, 10)]),
        (PROMOTING, [("stable", "v2", 0, 10), ("canary", "v2", 100, 10)]),
        (REVERTING, [("stable", "v1", 0, 10), ("canary", "v2", 100, 10)]),
        # promoted at 10%: the canary is sized fully before it takes more than its 10%
        (SCALING, [("stable", "v1", 90, 10), ("canary", "v2", 10, 10)]),
        # for comparison, the same 10% step before the promotion: one pod
        (replace(ENTER, step=0, weight=10), [("stable", "v1", 90, 10), ("canary", "v2", 10, 1)]),
    ],
)
def test_the_plan_rolls_the_stable_slot_with_no_traffic_and_sizes_the_canary_fully(
    state: RolloutState, variants: list[tuple[str, str, int, int]]
) -> None:
    written = write_status(None, state, (), POLICY, now=NOW, generation=1)
    body = {
        "apiVersion": "driftline.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": {"name": "churn", "namespace": "ml", "generation": 1},
        "spec": {"model": "v2", "replicas": 10},
        "status": written.to_wire(),
    }
    models = {n: _model(n) for n in ("v1", "v2")}
    topology = plan.desired(Deployment.from_manifest(body), models)
    assert [(v.role, v.model.name, v.weight, v.replicas) for v in topology.variants] == variants


# ----------------------------------------------------------------------------- the whole run


def test_a_rollout_waits_in_promoting_until_the_stable_is_rolled_out(sim: SimFactory) -> None:
    s = sim()
    s.rolled_out = {"stable": "v1"}  # the stable Deployment, fully on v1
    s.desired = "v2"
    s.run(200, until=lambda x: x.state.stage == Stage.PROMOTING)
    assert s.kinds()[-1] == "PromotionStarted"
    assert s.state.stable == "v1"  # 100% on the canary; v1's pods drain their requests first
    s.run(10, until=lambda x: x.state.stable == "v2")
    assert s.state.stage == Stage.PROMOTING  # now the stable slot rolls; v1 is not v2
    # the stable Deployment rolls for a while (the fact is absent); the state holds and is
    # reloaded from status every tick, as a restarted operator would
    s.rolled_out = {}
    s.run(30)
    assert s.state.stage == Stage.PROMOTING and s.kinds()[-1] == "PromotionStarted"
    assert traffic(s.state).canary_weight == 100
    s.rolled_out = {"stable": "v2"}
    s.run(5, until=lambda x: x.state.stage == Stage.IDLE)
    assert s.state.stable == "v2" and s.kinds()[-1] == "Promoted"
    promoted = s.first("Promoted")[1]
    assert (promoted.from_model, promoted.to_model) == ("v1", "v2")
    assert s.state.drain_slot == DrainSlot("canary", "v2", 100)
    s.run(10, until=lambda x: x.state.drain_slot is None)
    assert s.state.drain_slot is None


def test_a_promotion_stuck_past_the_deadline_is_held_then_finishes(sim: SimFactory) -> None:
    s = sim()
    s.rolled_out = {}
    s.desired = "v2"
    s.run(200, until=lambda x: x.state.stage == Stage.PROMOTING)
    entered = s.t
    s.run(200, until=lambda x: x.state.pause == PAUSE_DEADLINE)
    assert s.t == entered + POLICY.drain_s + POLICY.progress_deadline_s
    assert s.status is not None and s.status.phase == "Degraded"
    assert traffic(s.state).canary_weight == 100  # still on the canary that passed
    s.rolled_out = {"stable": "v2"}
    s.run(5, until=lambda x: x.state.stage == Stage.IDLE)
    assert s.status is not None and s.status.phase == "Healthy"


# --------------------------------------------------------------------------- the readiness fact


def _child(**status_fields: int) -> dict[str, Any]:
    fields = {"observedGeneration": 4, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3}
    fields.update(status_fields)
    return {
        "metadata": {"name": "churn-stable", "generation": 4},
        "spec": {
            "replicas": 3,
            "template": {"metadata": {"labels": {"driftline.dev/model": "v2"}}},
        },
        "status": fields,
    }


@pytest.mark.parametrize(
    ("child", "model"),
    [
        (_child(), "v2"),
        (_child(observedGeneration=5), "v2"),
        (_child(observedGeneration=3), None),  # the controller has not seen the new template
        (_child(updatedReplicas=2), None),  # one pod still runs the old template
        (_child(replicas=4, updatedReplicas=3, readyReplicas=3), None),  # surge: an old pod left
        (_child(readyReplicas=2), None),  # a new pod is not ready yet
        ({**_child(), "status": {}}, None),  # nothing observed
        ({k: v for k, v in _child().items() if k != "status"}, None),
        ({**_child(), "spec": {"replicas": 3, "template": {}}}, None),  # no model label
        (_child(readyReplicas="3"), None),  # type: ignore[arg-type]  # malformed
        (None, None),  # no such Deployment
    ],
)
def test_rolled_out_model(child: dict[str, Any] | None, model: str | None) -> None:
    assert status.rolled_out_model(child) == model


def test_a_canary_counts_as_rolled_out_only_at_the_size_asked() -> None:
    """An autoscaler raises ``spec.replicas`` after the apply: 3 ready pods of 3 is not 5."""
    assert status.rolled_out_model(_child(), min_ready=3) == "v2"
    assert status.rolled_out_model(_child(), min_ready=5) is None


def test_full_size_is_the_autoscaler_minimum_or_the_fixed_replicas() -> None:
    body: dict[str, Any] = {
        "apiVersion": "driftline.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": {"name": "churn", "namespace": "ml"},
        "spec": {"model": "v2", "replicas": 4},
    }
    assert plan.full_size(Deployment.from_manifest(body)) == 4
    body["spec"] = {"model": "v2", "autoscaling": {"minReplicas": 3, "maxReplicas": 9}}
    assert plan.full_size(Deployment.from_manifest(body)) == 3


def test_a_low_weight_promotion_scales_the_canary_before_it_takes_everything(
    sim: SimFactory,
) -> None:
    s = sim()
    s.rolled_out = {"stable": "v1"}
    s.desired = "v2"
    s.run(200, until=lambda x: x.state.stage == Stage.CANARY)
    s.send("promote", "p-1")
    s.run(3, until=lambda x: x.state.stage == Stage.PROMOTING)
    assert traffic(s.state).canary_weight == 10  # still the step's weight
    s.run(20)
    assert s.state.weight == 10 and s.state.stable == "v1"  # waits; the stable does not roll
    s.rolled_out = {"stable": "v1", "canary": "v2"}  # the canary is ready at full size
    s.run(3, until=lambda x: x.state.weight == 100)
    assert "StepAdvanced" in s.kinds()
    s.run(200, until=lambda x: x.state.stable == "v2")
    s.rolled_out = {"stable": "v2"}
    s.run(10, until=lambda x: x.state.stage == Stage.IDLE)
    assert s.kinds()[-1] == "Promoted"
