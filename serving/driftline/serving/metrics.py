"""Prometheus metrics of the model server, built over a registry passed in (never global).

Who uses it: ``driftline serve`` builds one :class:`ServerMetrics` over its registry and hands it to
the app; tests build one over a fresh ``CollectorRegistry``. Names follow Prometheus conventions
(``promtool check metrics`` runs in the tests). Every metric has the labels ``model`` and
``version``:

- ``driftline_server_requests_total`` (counter, + ``outcome``): inference requests by outcome
  (``ok``, ``invalid``, ``not_found``, ``not_ready``, ``too_large``, ``error``);
- ``driftline_server_request_duration_seconds`` (histogram): latency of answered inference
  requests, body parse to encoded response;
- ``driftline_server_batch_rows`` (histogram): rows per model run (dynamic batching);
- ``driftline_server_queue_rows`` (gauge): rows waiting for a model run;
- ``driftline_server_inflight_requests`` (gauge): inference requests being answered;
- ``driftline_server_model_ready`` (gauge): 1 when the model is loaded and warmed up;
- ``driftline_server_records_sent_total`` (counter): record rows delivered to the monitor;
- ``driftline_server_records_dropped_total`` (counter, + ``reason``): record rows dropped
  (``queue_full``, ``send_failed``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

OUTCOMES: Final = ("ok", "invalid", "not_found", "not_ready", "too_large", "error")
"""Every value of the ``outcome`` label (pre-created so rates exist before the first failure)."""

LATENCY_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
"""Seconds: sub-millisecond resolution, because a tabular model answers in well under 1 ms."""

BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
"""Rows per run: powers of two up to the largest sensible batch."""


class ServerMetrics:
    """The server's metric objects, with the label values of the one served model pre-bound.

    Hot-path methods touch pre-bound children only (no label lookups per request).
    """

    def __init__(self, registry: CollectorRegistry, model: str, version: str) -> None:
        labels = ("model", "version")
        self._requests = Counter(
            "driftline_server_requests",
            "Inference requests answered, by outcome.",
            (*labels, "outcome"),
            registry=registry,
        )
        self._outcome = {o: self._requests.labels(model, version, o) for o in OUTCOMES}
        self._ok = self._outcome["ok"]
        self.request_duration = Histogram(
            "driftline_server_request_duration_seconds",
            "Latency of answered inference requests in seconds, body parse to encoded response.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ).labels(model, version)
        self.batch_rows = Histogram(
            "driftline_server_batch_rows",
            "Rows per model run (dynamic batching).",
            labels,
            buckets=BATCH_BUCKETS,
            registry=registry,
        ).labels(model, version)
        self._queue_rows = Gauge(
            "driftline_server_queue_rows",
            "Rows waiting for a model run.",
            labels,
            registry=registry,
        ).labels(model, version)
        self._inflight = Gauge(
            "driftline_server_inflight_requests",
            "Inference requests being answered.",
            labels,
            registry=registry,
        ).labels(model, version)
        self.model_ready = Gauge(
            "driftline_server_model_ready",
            "1 when the model is loaded and warmed up, else 0.",
            labels,
            registry=registry,
        ).labels(model, version)
        self.records_sent = Counter(
            "driftline_server_records_sent",
            "Prediction record rows delivered to the monitor.",
            labels,
            registry=registry,
        ).labels(model, version)
        dropped = Counter(
            "driftline_server_records_dropped",
            "Prediction record rows dropped, by reason (queue_full, send_failed).",
            (*labels, "reason"),
            registry=registry,
        )
        self.records_dropped_queue_full = dropped.labels(model, version, "queue_full")
        self.records_dropped_send_failed = dropped.labels(model, version, "send_failed")

    def observe_ok(self, latency_s: float) -> None:
        """Count one successfully answered inference request and observe its latency."""
        self.request_duration.observe(latency_s)
        self._ok.inc()

    def count(self, outcome: str) -> None:
        """Count one answered inference request with ``outcome`` (one of :data:`OUTCOMES`)."""
        self._outcome[outcome].inc()

    def watch(self, queue_rows: Callable[[], float], inflight: Callable[[], float]) -> None:
        """Read queue depth and in-flight requests from callables at scrape time.

        Nothing is updated per request: the gauges call these when scraped.
        """
        self._queue_rows.set_function(queue_rows)
        self._inflight.set_function(inflight)
