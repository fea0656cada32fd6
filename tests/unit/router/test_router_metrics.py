"""Router metrics: built over the registry passed in, names parse, the table is exported."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from driftline.serving.router.metrics import RouterMetrics
from driftline.serving.router.table import table_from_mapping


def test_metrics_live_on_the_given_registry_and_show_the_table(registry: CollectorRegistry) -> None:
    metrics = RouterMetrics(registry)
    table = table_from_mapping(
        {
            "version": 4,
            "stable": {"model_version": "1", "weight": 70, "endpoints": ["h:1"]},
            "canary": {"model_version": "2", "weight": 30, "endpoints": ["h:2"]},
            "shadow": {"model_version": "3", "mirror_percent": 25, "endpoints": ["h:3"]},
        }
    )
    metrics.show_table(table)
    metrics.count_request("canary", "ok", 0.002)
    metrics.pair_children["stable"].class_agreements.inc(3)
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    assert all(name.startswith("driftline_router_") for name in families)
    assert families["driftline_router_route_table_version"].samples[0].value == 4
    weights = {
        s.labels["variant"]: s.value for s in families["driftline_router_weight_percent"].samples
    }
    assert weights == {"stable": 70, "canary": 30, "shadow": 0}
    assert families["driftline_router_mirror_percent"].samples[0].value == 25
    requests = {
        (s.labels["variant"], s.labels["outcome"]): s.value
        for s in families["driftline_router_requests"].samples
        if s.name.endswith("_total")
    }
    assert requests["canary", "ok"] == 1 and requests["stable", "ok"] == 0


def test_two_routers_do_not_share_metrics() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    RouterMetrics(first).count_request("stable", "ok", 0.002)
    RouterMetrics(second)
    assert b'variant="stable"} 1.0' in generate_latest(first)
    assert b'variant="stable"} 1.0' not in generate_latest(second)
