"""Rollouts end to end: kopf (unmodified) against the API emulator, real processes for the pods.

The operator runs ``runner.run`` in its own thread against ``KubernetesEmulatorPlus`` over HTTP;
its analysis seam (``resolve``) points at a real ``driftline route`` process and real ``driftline
serve`` + ``driftline monitor`` pairs on 127.0.0.1. The test plays kubelet (``harness.Kubelet``):
it starts a pair per variant Deployment from the env the operator rendered, reports ready pods,
and pushes every route table the operator writes to the router. A bounded load loop sends OIP
requests (tritonclient) through the router the whole time.

We test:
- a good model (quickstart v2) is promoted step by step: the route tables and status walk
  25 -> 50 -> 100, then Promoting: the canary keeps 100% while ``churn-stable`` rolls to v2, and
  the router never gives stable traffic to ``churn-stable`` in the middle of that roll; then v2
  is stable with 100% (on pods of the new template) and the canary Deployment is removed;
- a model that fails on real rows (500s) is rolled back for its error rate;
- a slow model is rolled back for its p99 latency;
- a model whose monitor sees the traffic drift from its reference is rolled back for drift;
- a shadow that agrees with stable (quickstart v2) passes its shadow phase and goes on to the
  canary steps; one that disagrees (churn-v3) is rolled back (ShadowAgreementTooLow) with no
  client request ever answered by it (tritonclient asks binary answers: the router compares
  those);
- an operator stopped mid-rollout and replaced by a new one resumes at the same step (the
  step index never goes back), with one child per name.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes
import pytest
from kube_env import KMockThread

from driftline.operator import names


def _load_harness() -> ModuleType:
    name = "driftline_rollout_e2e_harness"  # conftest.py loaded it first
    if name not in sys.modules:
        path = Path(__file__).parent / "harness.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


harness = _load_harness()
ModelSet = Any

pytestmark = [
    pytest.mark.integration,
    pytest.mark.usefixtures("kubeconfig"),
    pytest.mark.timeout(150),
    # As in operator_env: kopf leaves one aiohttp connection for the collector at stop.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

NS = harness.NS
DEP = "churn"
DEPLOYS = names.DEPLOYMENT.resource
APPS = harness.APPS
MODELS = names.MODEL.resource
STEPS = [
    {"weight": 25, "pause": "1s"},
    {"weight": 50, "pause": "1s"},
    {"weight": 100, "pause": "1s"},
]
ROLLOUT_DEADLINE_S = 60.0


def deployment_body(
    model: str, *, shadow: dict[str, Any] | None = None, **analysis: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": names.API_VERSION,
        "kind": "Deployment",
        "metadata": {"name": DEP},
        "spec": {
            "model": model,
            "replicas": 1,
            "monitor": {"enabled": True, "window": 200},
            "rollout": {
                "strategy": "canary",
                "steps": STEPS,
                "analysis": {
                    "interval": "1s",
                    "minSamples": 10,
                    "maxErrorRate": 0.05,
                    "noData": "pause",
                    **analysis,
                },
                "onFailure": "rollback",
                "progressDeadline": "60s",
                "drain": "1s",
            },
        },
    }
    if shadow is not None:
        body["spec"]["rollout"]["shadow"] = shadow
    return body


def api() -> Any:
    return kubernetes.client.CustomObjectsApi()


def create(plural: str, body: dict[str, Any]) -> None:
    api().create_namespaced_custom_object(names.GROUP, names.VERSION, NS, plural, body)


def set_model(model: str) -> None:
    api().patch_namespaced_custom_object(
        names.GROUP, names.VERSION, NS, names.DEPLOYMENT.plural, DEP, {"spec": {"model": model}}
    )


@dataclass
class Env:
    """One test's running system."""

    k8s: KMockThread
    kubelet: Any
    load: Any
    operator: Any

    def status(self) -> dict[str, Any]:
        obj = self.k8s.objects(DEPLOYS, NS).get(DEP) or {}
        return dict(obj.get("status") or {})

    def wait(self, what: str, condition: Any, timeout_s: float = ROLLOUT_DEADLINE_S) -> Any:
        try:
            return harness.wait_for(what, condition, timeout_s, self.kubelet.check)
        except AssertionError as e:
            s = self.status()
            keys = ("phase", "stableModel", "canaryModel", "canaryWeight", "currentStep")
            summary = {k: s.get(k) for k in (*keys, "pauseReason", "analysis", "message")}
            raise AssertionError(
                f"{e}; status: {summary}; history: {s.get('history', [])[-6:]}; "
                f"load ok={self.load.ok if self.load else 0} "
                f"failed={self.load.failed if self.load else 0} "
                f"{self.load.errors[:3] if self.load else ''}"
            ) from None

    def restart_operator(self) -> None:
        self.operator.stop()
        self.operator = harness.OperatorThread(self.kubelet.resolve).start()


@contextlib.contextmanager
def running(
    k8s: KMockThread,
    pool: Any,
    models: ModelSet,
    tmp_path: Path,
    candidate: str,
    *,
    shadow: dict[str, Any] | None = None,
    **analysis: Any,
) -> Iterator[Env]:
    """v1 deployed and Ready behind a real router, the candidate Model Ready, load flowing."""
    kubelet = harness.Kubelet(k8s, pool, DEP, tmp_path).start()
    env = Env(k8s, kubelet, None, None)
    load = None
    try:
        env.operator = harness.OperatorThread(kubelet.resolve).start()
        for name in ("churn-v1", candidate):
            create(names.MODEL.plural, models.manifests[name])
        env.wait(
            "Models Ready",
            lambda: all(
                (k8s.objects(MODELS, NS).get(m, {}).get("status") or {}).get("phase") == "Ready"
                for m in ("churn-v1", candidate)
            ),
        )
        create(names.DEPLOYMENT.plural, deployment_body("churn-v1", shadow=shadow, **analysis))
        env.wait(
            "v1 Healthy behind the router",
            lambda: env.status().get("phase") == "Healthy" and kubelet.router is not None,
        )
        load = env.load = harness.LoadLoop(kubelet.router.url, models.traffic).start()
        env.wait("traffic flowing", lambda: load.ok >= 20, 20)
        yield env
    finally:
        if load is not None:
            load.stop()
        if env.operator is not None:
            env.operator.stop()
        kubelet.stop()


def weights_seen(env: Env, until: Any) -> tuple[list[int], dict[str, Any]]:
    """Distinct consecutive canary weights in status until ``until(status)``; and that status."""
    seen: list[int] = []

    def observe() -> dict[str, Any] | None:
        status = env.status()
        weight = status.get("canaryWeight", 0)
        if status.get("canaryModel") and (not seen or seen[-1] != weight):
            seen.append(weight)
        return status if until(status) else None

    final = env.wait("the rollout to finish", observe)
    return seen, final


def test_a_good_model_is_promoted_step_by_step(
    k8s: KMockThread, pool: Any, models: ModelSet, tmp_path: Path
) -> None:
    started = time.monotonic()
    with running(k8s, pool, models, tmp_path, "churn-v2") as env:
        set_model("churn-v2")
        seen, final = weights_seen(
            env, lambda s: s.get("stableModel") == "churn-v2" and not s.get("canaryModel")
        )
        assert [w for w in seen if w] == [25, 50, 100], seen
        assert final["phase"] in ("Healthy", "Progressing")
        actions = [(h["action"], h["model"]) for h in final["history"]]
        assert ("RolloutStarted", "churn-v2") in actions
        assert actions.count(("StepAdvanced", "churn-v2")) >= 2
        assert ("Promoted", "churn-v2") in actions
        promoting = actions.index(("PromotionStarted", "churn-v2"))
        assert promoting < actions.index(("Promoted", "churn-v2"))
        assert not any(a in ("RolledBack", "Aborted") for a, _ in actions)
        # The router was given the operator's tables in order: canary weights as in status.
        # The first one holds the canary at 0 (no ready pod of it can exist yet).
        canary_weights = [t["canary"]["weight"] for t in env.kubelet.tables if "canary" in t]
        assert canary_weights[0] == 0, canary_weights
        steps = [w for i, w in enumerate(canary_weights) if w and canary_weights[i - 1] != w]
        assert steps == [25, 50, 100], canary_weights
        final_table = env.wait(
            "v2 alone in the route table",
            lambda: (
                (t := env.kubelet.tables[-1])["stable"]["model_version"] == "churn-v2"
                and "canary" not in t
                and t
            ),
        )
        assert final_table["stable"]["weight"] == 100
        # The stable ends on the new model's pods; the canary Deployment is drained and pruned.
        stable, canary = names.variant_name(DEP, "stable"), names.variant_name(DEP, "canary")
        env.wait("the canary Deployment removed", lambda: canary not in env.k8s.objects(APPS, NS))
        # The stable Deployment did roll (v1 -> v2), and never while it had stable traffic.
        assert env.kubelet.stable_rolls >= 1
        assert env.kubelet.half_updated == [], env.kubelet.half_updated
        serving = env.kubelet.variants[stable]
        assert (serving.model, serving.ready) == ("churn-v2", True)
        ok_before = env.load.ok
        env.wait("requests still answered", lambda: env.load.ok >= ok_before + 20, 20)
        # Analysis numbers came from the real router: every promotion step saw samples.
        assert env.load.failed == 0, env.load.errors
    print(f"good rollout: {time.monotonic() - started:.1f}s")


def rolled_back(env: Env, model: str) -> dict[str, Any]:
    """Wait until ``model`` was rolled back and the route table sends nothing to it."""
    status = env.wait(
        f"{model} rolled back",
        lambda: (
            (s := env.status()).get("phase") == "Degraded"
            and not s.get("canaryModel")
            and any(h["action"] == "RolledBack" for h in s.get("history", []))
            and s
        ),
    )
    assert status["stableModel"] == "churn-v1"
    assert status["canaryWeight"] == 0
    table = env.wait(
        "the route table without the canary",
        lambda: "canary" not in (t := env.kubelet.tables[-1]) and t,
    )
    assert table["stable"]["weight"] == 100
    assert table["stable"]["model_version"] == "churn-v1"
    return status


def rollback_reason(status: dict[str, Any]) -> str:
    entry = next(h for h in status["history"] if h["action"] == "RolledBack")
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True"
    assert stalled["reason"] == entry["reason"]
    return str(entry["reason"])


def test_a_canary_that_errors_is_rolled_back_for_its_error_rate(
    k8s: KMockThread, pool: Any, models: ModelSet, tmp_path: Path
) -> None:
    with running(k8s, pool, models, tmp_path, "churn-broken") as env:
        set_model("churn-broken")
        env.wait("the broken canary takes traffic", lambda: env.load.failed >= 5)
        status = rolled_back(env, "churn-broken")
        assert rollback_reason(status) == "ErrorRateTooHigh"
        assert status["analysis"]["verdict"] == "Failed"
        failed_after = env.load.failed
        ok_before = env.load.ok
        env.wait("answers from stable only", lambda: env.load.ok >= ok_before + 50, 20)
        assert env.load.failed == failed_after  # nothing reaches the broken model any more


def test_a_slow_canary_is_rolled_back_for_its_latency(
    k8s: KMockThread, pool: Any, models: ModelSet, tmp_path: Path
) -> None:
    # Slow answers mean fewer of them: a 2 s window holds enough canary samples to judge.
    with running(
        k8s, pool, models, tmp_path, "churn-slow", interval="2s", maxLatencyP99Ms=25
    ) as env:
        set_model("churn-slow")
        status = rolled_back(env, "churn-slow")
        assert rollback_reason(status) == "LatencyTooHigh"
        assert env.load.failed == 0, env.load.errors


def test_a_drifting_canary_is_rolled_back_for_drift(
    k8s: KMockThread, pool: Any, models: ModelSet, tmp_path: Path
) -> None:
    # The analysis judges the pods' merged window with the DriftMonitor's config, so the
    # sidecars' short-test minSamples (harness.MONITOR_MIN_SAMPLES) is declared where the
    # operator reads it; the other fields are the monitor's defaults.
    drift = {"deployment": DEP, "minSamples": harness.MONITOR_MIN_SAMPLES,
             "window": {"size": 1000, "kind": "tumbling"},
             "tests": {"numeric": {"method": "wasserstein", "threshold": 0.1},
                       "categorical": {"method": "jensenshannon", "threshold": 0.1}}}  # fmt: skip
    monitor = {"apiVersion": names.API_VERSION, "kind": "DriftMonitor",
               "metadata": {"name": "churn-drift"}, "spec": drift}  # fmt: skip
    create(names.DRIFT_MONITOR.plural, monitor)
    with running(k8s, pool, models, tmp_path, "churn-shifted", maxDriftScore=0.2) as env:
        set_model("churn-shifted")
        status = rolled_back(env, "churn-shifted")
        assert rollback_reason(status) == "DriftScoreTooHigh"
        # The canary's monitor judged with the profile the operator built from the Model's
        # reference data and mounted from its ConfigMap.
        shifted = [p for p in env.kubelet.pool.pairs.values() if p.model == "churn-shifted"]
        assert shifted and all(p.profile_from_volume for p in shifted)
        assert env.load.failed == 0, env.load.errors


SHADOW = {"percent": 100, "duration": "2s", "minSamples": 40, "minAgreement": 0.75}
"""A short shadow phase: v2 agrees with v1 on ~85% of the traffic's rows, v3 on ~41%."""


def test_a_shadow_that_agrees_goes_on_to_the_canary_steps(
    k8s: KMockThread, pool: Any, models: ModelSet, tmp_path: Path
) -> None:
    with running(k8s, pool, models, tmp_path, "churn-v2", shadow=SHADOW) as env:
        set_model("churn-v2")
        shadowing = env.wait(
            "the shadow phase with mirrored traffic",
            lambda: (s := env.status()).get("shadowModel") == "churn-v2" and s,
        )
        assert shadowing["canaryWeight"] == 0 and not shadowing.get("canaryModel")
        # no copies until the shadow has a ready pod (they would count as its errors), then all
        table = env.wait(
            "a route table mirroring to the ready shadow",
            lambda: (
                (t := env.kubelet.tables[-1]).get("shadow", {}).get("mirror_percent") == 100 and t
            ),
        )
        assert "canary" not in table
        canary = env.wait(
            "the first canary step after the shadow phase",
            lambda: (s := env.status()).get("canaryModel") == "churn-v2" and s,
        )
        assert canary["canaryWeight"] == STEPS[0]["weight"]
        assert not canary.get("shadowModel")
        passed = next(h for h in canary["history"] if h["reason"] == "ShadowPassed")
        assert passed["model"] == "churn-v2"  # ended on its analysis, not by a command
        assert env.load.failed == 0, env.load.errors  # the clients never saw the shadow


def test_a_shadow_that_disagrees_is_rolled_back_before_any_client_sees_it(
    k8s: KMockThread, pool: Any, models: ModelSet, tmp_path: Path
) -> None:
    with running(k8s, pool, models, tmp_path, "churn-v3", shadow=SHADOW) as env:
        set_model("churn-v3")
        status = env.wait(
            "churn-v3 rolled back in its shadow phase",
            lambda: (
                (s := env.status()).get("phase") == "Degraded"
                and not s.get("shadowModel")
                and any(h["action"] == "RolledBack" for h in s.get("history", []))
                and s
            ),
        )
        assert rollback_reason(status) == "ShadowAgreementTooLow"
        assert status["stableModel"] == "churn-v1" and not status.get("canaryModel")
        assert all(h["reason"] != "ShadowPassed" for h in status["history"])
        env.wait("a route table without the shadow", lambda: "shadow" not in env.kubelet.tables[-1])
        assert env.load.failed == 0, env.load.errors


def test_a_restarted_operator_resumes_at_the_same_step(
    k8s: KMockThread, pool: Any, models: ModelSet, tmp_path: Path
) -> None:
    with running(k8s, pool, models, tmp_path, "churn-v2") as env:
        set_model("churn-v2")
        env.wait(
            "the second step",
            lambda: (
                (s := env.status()).get("currentStep") == 1 and s.get("canaryWeight") == 50 and s
            ),
        )
        env.operator.stop()
        # While no operator runs, nothing moves.
        assert env.status()["currentStep"] == 1
        # The new operator's first route-table writes meet a conflict and a server error.
        patches = k8s.requests("patch", "v1/configmaps")
        reads = k8s.requests("get", "v1/configmaps")
        k8s.inject("get", "v1/configmaps", 503, times=1)
        k8s.inject("patch", "v1/configmaps", 409, times=1)
        env.operator = harness.OperatorThread(env.kubelet.resolve).start()
        steps: list[int] = []

        def observe() -> dict[str, Any] | None:
            s = env.status()
            if s.get("currentStep") is not None:
                steps.append(s["currentStep"])
            return s if s.get("stableModel") == "churn-v2" and not s.get("canaryModel") else None

        final = env.wait("promoted by the new operator", observe)
        assert steps and min(steps) >= 1, steps  # never back to the first step
        step2 = [h for h in final["history"] if h["action"] == "StepAdvanced"]
        assert len({h["time"] for h in step2}) == len(step2)
        started_again = [h for h in final["history"] if h["action"] == "RolloutStarted"]
        assert len(started_again) == 1  # the rollout was resumed, not restarted
        env.wait(
            "the drained canary pruned",
            lambda: set(k8s.objects(harness.APPS, NS)) == {"churn-stable", "churn-router"},
        )
        # One object per name: the emulator would answer 409 to a second create; count creates.
        assert k8s.requests("post", harness.APPS) == 3  # stable, router, canary: once each
        assert "churn-routes" in k8s.objects("v1/configmaps", NS)
        # The injected answers were met and retried: the 503 read and the 409 patch, then the
        # patches that moved the weight on (50 -> 100 -> promoted).
        assert k8s.requests("get", "v1/configmaps") >= reads + 2
        assert k8s.requests("patch", "v1/configmaps") >= patches + 3
