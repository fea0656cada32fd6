"""The server's loop-local metrics (driftline.serving.metrics).

We test these aspects: a histogram counts a value equal to a bound in that bound's bucket,
exposes cumulative buckets ending in +Inf with the sum, and refuses unordered bounds; the request
counter and histograms read back through the registry under their Prometheus names, with every
outcome present from the start.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from driftline.serving.metrics import OUTCOMES, LoopHistogram, ServerMetrics


def test_counting_values_into_cumulative_buckets() -> None:
    histogram = LoopHistogram((0.5, 1.0, 2.0))
    for value in (0.1, 0.5, 0.75, 1.0, 3.0):
        histogram.observe(value)
    assert histogram.buckets() == [("0.5", 2.0), ("1.0", 4.0), ("2.0", 4.0), ("+Inf", 5.0)]
    assert histogram.sum == pytest.approx(5.35)


@pytest.mark.parametrize("bounds", [(1.0, 0.5), (1.0, 1.0)])
def test_refusing_bounds_that_are_not_strictly_ascending(bounds: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="strictly ascending"):
        LoopHistogram(bounds)


def test_reading_the_loop_local_metrics_through_the_registry() -> None:
    registry = CollectorRegistry()
    metrics = ServerMetrics(registry, "m", "7")
    labels = {"model": "m", "version": "7"}
    for outcome in OUTCOMES:
        assert (
            registry.get_sample_value(
                "driftline_server_requests_total", {**labels, "outcome": outcome}
            )
            == 0
        )
    metrics.observe_ok(0.0003)
    metrics.observe_ok(0.002)
    metrics.count("invalid")
    metrics.batch_rows.observe(3)
    value = registry.get_sample_value
    assert value("driftline_server_requests_total", {**labels, "outcome": "ok"}) == 2
    assert value("driftline_server_requests_total", {**labels, "outcome": "invalid"}) == 1
    assert value("driftline_server_request_duration_seconds_count", labels) == 2
    assert value("driftline_server_request_duration_seconds_sum", labels) == pytest.approx(0.0023)
    assert (
        value("driftline_server_request_duration_seconds_bucket", {**labels, "le": "0.0005"}) == 1
    )
    assert value("driftline_server_batch_rows_bucket", {**labels, "le": "2.0"}) == 0
    assert value("driftline_server_batch_rows_bucket", {**labels, "le": "4.0"}) == 1
