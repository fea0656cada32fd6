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

from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

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


class LoopHistogram:
    """A histogram updated from the event loop's thread only: a bisect and two adds, no lock.

    Why not ``prometheus_client.Histogram``: its ``observe`` takes a lock per bucket and costs
    about 1.3 us; on the inference path (two observations per request) that was 3 % of a
    one-row request. The server updates and scrapes (``GET /metrics``) on the one loop thread,
    so no lock is needed. Exposed through :class:`ServerMetrics`' collector with the same name,
    labels and buckets as before.
    """

    __slots__ = ("_bounds", "_counts", "_sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        """Create an empty histogram with upper bounds ``bounds`` (ascending; +Inf is added)."""
        if list(bounds) != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ValueError("bucket bounds must be strictly ascending")
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        """Count ``value`` in the first bucket whose upper bound is >= it."""
        self._counts[bisect_left(self._bounds, value)] += 1
        self._sum += value

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative ``(le, count)`` pairs, ending with ``+Inf`` (the exposition's form)."""
        out: list[tuple[str, float]] = []
        total = 0
        for bound, count in zip(
            (*map(floatToGoString, self._bounds), "+Inf"), self._counts, strict=True
        ):
            total += count
            out.append((bound, float(total)))
        return out

    @property
    def sum(self) -> float:
        """Sum of every observed value."""
        return self._sum


class _LoopCollector(Collector):
    """Exposes the loop-local request counter and histograms of one :class:`ServerMetrics`."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._m
        labels = [m.model, m.version]
        requests = CounterMetricFamily(
            "driftline_server_requests",
            "Inference requests answered, by outcome.",
            labels=("model", "version", "outcome"),
        )
        for outcome, count in m.outcomes.items():
            requests.add_metric([*labels, outcome], count)
        yield requests
        for name, doc, histogram in (
            (
                "driftline_server_request_duration_seconds",
                "Latency of answered inference requests in seconds, body parse to encoded "
                "response.",
                m.request_duration,
            ),
            ("driftline_server_batch_rows", "Rows per model run (dynamic batching).", m.batch_rows),
        ):
            family = HistogramMetricFamily(name, doc, labels=("model", "version"))
            family.add_metric(labels, histogram.buckets(), histogram.sum)
            yield family


class ServerMetrics:
    """The server's metric objects, with the label values of the one served model pre-bound.

    Hot-path methods touch pre-bound children only (no label lookups per request). The request
    counter and the two histograms are loop-local (:class:`LoopHistogram`, plain ints): they must
    be updated from the event loop's thread only, which is where the server handles requests.
    """

    def __init__(self, registry: CollectorRegistry, model: str, version: str) -> None:
        labels = ("model", "version")
        self.model, self.version = model, version
        self.outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        """Inference requests answered, by outcome (loop-local)."""
        self.request_duration = LoopHistogram(LATENCY_BUCKETS)
        """Latency of answered inference requests, seconds (loop-local)."""
        self.batch_rows = LoopHistogram(tuple(float(b) for b in BATCH_BUCKETS))
        """Rows per model run (loop-local)."""
        registry.register(_LoopCollector(self))
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
        self.outcomes["ok"] += 1

    def count(self, outcome: str) -> None:
        """Count one answered inference request with ``outcome`` (one of :data:`OUTCOMES`)."""
        self.outcomes[outcome] += 1

    def watch(self, queue_rows: Callable[[], float], inflight: Callable[[], float]) -> None:
        """Read queue depth and in-flight requests from callables at scrape time.

        Nothing is updated per request: the gauges call these when scraped.
        """
        self._queue_rows.set_function(queue_rows)
        self._inflight.set_function(inflight)
