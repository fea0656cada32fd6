"""We test these aspects of ``driftline.operator.analysis_prometheus`` (no Prometheus needed here):

- the PromQL of a tick: metric names the router and monitor really register, the selector
  filled in and escaped, the window, the role; shadow ticks read the (stable, shadow) pair;
- answers → measurements: router counters and quantiles (seconds → ms), shadow agreement from
  the two counters, monitor series grouped per pod and merged (rows summed, worst drift share,
  performance of the target's model only, weighted by labelled counts), "not enough data" skipped;
- ``/api/v1/query`` answers parsed; errors, non-vectors and junk are a message, never an exception;
- the provider over ``httpx.MockTransport``: one GET per query, failures are no data;
- the operator settings: prometheus needs a URL; bad URLs and selector templates name the field.
"""

from __future__ import annotations

import json
import math
from urllib.parse import parse_qs, urlsplit

import httpx
import pydantic
import pytest
from prometheus_client import CollectorRegistry

from driftline.operator.analysis import Measurements, Target
from driftline.operator.analysis_prometheus import (
    DEFAULT_SELECTOR,
    PrometheusProvider,
    Sample,
    label_selector,
    measurements_from_samples,
    queries,
    samples_from_response,
)
from driftline.operator.settings import OperatorSettings

CANARY = Target("team-a", "churn", "canary", "churn-v2")
SHADOW = Target("team-a", "churn", "shadow", "churn-v2")


def _registered_names() -> set[str]:
    from driftline.serving.monitor.metrics import MonitorMetrics
    from driftline.serving.router.metrics import RouterMetrics

    registry = CollectorRegistry()
    RouterMetrics(registry)
    MonitorMetrics.build(registry)
    out: set[str] = set()
    for family in registry.collect():
        out.add(family.name)
        out.update({f"{family.name}_total", f"{family.name}_bucket"})
    return out


def test_queries_use_names_the_data_plane_registers() -> None:
    known = _registered_names()
    for target in (CANARY, SHADOW):
        for promql in queries(target, window_s=30).values():
            used = {w for w in promql.replace("(", " ").replace("{", " ").split() if "_" in w}
            metrics = {w for w in used if w.startswith("driftline_")}
            assert metrics and metrics <= known, (promql, metrics - known)


def test_canary_queries_select_the_deployment_role_and_window() -> None:
    q = queries(CANARY, window_s=45)
    sel = 'namespace="team-a",driftline_dev_deployment="churn",variant="canary"'
    live = f'{sel},version="{CANARY.model}"'  # the router's numbers of this Model only
    assert q["requests"] == f"sum(increase(driftline_router_requests_total{{{live}}}[45s]))"
    assert 'outcome=~"server_error|unavailable|timeout"' in q["errors"]
    assert f'version="{CANARY.model}"' in q["errors"] and f'version="{CANARY.model}"' in q["p99"]
    assert q["p99"].startswith("histogram_quantile(0.99, sum by (le) (rate(")
    assert q["drift_share"] == f"driftline_monitor_drift_share{{{sel}}}"


def test_shadow_queries_read_the_stable_shadow_pair() -> None:
    q = queries(SHADOW, window_s=30)
    assert set(q) >= {"mirrored", "shadow_errors", "compared", "class_elements", "class_agreements"}
    assert f'primary="stable",shadow="shadow",version="{SHADOW.model}"' in q["mirrored"]
    assert all(f'version="{SHADOW.model}"' in q[k] for k in ("class_elements", "compared"))
    assert "requests" not in q


def test_selector_values_are_escaped() -> None:
    odd = Target('n"s', "d\\ep", "canary", "m")
    assert label_selector(DEFAULT_SELECTOR, odd) == (
        'namespace="n\\"s",driftline_dev_deployment="d\\\\ep"'
    )
    assert label_selector('job="x",ns="{namespace}"', CANARY) == 'job="x",ns="team-a"'


def s(value: float, **labels: str) -> list[Sample]:
    return [Sample(labels, value)]


def test_router_answers_become_counts_and_milliseconds() -> None:
    m = measurements_from_samples(
        CANARY,
        {
            "requests": s(400.4),
            "errors": s(4.0),
            "p50": s(0.004),
            "p99": s(0.020),
        },
    )
    assert (m.requests, m.errors) == (400, 4)
    assert m.latency_p50_ms == pytest.approx(4.0) and m.latency_p99_ms == pytest.approx(20.0)


def test_no_series_and_nan_quantiles_are_no_data() -> None:
    m = measurements_from_samples(CANARY, {"requests": [], "p99": s(math.nan)})
    assert m == Measurements()


def test_monitor_series_merge_per_pod() -> None:
    pod1, pod2, pod3 = ({"pod": p, "variant": "canary"} for p in ("a", "b", "c"))
    m = measurements_from_samples(
        CANARY,
        {
            "drift_share": [Sample(pod1, 0.1), Sample(pod2, 0.4), Sample(pod3, 0.9)],
            "drift": [Sample(pod1, 0.0), Sample(pod2, 1.0), Sample(pod3, -1.0)],
            "window_samples": [Sample(pod1, 300.0), Sample(pod2, 100.0), Sample(pod3, 5.0)],
            "performance": [
                Sample({**pod1, "version": "churn-v2", "metric": "accuracy"}, 0.9),
                Sample({**pod1, "version": "churn-v2", "metric": "labelled"}, 30.0),
                Sample({**pod2, "version": "churn-v2", "metric": "accuracy"}, 0.6),
                Sample({**pod2, "version": "churn-v2", "metric": "labelled"}, 10.0),
                Sample({**pod2, "version": "churn-v1", "metric": "accuracy"}, 0.1),
            ],
        },
    )
    assert m.drift_samples == 400  # pod c has not enough data: not counted
    assert m.drift_score == pytest.approx(0.4)  # the worst judged pod
    assert m.labelled_samples == 40
    assert m.performance["accuracy"] == pytest.approx((0.9 * 30 + 0.6 * 10) / 40)


def test_shadow_agreement_from_counters() -> None:
    m = measurements_from_samples(
        SHADOW,
        {
            "mirrored": s(200.0),
            "shadow_errors": s(2.0),
            "compared": s(190.0),
            "class_elements": s(190.0),
            "class_agreements": s(171.0),
        },
    )
    assert (m.requests, m.errors, m.shadow_compared) == (200, 2, 190)
    assert m.shadow_agreement == pytest.approx(0.9)


def vector(*items: tuple[dict[str, str], str]) -> bytes:
    result = [{"metric": labels, "value": [1700000000.5, value]} for labels, value in items]
    return json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": result}}
    ).encode()


def test_query_answers_are_parsed_or_explained() -> None:
    assert samples_from_response(vector(({"pod": "a"}, "1.5"), ({}, "NaN")))[0] == Sample(
        {"pod": "a"}, 1.5
    )
    err = json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error"})
    assert "parse error" in str(samples_from_response(err.encode()))
    matrix = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}})
    assert "instant vector" in str(samples_from_response(matrix.encode()))
    assert "not understood" in str(samples_from_response(b"<html>"))


async def test_provider_sends_one_query_each_and_merges() -> None:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/prom/api/v1/query"
        query = parse_qs(urlsplit(str(request.url)).query)["query"][0]
        asked.append(query)
        if "driftline_router_requests_total" in query and "outcome" not in query:
            return httpx.Response(200, content=vector(({}, "250")))
        if "outcome" in query:
            return httpx.Response(503, text="overloaded")  # errors: no data, not a crash
        return httpx.Response(200, content=vector())

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        provider = PrometheusProvider(client, "http://prom.example/prom/", window_s=60)
        m = await provider.measure(CANARY)
    assert len(asked) == len(queries(CANARY, window_s=60))
    assert all("[60s]" in q for q in asked if "increase" in q or "rate" in q)
    assert (m.requests, m.errors) == (250, 0)


async def test_an_unreachable_prometheus_is_no_data() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        m = await PrometheusProvider(client, "http://127.0.0.1:9").measure(CANARY)
    assert m == Measurements()


def test_settings_validate_the_prometheus_choice() -> None:
    ok = OperatorSettings(analysis_provider="prometheus", prometheus_url="http://prom:9090")
    assert ok.prometheus_selector == DEFAULT_SELECTOR
    with pytest.raises(pydantic.ValidationError, match="prometheus_url"):
        OperatorSettings(analysis_provider="prometheus")
    with pytest.raises(pydantic.ValidationError, match="prometheus_url"):
        OperatorSettings(prometheus_url="prom:9090")
    with pytest.raises(pydantic.ValidationError, match="prometheus_selector"):
        OperatorSettings(prometheus_selector='ns="{cluster}"')
