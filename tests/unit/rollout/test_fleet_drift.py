"""The HTTP provider's fleet drift: the merged window of every pod decides, not the worst pod.

We test (httpx.MockTransport; the window documents are real ``MonitorService.window_state()``
bodies): two pods whose halves alone are below ``minSamples`` merge into a drifted window, so the
drift score is the merged verdict's share over the merged rows; with no drift source the score is
the worst pod's (the old behaviour, kept for the Prometheus provider and profile-less Models); an
unreachable or foreign pod is skipped and counted; a merged window below ``minSamples`` has no
score (inconclusive, not "no drift"); ``fleet_decision`` maps a DriftMonitor to the same config
the sidecars get from their flags.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from types import ModuleType

import httpx
import numpy as np
import pytest

from driftline.operator.analysis import Target, Thresholds, judge
from driftline.operator.analysis_http import (
    Endpoints,
    FleetDrift,
    HttpProvider,
    fleet_decision,
)
from driftline.operator.api.driftmonitor import DriftMonitorSpec
from driftline.serving import records
from driftline.serving.drift.decide import Correction, DecisionConfig
from driftline.serving.drift.profile import Profile, Source, build_profile
from driftline.serving.monitor.service import MonitorConfig, MonitorService
from driftline.serving.monitor.window import WindowSpec

CANARY = Target("default", "churn", "canary", "churn-v2")


@pytest.fixture(scope="module")
def profile(quickstart_train: ModuleType) -> Profile:
    qs = quickstart_train
    x, _ = qs.make_dataset(4000, 0)
    table = {name: x[:, j].astype(np.float64) for j, name in enumerate(qs.FEATURES)}
    sources = {name: Source("input", "input", j) for j, name in enumerate(qs.FEATURES)}
    return build_profile(table, "sha-ref", categorical=["region", "plan"], sources=sources)


def _pods(qs: ModuleType, profile: Profile, rows: int, shift: float) -> list[MonitorService]:
    x, _ = qs.make_dataset(rows, 11, shift=shift)
    cfg = MonitorConfig(window=WindowSpec(rows=10_000), decision=DecisionConfig(min_samples=600))
    pods = []
    for part in (x[: rows // 2], x[rows // 2 :]):
        pod = MonitorService(profile, cfg, clock=lambda: 2000.0, rng=np.random.default_rng(1))
        n = len(part)
        pod.ingest_batch(
            records.RecordBatch(
                model="churn", version="churn-v2", variant="canary",
                request_ids=tuple(f"r{i}" for i in range(n)), timestamps=np.full(n, 1000.0),
                latencies_ms=np.ones(n), inputs={"input": part},
                outputs={"probabilities": np.full((n, 2), 0.5, dtype=np.float32)},
            )
        )  # fmt: skip
        pods.append(pod)
    return pods


def _provider(
    pods: dict[str, MonitorService | None], fleet: FleetDrift | None
) -> tuple[HttpProvider, httpx.AsyncClient]:
    def handler(request: httpx.Request) -> httpx.Response:
        pod = pods[request.url.host]
        if pod is None:
            return httpx.Response(503, json={"error": "down"})
        if request.url.path == "/v1/window":
            return httpx.Response(200, json=pod.window_state())
        return httpx.Response(200, content=_json(pod.verdicts()))

    async def drift(target: Target) -> FleetDrift | None:
        return fleet

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    endpoints = Endpoints(monitors=tuple(f"http://{host}:9000" for host in pods))
    provider = HttpProvider(client, lambda t: endpoints, drift=drift if fleet else None)
    return provider, client


def _json(doc: object) -> bytes:
    import orjson

    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


async def test_halves_below_min_samples_merge_into_a_drifted_window(
    profile: Profile, quickstart_train: ModuleType
) -> None:
    a, b = _pods(quickstart_train, profile, 1000, shift=1.0)
    fleet = FleetDrift(profile, DecisionConfig(min_samples=600))
    provider, client = _provider({"a": a, "b": b}, fleet)
    async with client:
        m = await provider.measure(CANARY)
    assert m.drift_samples == 1000 and m.drift_score is not None and m.drift_score > 0
    result = provider.last_fleet[CANARY]
    assert (result.pods, result.rows, result.status) == (2, 1000, "drift")
    assert result.verdict is not None and result.verdict.rows == 1000  # for DriftMonitor status
    assert result.verdict.drifted and result.verdict.status == result.status
    verdict = judge(m, m, Thresholds(min_samples=100, max_drift_score=0.0), at=datetime.now(UTC))
    assert verdict.verdict == "Failed"

    worst, client = _provider({"a": a, "b": b}, None)  # no profile: each pod alone decides
    async with client:
        m_worst = await worst.measure(CANARY)
    assert m_worst.drift_samples == 1000  # counts add up ...
    assert m_worst.drift_score == 0.0  # ... but each pod's too-small window has no drifted feature


async def test_unreachable_and_foreign_pods_are_skipped_and_counted(
    profile: Profile, quickstart_train: ModuleType
) -> None:
    a, b = _pods(quickstart_train, profile, 2400, shift=1.0)
    other = replace(profile, reference_sha256="other-sha")  # a pod on the previous profile
    foreign = MonitorService(other, MonitorConfig(), clock=lambda: 2000.0)
    foreign.windows = a.windows
    fleet = FleetDrift(profile, DecisionConfig(min_samples=600))
    provider, client = _provider({"a": a, "b": b, "down": None, "x": foreign}, fleet)
    async with client:
        m = await provider.measure(CANARY)
    result = provider.last_fleet[CANARY]
    assert result.pods == 2 and result.skipped == {"unreachable": 1, "other_profile": 1}
    assert m.drift_samples == 2400 and m.drift_score is not None and m.drift_score > 0


async def test_a_merged_window_below_min_samples_has_no_score(
    profile: Profile, quickstart_train: ModuleType
) -> None:
    a, b = _pods(quickstart_train, profile, 1000, shift=1.0)
    fleet = FleetDrift(profile, DecisionConfig(min_samples=5000))
    provider, client = _provider({"a": a, "b": b}, fleet)
    async with client:
        m = await provider.measure(CANARY)
    assert m.drift_score is None and m.drift_samples == 1000
    assert provider.last_fleet[CANARY].status == "not_enough_data"
    t = Thresholds(min_samples=100, max_drift_score=0.1)
    drift = judge(m, m, t, at=datetime.now(UTC)).check("driftScore")
    assert drift is not None and drift.verdict == "inconclusive" and drift.value is None


def test_fleet_decision_follows_the_drift_monitor(profile: Profile) -> None:
    default = fleet_decision(None, profile)
    assert default == DecisionConfig(min_samples=500)
    spec = DriftMonitorSpec.model_validate(
        {
            "deployment": "churn",
            "window": {"size": 300},
            "minSamples": 1000,
            "pValueCorrection": "fdr",
            "minDriftedFeatures": 2,
            "tests": {
                "numeric": {"method": "psi", "threshold": 0.3},
                "categorical": {"method": "chisquare", "threshold": 0.01},
            },
        }
    )
    cfg = fleet_decision(spec, profile)
    assert cfg.min_samples == 300  # capped at the window, like the sidecar's flag
    assert cfg.correction is Correction.FDR and cfg.min_drifted == 2
    assert (cfg.numeric.effect, cfg.numeric.threshold) == ("psi", 0.3)
    assert cfg.alpha == 0.01 and cfg.categorical.effect == "jensen_shannon"
