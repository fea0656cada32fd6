"""The operator's Prometheus metrics over an injected registry.

We test these aspects:
- the exposition parses and names follow the conventions (_total, _seconds);
- the phase gauge marks exactly one phase; removed variants' weight series disappear.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from driftline.operator.metrics import Metrics


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_phase_gauge_marks_one_phase(registry: CollectorRegistry) -> None:
    m = Metrics(registry)
    m.set_phase("ns", "iris", "Progressing")
    m.set_phase("ns", "iris", "Healthy")
    s = _samples(registry)
    lab = lambda p: (("deployment", "iris"), ("namespace", "ns"), ("phase", p))  # noqa: E731
    assert s[("driftline_rollout_phase", lab("Healthy"))] == 1.0
    assert s[("driftline_rollout_phase", lab("Progressing"))] == 0.0


def test_weights_of_removed_variants_disappear(registry: CollectorRegistry) -> None:
    m = Metrics(registry)
    m.set_weights("ns", "iris", {"stable": 80, "canary": 20})
    m.set_weights("ns", "iris", {"stable": 100})
    s = _samples(registry)
    weights = {k[1]: v for k, v in s.items() if k[0] == "driftline_rollout_weight"}
    assert weights == {(("deployment", "iris"), ("namespace", "ns"), ("variant", "stable")): 100.0}
    m.forget("ns", "iris")
    assert not [k for k in _samples(registry) if k[0] == "driftline_rollout_weight"]


def test_counters_and_histograms_follow_naming(registry: CollectorRegistry) -> None:
    m = Metrics(registry)
    m.rollbacks.labels("ns", "iris", "ErrorRate").inc()
    m.reconcile_errors.labels("Deployment", "ApiUnavailable").inc()
    m.reconcile_duration.labels("Deployment").observe(0.02)
    m.analysis_results.labels("ns", "iris", "error_rate", "pass").inc()
    s = _samples(registry)
    names = {k[0] for k in s}
    assert "driftline_rollbacks_total" in names
    assert "driftline_reconcile_errors_total" in names
    assert "driftline_analysis_results_total" in names
    assert "driftline_reconcile_duration_seconds_bucket" in names
