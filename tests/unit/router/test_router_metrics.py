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
    assert b'outcome="ok",variant="stable",version=""} 1.0' in generate_latest(first)
    assert b'outcome="ok",variant="stable",version=""} 1.0' not in generate_latest(second)


def _table(version: int, canary: str, shadow: str) -> object:
    return table_from_mapping(
        {
            "version": version,
            "stable": {"model_version": "v1", "weight": 90, "endpoints": ["h:1"]},
            "canary": {"model_version": canary, "weight": 10, "endpoints": ["h:2"]},
            "shadow": {"model_version": shadow, "mirror_percent": 100, "endpoints": ["h:3"]},
        }
    )


def _samples(registry: CollectorRegistry, family: str) -> dict[tuple[str, ...], float]:
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    keys = ("variant", "primary", "version", "outcome")
    return {
        tuple(s.labels.get(k, "") for k in keys): s.value
        for s in families[family].samples
        if s.name.endswith(("_total", "_count"))
    }


def test_a_new_model_version_starts_fresh_series_and_the_old_stop_growing(
    registry: CollectorRegistry,
) -> None:
    metrics = RouterMetrics(registry)
    metrics.show_table(_table(1, "v2", "v5"))  # type: ignore[arg-type]
    metrics.count_request("canary", "server_error", 0.002)
    metrics.count_request("stable", "ok", 0.002)
    metrics.shadow_outcomes["stable", "compared"] += 1
    metrics.pair_children["stable"].class_elements.inc(4)
    metrics.show_table(_table(2, "v2", "v5"))  # same models: same series, nothing retired
    metrics.count_request("canary", "server_error", 0.002)
    metrics.show_table(_table(3, "v3", "v6"))  # a new canary and a new shadow model
    metrics.count_request("canary", "ok", 0.002)
    metrics.shadow_outcomes["stable", "compared"] += 1
    metrics.pair_children["stable"].class_elements.inc(2)
    requests = _samples(registry, "driftline_router_requests")
    assert requests["canary", "", "v2", "server_error"] == 2  # the old model's, frozen
    assert requests["canary", "", "v3", "server_error"] == 0  # the new model starts clean
    assert requests["canary", "", "v3", "ok"] == 1
    assert requests["stable", "", "v1", "ok"] == 1  # stable's model did not change
    latency = _samples(registry, "driftline_router_request_duration_seconds")
    assert latency["canary", "", "v2", ""] == 2 and latency["canary", "", "v3", ""] == 1
    shadow = _samples(registry, "driftline_router_shadow_requests")
    assert shadow["", "stable", "v5", "compared"] == 1
    assert shadow["", "stable", "v6", "compared"] == 1
    elements = _samples(registry, "driftline_router_shadow_class_elements")
    assert elements["", "stable", "v5", ""] == 4 and elements["", "stable", "v6", ""] == 2


def test_only_the_last_retired_versions_stay_exported(registry: CollectorRegistry) -> None:
    metrics = RouterMetrics(registry)
    for i in range(1, 6):
        metrics.show_table(_table(i, f"c{i}", "s"))  # type: ignore[arg-type]
        metrics.count_request("canary", "ok", 0.001)
    versions = {k[2] for k in _samples(registry, "driftline_router_requests") if k[0] == "canary"}
    assert versions == {"c3", "c4", "c5"}  # two retired + the live one
