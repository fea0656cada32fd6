"""We test these aspects of ``driftline.operator.analysis_http`` (HTTP through httpx.MockTransport):

- the router's ``/stats`` document → requests, errors, latency; shadow pairs → agreement;
- the monitor's verdict document → drift share, performance with its labelled count, label counts;
- several router replicas and monitor pods are merged;
- every failure is "no data", never an exception: unreachable, 5xx, invalid JSON, unknown shapes,
  numbers of another model;
- the stats window asked for is the configured one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from driftline.operator.analysis import Measurements, Target, Thresholds, judge
from driftline.operator.analysis_http import (
    Endpoints,
    HttpProvider,
    MonitorVerdictDoc,
    RouterStatsDoc,
    measurements_from_monitor,
    measurements_from_router,
)

CANARY = Target("default", "churn", "canary", "churn-v2")
STABLE = Target("default", "churn", "stable", "churn-v1")
SHADOW = Target("default", "churn", "shadow", "churn-v2")


def router_doc(canary_requests: int = 200, canary_errors: int = 3) -> dict[str, object]:
    """Shaped like driftline.serving.router.proxy.stats_document."""
    summary = {"client_errors": 1, "error_rate": None, "fallbacks": 0}
    return {
        "table": {"version": 7, "digest": "abc", "age_s": 1.5},
        "window_s": 30,
        "variants": {
            "stable": {
                "model_version": "churn-v1",
                "weight": 90,
                "endpoints": 2,
                "healthy_endpoints": 2,
                "requests": 1800,
                "errors": 2,
                "latency_ms": {"p50": 4.1, "p90": 9.0, "p99": 20.5},
                **summary,
            },
            "canary": {
                "model_version": "churn-v2",
                "weight": 10,
                "endpoints": 1,
                "healthy_endpoints": 1,
                "requests": canary_requests,
                "errors": canary_errors,
                "latency_ms": {"p50": 4.5, "p90": 10.0, "p99": 25.0},
                **summary,
            },
        },
        "shadow": [
            {
                "primary": "stable",
                "shadow": "shadow",
                "model_version": "churn-v2",
                "mirror_percent": 100,
                "mirrored": 500,
                "compared": 480,
                "uncomparable": 0,
                "shadow_errors": 4,
                "shadow_timeouts": 1,
                "dropped": 0,
                "class_n": 480,
                "class_agreement": 0.97,
                "score_n": 480,
                "score_mean_abs_diff": 0.01,
            }
        ],
    }


def monitor_doc(variant: str = "canary", version: str = "churn-v2") -> dict[str, object]:
    """Shaped like driftline.serving.monitor.service.verdicts."""
    return {
        "reference_sha256": "0" * 64,
        "task": "classification",
        "variants": {
            variant: {
                "version": version,
                "window": {"rows": 400, "complete": True, "first_ts": 1.0, "last_ts": 2.0},
                "verdict": {
                    "status": "drift",
                    "rows": 400,
                    "drifted": ["tenure"],
                    "share": 0.25,
                    "prediction_status": "ok",
                    "features": [{"name": "tenure", "status": "drift", "effect_value": 0.4}],
                },
                "performance": [
                    {
                        "variant": variant,
                        "version": version,
                        "labelled": 120.0,
                        "accuracy": 0.88,
                        "auc": 0.91,
                    }
                ],
                "prediction_counts": {"churn": 40, "stay": 360},
            }
        },
        "ingest": {"frames": 10},
    }


def test_router_stats_for_canary_and_stable() -> None:
    doc = RouterStatsDoc.model_validate(router_doc())
    canary = measurements_from_router(doc, CANARY)
    assert (canary.requests, canary.errors) == (200, 3)
    assert (canary.latency_p50_ms, canary.latency_p99_ms) == (4.5, 25.0)
    stable = measurements_from_router(doc, STABLE)
    assert (stable.requests, stable.latency_p99_ms) == (1800, 20.5)


def test_router_stats_for_a_shadow() -> None:
    m = measurements_from_router(RouterStatsDoc.model_validate(router_doc()), SHADOW)
    assert (m.requests, m.errors) == (500, 5)
    assert (m.shadow_agreement, m.shadow_compared) == (0.97, 480)
    assert m.latency_p99_ms is None


def test_numbers_of_another_model_are_no_data() -> None:
    doc = RouterStatsDoc.model_validate(router_doc())
    assert (
        measurements_from_router(doc, Target("default", "churn", "canary", "churn-v3"))
        == Measurements()
    )
    mdoc = MonitorVerdictDoc.model_validate(monitor_doc(version="churn-v1"))
    assert measurements_from_monitor(mdoc, CANARY) == Measurements()


def test_monitor_verdict() -> None:
    m = measurements_from_monitor(MonitorVerdictDoc.model_validate(monitor_doc()), CANARY)
    assert (m.drift_score, m.drift_samples) == (0.25, 400)
    assert dict(m.performance) == {"accuracy": 0.88, "auc": 0.91}
    assert m.labelled_samples == 120
    assert dict(m.prediction_counts) == {"churn": 40, "stay": 360}
    assert m.prediction_samples == 400


def test_monitor_with_nulls_and_odd_values() -> None:
    doc = monitor_doc()
    variant = doc["variants"]["canary"]  # type: ignore[index]
    variant["verdict"]["share"] = None
    variant["performance"] = [{"labelled": 0, "accuracy": None, "note": "x", "flag": True}]
    m = measurements_from_monitor(MonitorVerdictDoc.model_validate(doc), CANARY)
    assert m.drift_score is None and m.drift_samples == 0
    assert dict(m.performance) == {} and m.labelled_samples == 0


Handler = Callable[[httpx.Request], httpx.Response]


def provider(
    handler: Handler, endpoints: Endpoints, window_s: int = 30
) -> tuple[HttpProvider, httpx.AsyncClient]:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return HttpProvider(client, lambda target: endpoints, window_s=window_s), client


async def test_measuring_merges_routers_and_monitors() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.path == "/stats":
            return httpx.Response(200, json=router_doc())
        return httpx.Response(200, json=monitor_doc())

    endpoints = Endpoints(
        routers=("http://r1:8080", "http://r2:8080/"),
        monitors=("http://m1:9000", "http://m2:9000"),
    )
    p, client = provider(handler, endpoints, window_s=15)
    async with client:
        m = await p.measure(CANARY)
    assert (m.requests, m.errors) == (400, 6)
    assert m.latency_p99_ms == 25.0
    assert (m.drift_score, m.drift_samples, m.labelled_samples) == (0.25, 800, 240)
    assert sorted(seen) == [
        "http://m1:9000/v1/verdict",
        "http://m2:9000/v1/verdict",
        "http://r1:8080/stats?window=15",
        "http://r2:8080/stats?window=15",
    ]


@pytest.mark.parametrize(
    "answer",
    [
        lambda r: httpx.Response(503, json={"error": "not ready"}),
        lambda r: httpx.Response(200, content=b"{not json"),
        lambda r: httpx.Response(200, json={"variants": {"canary": {"requests": "many"}}}),
        lambda r: httpx.Response(200, json=[1, 2, 3]),
        lambda r: httpx.Response(200, json={}),
    ],
)
async def test_bad_sources_are_no_data(answer: Handler) -> None:
    p, client = provider(answer, Endpoints(routers=("http://r1",), monitors=("http://m1",)))
    async with client:
        m = await p.measure(CANARY)
    assert m == Measurements()


async def test_unreachable_sources_are_no_data_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    p, client = provider(refuse, Endpoints(routers=("http://r1",), monitors=("http://m1",)))
    async with client:
        m = await p.measure(CANARY)
    assert m == Measurements()
    assert "unreachable" in caplog.text


async def test_one_bad_router_does_not_hide_the_others() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "r2":
            return httpx.Response(500)
        return httpx.Response(200, json=router_doc(canary_requests=100, canary_errors=20))

    p, client = provider(handler, Endpoints(routers=("http://r1", "http://r2")))
    async with client:
        m = await p.measure(CANARY)
    result = judge(m, Measurements(), Thresholds(), at=datetime(2026, 1, 1, tzinfo=UTC))
    assert result.reason == "ErrorRateTooHigh"


async def test_another_models_numbers_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    p, client = provider(
        lambda r: httpx.Response(200, json=router_doc()), Endpoints(routers=("http://r1",))
    )
    async with client:
        m = await p.measure(Target("default", "churn", "canary", "churn-v9"))
    assert m == Measurements()
    assert "reports model 'churn-v2' for the canary variant, expected 'churn-v9'" in caplog.text


async def test_a_variant_with_no_endpoints_is_no_data() -> None:
    p, client = provider(
        lambda r: httpx.Response(200, content=json.dumps(router_doc())), Endpoints()
    )
    async with client:
        assert await p.measure(CANARY) == Measurements()
