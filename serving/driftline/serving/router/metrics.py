"""The router's Prometheus metrics, built over a registry passed in (never module-level).

Who uses it: ``driftline route`` builds one :class:`RouterMetrics` over its registry; the proxy
updates it on every request; ``GET /metrics`` exposes the registry. Tests pass a fresh registry.

Names (all ``driftline_router_*``; labels in braces)::

    requests_total{variant,outcome}          outcome: ok | client_error | server_error |
                                             unavailable | timeout
    request_duration_seconds{variant}        histogram, client-facing latency
    fallbacks_total{variant}                 requests of a variant with no healthy endpoint,
                                             sent to stable
    upstream_retries_total{variant}          retries on another endpoint after a connect failure
    upstream_ejections_total{variant,endpoint}
    healthy_endpoints{variant}               endpoints not ejected (at the last scrape)
    shadow_requests_total{primary,shadow,outcome}   outcome: compared | skipped |
                                             uncomparable | error | timeout | dropped
    shadow_class_elements_total{primary,shadow}     class elements compared
    shadow_class_agreements_total{primary,shadow}   ... of which equal
    shadow_score_elements_total{primary,shadow}     score elements compared
    shadow_score_abs_diff_total{primary,shadow}     sum of |primary - shadow| over them
    shadow_agreement_ratio{primary,shadow}   class agreements / class elements since start
    shadow_score_mean_abs_diff{primary,shadow}
    route_table_version                      ``version`` of the live table
    route_table_reloads_total{source,result} source: file | configmap | admin;
                                             result: applied | rejected
    route_table_watch_errors_total{reason}   ConfigMap watch failures (each retried); reason:
                                             connect | http | protocol | expired | missing
    weight_percent{variant}                  live weight; mirror_percent for the shadow
    mirror_percent
    feedback_total{variant,outcome}          outcome: forwarded | failed | no_monitor

The request and shadow counters and the latency histogram are loop-local (plain ints and a
:class:`~driftline.serving.metrics.LoopHistogram`, updated from the event loop's thread only)
and exported by a collector on scrape: a ``prometheus_client`` child takes a lock per update,
measurable on the forwarding path.

Agreement over an interval is ``rate(agreements) / rate(elements)`` in PromQL; the ratio gauges
are for dashboards that want one number.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from driftline.serving.metrics import LoopHistogram
from driftline.serving.router.table import VARIANTS, RouteTable

LATENCY_BUCKETS_S: Final = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Sub-millisecond to seconds: a proxied small-model inference is a few milliseconds."""

PRIMARIES: Final = ("stable", "canary")
"""Variants whose answers a shadow's answers are compared with."""

OUTCOMES: Final = ("ok", "client_error", "server_error", "unavailable", "timeout")
SHADOW_OUTCOMES: Final = ("compared", "skipped", "uncomparable", "error", "timeout", "dropped")
"""``skipped``: answered by the shadow, not compared (over the comparison budget per second)."""


class _LoopCollector(Collector):
    """Exposes the loop-local request and shadow counters and latency histograms on scrape."""

    def __init__(self, metrics: RouterMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._m
        requests = CounterMetricFamily(
            "driftline_router_requests",
            "Requests answered, by the variant that answered and the outcome.",
            labels=("variant", "outcome"),
        )
        for (variant, outcome), count in m.outcomes.items():
            requests.add_metric([variant, outcome], count)
        yield requests
        duration = HistogramMetricFamily(
            "driftline_router_request_duration_seconds",
            "Client-facing latency of requests forwarded to a variant.",
            labels=("variant",),
        )
        for variant, histogram in m.latency.items():
            duration.add_metric([variant], histogram.buckets(), histogram.sum)
        yield duration
        shadow = CounterMetricFamily(
            "driftline_router_shadow_requests",
            "Mirrored copies by outcome: compared, skipped (answered, not compared: agreement is "
            "estimated from the compared pairs, at most the comparison budget per second), "
            "uncomparable, error, timeout, dropped (shed: too many copies in flight).",
            labels=("primary", "shadow", "outcome"),
        )
        for (primary, outcome), count in m.shadow_outcomes.items():
            shadow.add_metric([primary, "shadow", outcome], count)
        yield shadow


@dataclass(frozen=True, slots=True)
class PairMetrics:
    """The metric children of one (primary, shadow) pair, resolved once."""

    class_elements: Counter
    class_agreements: Counter
    score_elements: Counter
    score_abs_diff: Counter
    agreement: Gauge
    mean_abs_diff: Gauge


class RouterMetrics:
    """Every metric of one router process, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        prefix = "driftline_router_"
        self.outcomes: dict[tuple[str, str], int] = {(v, o): 0 for v in VARIANTS for o in OUTCOMES}
        """Requests answered by (variant, outcome) (loop-local; exported on scrape)."""
        self.latency: dict[str, LoopHistogram] = {
            v: LoopHistogram(LATENCY_BUCKETS_S) for v in VARIANTS
        }
        """Client-facing latency per variant, seconds (loop-local; exported on scrape)."""
        self.shadow_outcomes: dict[tuple[str, str], int] = {
            (p, o): 0 for p in PRIMARIES for o in SHADOW_OUTCOMES
        }
        """Mirrored copies by (primary, outcome) (loop-local; exported on scrape)."""
        registry.register(_LoopCollector(self))
        self.fallbacks = Counter(
            prefix + "fallbacks",
            "Requests picked for a variant with no healthy endpoint and sent to stable.",
            ["variant"],
            registry=registry,
        )
        self.retries = Counter(
            prefix + "upstream_retries",
            "Requests retried on another endpoint after a connect failure.",
            ["variant"],
            registry=registry,
        )
        self.ejections = Counter(
            prefix + "upstream_ejections",
            "Endpoints ejected after connect failures.",
            ["variant", "endpoint"],
            registry=registry,
        )
        self.healthy_endpoints = Gauge(
            prefix + "healthy_endpoints",
            "Endpoints of a variant that are not ejected.",
            ["variant"],
            registry=registry,
        )
        self.shadow_class_elements = Counter(
            prefix + "shadow_class_elements",
            "Class output elements compared between primary and shadow.",
            ["primary", "shadow"],
            registry=registry,
        )
        self.shadow_class_agreements = Counter(
            prefix + "shadow_class_agreements",
            "Class output elements equal in primary and shadow answers.",
            ["primary", "shadow"],
            registry=registry,
        )
        self.shadow_score_elements = Counter(
            prefix + "shadow_score_elements",
            "Score output elements compared between primary and shadow.",
            ["primary", "shadow"],
            registry=registry,
        )
        self.shadow_score_abs_diff = Counter(
            prefix + "shadow_score_abs_diff",
            "Sum of absolute differences of score elements between primary and shadow.",
            ["primary", "shadow"],
            registry=registry,
        )
        self.shadow_agreement = Gauge(
            prefix + "shadow_agreement_ratio",
            "Share of class elements equal in primary and shadow answers, since start.",
            ["primary", "shadow"],
            registry=registry,
        )
        self.shadow_mad = Gauge(
            prefix + "shadow_score_mean_abs_diff",
            "Mean absolute difference of score elements between primary and shadow, since start.",
            ["primary", "shadow"],
            registry=registry,
        )
        self.table_version = Gauge(
            prefix + "route_table_version",
            "The version of the live route table.",
            registry=registry,
        )
        self.reloads = Counter(
            prefix + "route_table_reloads",
            "Route table changes by source and result.",
            ["source", "result"],
            registry=registry,
        )
        self.watch_errors = Counter(
            prefix + "route_table_watch_errors",
            "Failures of the route-table ConfigMap watch, by reason (each one retried).",
            ["reason"],
            registry=registry,
        )
        for source in ("file", "configmap", "admin"):
            for result in ("applied", "rejected"):
                self.reloads.labels(source, result)
        for reason in ("connect", "http", "protocol", "expired", "missing"):
            self.watch_errors.labels(reason)
        self.weight = Gauge(
            prefix + "weight_percent",
            "Live traffic weight of a variant in percent.",
            ["variant"],
            registry=registry,
        )
        self.mirror = Gauge(
            prefix + "mirror_percent",
            "Percent of inference requests mirrored to the shadow.",
            registry=registry,
        )
        self.feedback = Counter(
            prefix + "feedback",
            "Feedback posts by the variant they were forwarded for and the outcome.",
            ["variant", "outcome"],
            registry=registry,
        )
        # Children resolved once: a labels() lookup per request is measurable on the hot path.
        for variant in VARIANTS:
            self.fallbacks.labels(variant)
            self.retries.labels(variant)
        self.pair_children = {
            p: PairMetrics(
                self.shadow_class_elements.labels(p, "shadow"),
                self.shadow_class_agreements.labels(p, "shadow"),
                self.shadow_score_elements.labels(p, "shadow"),
                self.shadow_score_abs_diff.labels(p, "shadow"),
                self.shadow_agreement.labels(p, "shadow"),
                self.shadow_mad.labels(p, "shadow"),
            )
            for p in PRIMARIES
        }

    def count_request(self, variant: str, outcome: str, latency_s: float) -> None:
        """Count one answered request and observe its client-facing latency (loop thread)."""
        self.outcomes[variant, outcome] += 1
        self.latency[variant].observe(latency_s)

    def show_table(self, table: RouteTable) -> None:
        """Export the live table: its version, weights and mirror percent."""
        self.table_version.set(table.version)
        for variant in VARIANTS:
            self.weight.labels(variant).set(table.weight(variant))
        self.mirror.set(table.shadow.mirror_percent if table.shadow is not None else 0)
