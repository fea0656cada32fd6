"""Drain: a slot that loses its traffic keeps running at weight 0 for ``drain`` seconds, then goes.

We test these aspects, through the fake-clock simulator (state reloaded from status every tick, as
a restarted operator does) and ``plan.desired`` over the stored status:
- promotion: the canary slot (now running the promoted model) stays rendered at weight 0 and at
  its size until the drain ends, then the plan has only stable; local mode's model-level drain
  (``traffic().draining``) names the old stable meanwhile;
- rollback: the canary slot keeps the failed target at weight 0, sized by its last weight;
- a shadow phase aborted: the shadow slot stays with mirror 0;
- supersede: the canary slot is reused by the new target at once (the live variant wins);
- ``drain: 0s`` removes the slot in the same reconcile; the API default is 30 s;
- a restart mid-drain (a fresh state read from status) keeps the same deadline;
- a drained Model that no longer exists is not rendered (and never blocks the plan).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from driftline.operator import plan
from driftline.operator.analysis import Measurements
from driftline.operator.api import Deployment, Model
from driftline.operator.api.deployment import Rollout
from driftline.operator.rollout import DrainSlot, ShadowPolicy, Stage, step, traffic
from driftline.operator.rollout_status import policy_from_spec, state_from_status

from .conftest import Sim, healthy

SimFactory = Callable[..., Sim]
SHA = "b" * 64


def _model(name: str) -> Model:
    return Model.from_manifest(
        {
            "apiVersion": "driftline.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": name, "namespace": "ml"},
            "spec": {
                "family": "churn",
                "version": name,
                "source": {"uri": f"s3://models/{name}.onnx", "sha256": SHA},
                "features": [{"name": "tenure"}],
            },
        }
    )


MODELS = {n: _model(n) for n in ("v1", "v2", "v3")}


def _topology(s: Sim, models: dict[str, Model] | None = None) -> list[tuple[str, str, int, int]]:
    """(role, model, weight, replicas) the plan renders for the simulator's stored status."""
    assert s.status is not None
    body: dict[str, Any] = {
        "apiVersion": "driftline.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": {"name": "churn", "namespace": "ml", "generation": 1},
        "spec": {"model": s.desired, "replicas": 10},
        "status": s.status.to_wire(),
    }
    topo = plan.desired(Deployment.from_manifest(body), MODELS if models is None else models)
    return [(v.role, v.model.name, v.weight, v.replicas) for v in topo.variants]


def test_promotion_keeps_the_canary_slot_at_weight_zero_until_the_drain_ends(
    sim: SimFactory,
) -> None:
    s = sim(drain_s=30.0)
    s.desired = "v2"
    s.run(100, until=lambda x: x.state.stage == Stage.IDLE and x.state.stable == "v2")
    promoted_at = s.t
    assert s.state.drain_slot == DrainSlot("canary", "v2", 100)
    assert traffic(s.state).draining == ("v1",)  # local mode keeps v1's processes by model
    # stable now runs v2 with all traffic; the canary slot keeps its pods (same size) with none
    assert _topology(s) == [("stable", "v2", 100, 10), ("canary", "v2", 0, 10)]
    s.now += timedelta(seconds=1)
    s.run(60, until=lambda x: x.state.drain_slot is None)
    assert s.t == promoted_at + 30
    assert s.kinds()[-1] == "Drained" and s.log[-1][1].from_model == "v1"
    assert _topology(s) == [("stable", "v2", 100, 10)]
    assert s.status is not None and s.status.rollout is not None
    assert s.status.rollout.drain_slot is None and s.status.rollout.drain_until is None


def test_rollback_keeps_the_failed_canary_sized_by_its_last_weight(sim: SimFactory) -> None:
    def bad(role: str, model: str, now: object) -> Measurements:
        if model == "v2":
            return Measurements(requests=400, errors=100, latency_p99_ms=20.0)
        return healthy(role, model, now)  # type: ignore[arg-type]

    s = sim(bad, drain_s=10.0)
    s.desired = "v2"
    s.run(60, until=lambda x: x.state.stage == Stage.ABORTED)
    assert s.state.drain_slot == DrainSlot("canary", "v2", 10)
    assert _topology(s) == [("stable", "v1", 100, 10), ("canary", "v2", 0, 1)]
    s.run(20, until=lambda x: x.state.drain_slot is None)
    assert _topology(s) == [("stable", "v1", 100, 10)]
    assert s.state.stage == Stage.ABORTED  # the abort itself stays until retry or a new model


def test_an_aborted_shadow_phase_keeps_the_shadow_slot_with_no_mirror(sim: SimFactory) -> None:
    s = sim(shadow=ShadowPolicy(percent=40, duration_s=60.0), drain_s=10.0)
    s.desired = "v2"
    s.run(5, until=lambda x: x.state.stage == Stage.SHADOW)
    s.send("abort", "a1")
    s.run(2, until=lambda x: x.state.stage == Stage.ABORTED)
    assert s.state.drain_slot == DrainSlot("shadow", "v2", 40)
    assert _topology(s) == [("stable", "v1", 100, 10), ("shadow", "v2", 0, 4)]


def test_supersede_reuses_the_canary_slot_at_once(sim: SimFactory) -> None:
    s = sim(drain_s=30.0)
    s.desired = "v2"
    s.run(5, until=lambda x: x.state.stage == Stage.CANARY)
    s.desired = "v3"
    s.tick()
    assert s.state.target == "v3" and s.state.drain_slot is None
    assert traffic(s.state).draining == ("v2",)
    assert _topology(s) == [("stable", "v1", 90, 10), ("canary", "v3", 10, 1)]


def test_a_zero_drain_removes_the_slot_in_the_same_reconcile(sim: SimFactory) -> None:
    s = sim(drain_s=0.0)
    s.desired = "v2"
    s.run(100, until=lambda x: x.state.stage == Stage.IDLE and x.state.stable == "v2")
    assert s.state.drain_slot is None and s.state.draining is None
    assert _topology(s) == [("stable", "v2", 100, 10)]


def test_the_api_default_drain_is_thirty_seconds() -> None:
    assert policy_from_spec(Rollout()).drain_s == 30.0
    assert policy_from_spec(Rollout.model_validate({"drain": "2m"})).drain_s == 120.0


def test_a_restart_mid_drain_resumes_with_the_same_deadline(sim: SimFactory) -> None:
    s = sim(drain_s=30.0)
    s.desired = "v2"
    s.run(100, until=lambda x: x.state.stage == Stage.IDLE and x.state.stable == "v2")
    until = s.state.drain_until
    assert until is not None
    # a new operator process: nothing in memory, only the status
    fresh = state_from_status(s.status, s.policy)
    assert fresh == s.state
    same, decisions = step(fresh, s.policy, "v2", now=until - timedelta(seconds=1))
    assert decisions == () and same.drain_slot == DrainSlot("canary", "v2", 100)
    done, decisions = step(fresh, s.policy, "v2", now=until)
    assert [d.kind.value for d in decisions] == ["Drained"] and done.drain_slot is None


def test_a_drained_model_that_is_gone_is_not_rendered(sim: SimFactory) -> None:
    s = sim(drain_s=30.0)
    s.desired = "v3"
    s.run(5, until=lambda x: x.state.stage == Stage.CANARY)
    s.send("abort", "x1")
    s.run(2, until=lambda x: x.state.stage == Stage.ABORTED)
    assert s.state.drain_slot == DrainSlot("canary", "v3", 10)
    assert _topology(s, {"v1": MODELS["v1"]}) == [("stable", "v1", 100, 10)]


def test_the_drained_slot_renders_with_no_traffic_in_a_valid_route_table(sim: SimFactory) -> None:
    from driftline.operator import render
    from driftline.operator.manifests import owner_reference
    from driftline.operator.render.router import route_table
    from driftline.serving.router.table import table_from_mapping

    s = sim(drain_s=30.0)
    s.desired = "v2"
    s.run(100, until=lambda x: x.state.stage == Stage.IDLE and x.state.stable == "v2")
    assert s.status is not None
    body: dict[str, Any] = {
        "apiVersion": "driftline.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": {"name": "churn", "namespace": "ml", "generation": 1},
        "spec": {"model": "v2"},
        "status": s.status.to_wire(),
    }
    topo = plan.desired(Deployment.from_manifest(body), MODELS)
    table = table_from_mapping(route_table(topo))  # the router accepts it
    assert table.weight("stable") == 100 and table.weight("canary") == 0
    owner = owner_reference("driftline.dev/v1alpha1", "Deployment", "churn", "uid")
    kinds = {(m["kind"], m["metadata"]["name"]) for m in render.manifests(topo, owner, "img")}
    assert ("Deployment", "churn-canary") in kinds and ("Service", "churn-canary") in kinds
