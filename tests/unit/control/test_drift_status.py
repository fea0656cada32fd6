"""A DriftMonitor's status from a fleet verdict (driftline.operator.drift_status).

We test these aspects:
- a judged healthy window: phase Healthy, Ready=True and Drifted=False (kstatus Current), every
  input feature's result with its test, statistic, corrected p-value and bound, the prediction's
  result apart, the score (largest effect / threshold) below 1;
- a drifted window: phase Drifted, Drifted=True with DriftDetected naming the features, score
  above 1, kstatus still Current (the monitor works), a DriftDetected transition and the action
  due once (not again on the next drifted window); a healthy window after it is DriftRecovered;
- a window below minSamples: InsufficientData, Reconciling (kstatus InProgress), no recovery;
- segments: per feature=value results with their samples and drifted features;
- a monitor that cannot evaluate: Failed and Stalled for a missing object, Pending otherwise;
- one evaluation through its seams (drift_controller.evaluate): the variant's Model comes from the
  Deployment's status and the fleet reader is asked for exactly that variant; a missing
  Deployment is DeploymentNotFound, a variant not serving VariantNotServing (the reader not
  asked), no profile NoProfile, no sidecar answering NoMonitorData;
- due(): never evaluated, a new generation, or the interval elapsed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from driftline.operator import analysis, drift_controller, drift_status, names
from driftline.operator import drift_status as ds
from driftline.operator.analysis_http import FleetDriftResult
from driftline.operator.api import Deployment
from driftline.operator.api.driftmonitor import DriftMonitor, DriftMonitorSpec, DriftMonitorStatus
from driftline.operator.conditions import KStatus, find, kstatus
from driftline.serving.drift.decide import DecisionConfig, Verdict
from driftline.serving.drift.evaluate import evaluate_table
from driftline.serving.drift.profile import Profile, Source, build_profile

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def monitor(status: DriftMonitorStatus | None = None, **spec: Any) -> DriftMonitor:
    body: dict[str, Any] = {
        "apiVersion": "driftline.dev/v1alpha1",
        "kind": "DriftMonitor",
        "metadata": {"name": "churn-drift", "namespace": "default", "generation": 3},
        "spec": {"deployment": "churn", "variant": "canary", **spec},
    }
    m = DriftMonitor.model_validate(body)
    return m.model_copy(update={"status": status}) if status is not None else m


def profile(segments: tuple[str, ...] = ()) -> Profile:
    rng = np.random.default_rng(3)
    n = 6000
    table = {
        "a": rng.normal(size=n),
        "b": rng.normal(size=n),
        "plan": rng.choice(np.array(["basic", "pro"]), size=n),
        "prediction": rng.normal(size=n),
    }
    sources = {"prediction": Source("output", "y", 0)}
    return build_profile(
        table, "1" * 64, categorical=["plan"], sources=sources, segments=list(segments)
    )


def verdict(shift: float, rows: int = 3000, segments: tuple[str, ...] = ()) -> Verdict:
    rng = np.random.default_rng(9)
    p = profile(segments)
    table = {
        "a": rng.normal(loc=shift, size=rows),
        "b": rng.normal(size=rows),
        "plan": rng.choice(np.array(["basic", "pro"]), size=rows),
        "prediction": rng.normal(loc=shift, size=rows),
    }
    cfg = DecisionConfig(predictions=frozenset({"prediction"}), min_samples=200)
    return evaluate_table(p, table, cfg).verdict


def state(s: DriftMonitorStatus) -> KStatus:
    return kstatus(generation=3, observed_generation=s.observed_generation, conditions=s.conditions)


def drifted_condition(s: DriftMonitorStatus) -> tuple[str, str]:
    c = find(s.conditions, ds.DRIFTED)
    assert c is not None
    return str(c.status), c.reason


def test_a_healthy_window() -> None:
    new = ds.evaluated_status(monitor(), verdict(0.0), "churn-v1", NOW)
    assert (new.phase, new.drifted, new.window_samples, new.model) == (
        "Healthy", False, 3000, "churn-v1")  # fmt: skip
    assert drifted_condition(new) == ("False", "NoDrift")
    assert state(new) is KStatus.CURRENT and new.observed_generation == 3
    assert [f.name for f in new.features] == ["a", "b", "plan"]
    assert all(not f.drifted and f.threshold and f.threshold > 0 for f in new.features)
    assert new.prediction is not None and new.prediction.name == "prediction"
    assert new.score is not None and 0 <= new.score < 1
    assert new.last_evaluated == NOW
    assert ds.transition(None, new) is None
    DriftMonitorStatus.model_validate(new.model_dump(by_alias=True, mode="json"))


def test_drift_is_detected_once_and_recovers() -> None:
    healthy = ds.evaluated_status(monitor(), verdict(0.0), "churn-v1", NOW)
    drifted = ds.evaluated_status(monitor(healthy), verdict(0.6), "churn-v1", NOW)
    assert (drifted.phase, drifted.drifted) == ("Drifted", True)
    status, reason = drifted_condition(drifted)
    assert (status, reason) == ("True", "DriftDetected")
    assert "a" in (drifted.message or "") and "prediction" in (drifted.message or "")
    assert state(drifted) is KStatus.CURRENT
    assert drifted.score is not None and drifted.score > 1
    assert {f.name for f in drifted.features if f.drifted} == {"a"}
    assert drifted.prediction is not None and drifted.prediction.drifted
    assert ds.transition(healthy, drifted) == "DriftDetected"
    assert ds.action_due(monitor(healthy), drifted)
    later = NOW + timedelta(minutes=1)
    still = ds.evaluated_status(monitor(drifted), verdict(0.6), "churn-v1", later)
    assert ds.transition(drifted, still) is None and not ds.action_due(monitor(drifted), still)
    c = find(still.conditions, ds.DRIFTED)
    assert c is not None and c.last_transition_time == NOW  # no flip, no new transition time
    back = ds.evaluated_status(monitor(still), verdict(0.0), "churn-v1", later)
    assert ds.transition(still, back) == "DriftRecovered"


def test_too_few_samples_is_not_a_verdict() -> None:
    drifted = ds.evaluated_status(monitor(), verdict(0.6), "churn-v1", NOW)
    few = ds.evaluated_status(monitor(drifted), verdict(0.6, rows=50), "churn-v1", NOW)
    assert (few.phase, few.drifted, few.window_samples) == ("InsufficientData", False, 50)
    assert drifted_condition(few) == ("False", "InsufficientData")
    assert state(few) is KStatus.IN_PROGRESS
    assert ds.transition(drifted, few) is None  # not a recovery


def test_segments_are_reported() -> None:
    new = ds.evaluated_status(monitor(), verdict(0.6, segments=("plan",)), "churn-v1", NOW)
    got = {(s.feature, s.value): s for s in new.segments}
    assert set(got) == {("plan", "basic"), ("plan", "pro")}
    for s in got.values():
        assert 1000 < s.samples < 2000 and s.drifted and "a" in s.drifted_features


def test_a_monitor_that_cannot_evaluate() -> None:
    gone = ds.failed_status(monitor(), "DeploymentNotFound", "no Deployment churn", NOW)
    assert (gone.phase, gone.drifted) == ("Failed", False)
    assert state(gone) is KStatus.FAILED
    waiting = ds.failed_status(monitor(), "NoPods", "no monitor answered", NOW)
    assert waiting.phase == "Pending" and state(waiting) is KStatus.IN_PROGRESS


class Deployments:
    """Just enough of the cluster seam: Deployments to GET."""

    def __init__(self, items: Mapping[str, dict[str, Any]]) -> None:
        self.items = items

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        assert (api_version, kind, namespace) == (names.API_VERSION, "Deployment", "default")
        return self.items.get(name)

    async def list_objects(
        self, api_version: str, kind: str, namespace: str, selector: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        raise AssertionError("not listed")


class Patchable(Deployments):
    """Deployments that also take merge patches (the rollback action's write)."""

    def __init__(self, items: Mapping[str, dict[str, Any]]) -> None:
        super().__init__(items)
        self.patches: list[tuple[str, dict[str, Any]]] = []

    async def merge_patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        assert (api_version, kind, namespace) == (names.API_VERSION, "Deployment", "default")
        self.patches.append((name, patch))
        return self.items.get(name)


def deployment(status: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": names.API_VERSION,
        "kind": "Deployment",
        "metadata": {"name": "churn", "namespace": "default", "generation": 2},
        "spec": {"model": "churn-v2"},
    }
    if status is not None:
        body["status"] = status
    return body


class Fleet:
    def __init__(self, result: FleetDriftResult | None) -> None:
        self.result = result
        self.asked: list[analysis.Target] = []

    async def __call__(
        self, target: analysis.Target, spec: DriftMonitorSpec
    ) -> FleetDriftResult | None:
        assert spec.deployment == "churn"
        self.asked.append(target)
        return self.result


def run(
    items: Mapping[str, dict[str, Any]], fleet: Fleet, variant: str = "canary"
) -> DriftMonitorStatus:
    new, _ = asyncio.run(
        drift_controller.evaluate(Deployments(items), fleet, monitor(variant=variant), NOW)
    )
    return new


def test_the_variants_window_is_judged() -> None:
    v = verdict(0.6)
    fleet = Fleet(FleetDriftResult(0.5, v.rows, v.status, 2, {}, v))
    live = {"churn": deployment({"stableModel": "churn-v1", "canaryModel": "churn-v2"})}
    new = run(live, fleet)
    assert fleet.asked == [analysis.Target("default", "churn", "canary", "churn-v2")]
    assert (new.phase, new.model, new.window_samples) == ("Drifted", "churn-v2", v.rows)


def test_what_cannot_be_evaluated_says_why() -> None:
    fleet = Fleet(None)
    gone = run({}, fleet)
    assert (gone.phase, gone.conditions[0].reason) == ("Failed", "DeploymentNotFound")
    idle = run({"churn": deployment({"stableModel": "churn-v1"})}, fleet)
    assert idle.phase == "Pending" and "no canary variant" in (idle.message or "")
    assert fleet.asked == []
    no_profile = run({"churn": deployment({"stableModel": "churn-v1"})}, fleet, "stable")
    assert no_profile.phase == "Failed" and "no reference profile" in (no_profile.message or "")
    silent = Fleet(FleetDriftResult(None, 0, None, 0, {"unreachable": 2}))
    quiet = run({"churn": deployment({"stableModel": "churn-v1"})}, silent, "stable")
    assert quiet.phase == "Pending" and "unreachable" in (quiet.message or "")


def test_due() -> None:
    fresh = monitor(interval="5m")
    assert drift_status.due(fresh, NOW)
    done = DriftMonitorStatus(last_evaluated=NOW, observed_generation=3)
    assert not drift_status.due(monitor(done, interval="5m"), NOW + timedelta(minutes=4))
    assert drift_status.due(monitor(done, interval="5m"), NOW + timedelta(minutes=5))
    old_generation = done.model_copy(update={"observed_generation": 2})
    assert drift_status.due(monitor(old_generation, interval="5m"), NOW)


def test_the_handler_writes_status_posts_one_event_and_counts_one_breach(
    monkeypatch: Any,
) -> None:
    import kopf
    from prometheus_client import CollectorRegistry

    from driftline.operator import handlers
    from driftline.operator.metrics import Metrics
    from driftline.operator.settings import OperatorSettings

    events: list[tuple[str, str]] = []
    monkeypatch.setattr(kopf, "warn", lambda body, reason, message: events.append(("W", reason)))
    monkeypatch.setattr(kopf, "info", lambda body, reason, message: events.append(("I", reason)))
    registry = CollectorRegistry()
    v = verdict(0.6)
    cluster = Patchable(
        {"churn": deployment({"stableModel": "churn-v1", "canaryModel": "churn-v2"})}
    )
    ctx = handlers.Context(
        settings=OperatorSettings(),
        metrics=Metrics(registry),
        cluster=cluster,  # type: ignore[arg-type]
        clock=lambda: NOW,
        fleet=Fleet(FleetDriftResult(0.5, v.rows, v.status, 2, {}, v)),
    )
    body: Any = monitor(action="rollback").model_dump(by_alias=True, mode="json", exclude_none=True)
    patch = kopf.Patch()
    asyncio.run(handlers.evaluate_drift_monitor(ctx, body, patch, kopf.Body(body)))
    written = DriftMonitorStatus.model_validate(patch["status"])
    assert (written.phase, written.last_action) == ("Drifted", NOW)
    # action rollback on the canary: the abort command, as `kubectl driftline abort` sends it
    assert "action rollback: aborted the rollout of churn-v2" in (written.message or "")
    [(name, sent)] = cluster.patches
    command = sent["metadata"]["annotations"][names.ANNOTATION_COMMAND]
    assert name == "churn" and command.startswith("abort:")
    assert events == [("W", "DriftDetected")]
    labels = {"namespace": "default", "monitor": "churn-drift", "action": "rollback"}
    assert registry.get_sample_value("driftline_drift_monitor_breaches_total", labels) == 1.0
    score = registry.get_sample_value(
        "driftline_drift_monitor_score", {"namespace": "default", "monitor": "churn-drift"}
    )
    assert score is not None and score > 1

    # Evaluated a minute later, still drifted: no second Event, no second breach.
    body["status"] = patch["status"]
    again = kopf.Patch()
    ctx.clock = lambda: NOW + timedelta(minutes=2)
    asyncio.run(handlers.evaluate_drift_monitor(ctx, body, again, kopf.Body(body)))
    assert events == [("W", "DriftDetected")]
    assert registry.get_sample_value("driftline_drift_monitor_breaches_total", labels) == 1.0
    assert len(cluster.patches) == 1  # the action fires once per breach
    # Not due yet: nothing is read or written.
    body["status"] = again["status"]
    asked = len(ctx.fleet.asked)  # type: ignore[union-attr]
    idle = kopf.Patch()
    asyncio.run(handlers.evaluate_drift_monitor(ctx, body, idle, kopf.Body(body)))
    assert "status" not in idle and len(ctx.fleet.asked) == asked  # type: ignore[union-attr]


def test_rollback_needs_a_rollout_of_the_monitored_variant() -> None:
    stable_only = Deployment.from_manifest(deployment({"stableModel": "v1"}))
    canary = Deployment.from_manifest(deployment({"stableModel": "v1", "canaryModel": "v2"}))
    assert drift_controller.rollback_model(monitor(variant="canary"), canary) == "v2"
    assert drift_controller.rollback_model(monitor(variant="canary"), stable_only) is None
    assert drift_controller.rollback_model(monitor(variant="stable"), canary) is None
    cluster = Patchable({})
    done = asyncio.run(
        drift_controller.rollback(cluster, monitor(variant="canary"), stable_only, NOW, "ab")
    )
    assert "nothing rolled back" in done and cluster.patches == []
    plain = asyncio.run(
        drift_controller.rollback(Deployments({}), monitor(variant="canary"), canary, NOW, "ab")
    )
    assert "cannot patch" in plain
