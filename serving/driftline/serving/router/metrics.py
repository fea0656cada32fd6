"""The router's Prometheus metrics, built over a registry passed in (never module-level).

Who uses it: ``driftline route`` builds one :class:`RouterMetrics` over its registry; the proxy
updates it on every request; ``GET /metrics`` exposes the registry. Tests pass a fresh registry.

Names (all ``driftline_router_*``; labels in braces)::

    requests_total{variant,version,outcome}  outcome: ok | client_error | server_error |
                                             unavailable | timeout
    request_duration_seconds{variant,version}   histogram, client-facing latency
    fallbacks_total{variant}                 requests of a variant with no healthy endpoint,
                                             sent to stable
    upstream_retries_total{variant}          retries on another endpoint after a connect failure
    upstream_ejections_total{variant,endpoint}
    healthy_endpoints{variant}               endpoints not ejected (at the last scrape)
    shadow_requests_total{primary,shadow,version,outcome}   outcome: compared | skipped |
                                             uncomparable | error | timeout | dropped
    shadow_class_elements_total{primary,shadow,version}     class elements compared
    shadow_class_agreements_total{primary,shadow,version}   ... of which equal
    shadow_score_elements_total{primary,shadow,version}     score elements compared
    shadow_score_abs_diff_total{primary,shadow,version}     sum of |primary - shadow| over them
    shadow_agreement_ratio{primary,shadow,version}  class agreements / elements since start
    shadow_score_mean_abs_diff{primary,shadow,version}
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

``version`` is the model version the route table names for the variant (the shadow's, for the
shadow series): when a table gives a variant another model, its series under the old version stop
growing and new ones start at zero, so a query for one model never mixes in the previous model's
answers (the analysis's Prometheus provider filters on it). The last ``RETIRED_PER_VARIANT``
retired versions per variant stay exported; requests in flight across the switch count under
the new version. The version is looked up at scrape and table changes only, never per request.
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

RETIRED_PER_VARIANT: Final = 2
"""Series of previous model versions kept per variant (they no longer grow; older ones go)."""


class _LoopCollector(Collector):
    """Exposes the loop-local request and shadow counters and latency histograms on scrape."""

    def __init__(self, metrics: RouterMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._m
        requests = CounterMetricFamily(
            "driftline_router_requests",
            "Requests answered, by the variant that answered, its model version and the outcome.",
            labels=("variant", "version", "outcome"),
        )
        duration = HistogramMetricFamily(
            "driftline_router_request_duration_seconds",
            "Client-facing latency of requests forwarded to a variant, by its model version.",
            labels=("variant", "version"),
        )
        for variant, version, live in m.live_series():
            for outcome, count in live.outcomes.items():
                requests.add_metric([variant, version, outcome], count)
            duration.add_metric([variant, version], live.latency.buckets(), live.latency.sum)
        yield requests
        yield duration
        shadow = CounterMetricFamily(
            "driftline_router_shadow_requests",
            "Mirrored copies by outcome: compared, skipped (answered, not compared: agreement is "
            "estimated from the compared pairs, at most the comparison budget per second), "
            "uncomparable, error, timeout, dropped (shed: too many copies in flight).",
            labels=("primary", "shadow", "version", "outcome"),
        )
        for version, outcomes in m.shadow_series():
            for (primary, outcome), count in outcomes.items():
                shadow.add_metric([primary, "shadow", version, outcome], count)
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


@dataclass(slots=True)
class LiveSeries:
    """One variant's loop-local request counts and latency for one model version."""

    outcomes: dict[str, int]
    latency: LoopHistogram

    @classmethod
    def empty(cls) -> LiveSeries:
        """Zero counts, an empty histogram."""
        return cls({o: 0 for o in OUTCOMES}, LoopHistogram(LATENCY_BUCKETS_S))


def _shadow_zero() -> dict[tuple[str, str], int]:
    return {(p, o): 0 for p in PRIMARIES for o in SHADOW_OUTCOMES}


class RouterMetrics:
    """Every metric of one router process, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        prefix = "driftline_router_"
        self.live: dict[str, LiveSeries] = {v: LiveSeries.empty() for v in VARIANTS}
        """Requests and latency per variant for its current model version (loop-local)."""
        self.versions: dict[str, str] = {}
        """The model version each variant's current series are labelled with ("" before any)."""
        self.retired: dict[str, list[tuple[str, LiveSeries]]] = {v: [] for v in VARIANTS}
        """Series of previous versions per variant, oldest first (no longer growing)."""
        self.shadow_outcomes: dict[tuple[str, str], int] = _shadow_zero()
        """Mirrored copies by (primary, outcome) for the shadow's current version (loop-local)."""
        self.retired_shadow: list[tuple[str, dict[tuple[str, str], int]]] = []
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
        pair = ["primary", "shadow", "version"]
        self.shadow_class_elements = Counter(
            prefix + "shadow_class_elements",
            "Class output elements compared between primary and shadow.",
            pair,
            registry=registry,
        )
        self.shadow_class_agreements = Counter(
            prefix + "shadow_class_agreements",
            "Class output elements equal in primary and shadow answers.",
            pair,
            registry=registry,
        )
        self.shadow_score_elements = Counter(
            prefix + "shadow_score_elements",
            "Score output elements compared between primary and shadow.",
            pair,
            registry=registry,
        )
        self.shadow_score_abs_diff = Counter(
            prefix + "shadow_score_abs_diff",
            "Sum of absolute differences of score elements between primary and shadow.",
            pair,
            registry=registry,
        )
        self.shadow_agreement = Gauge(
            prefix + "shadow_agreement_ratio",
            "Share of class elements equal in primary and shadow answers, since the shadow's "
            "model version went live.",
            pair,
            registry=registry,
        )
        self.shadow_mad = Gauge(
            prefix + "shadow_score_mean_abs_diff",
            "Mean absolute difference of score elements between primary and shadow, since the "
            "shadow's model version went live.",
            pair,
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
        self.pair_children = self._pairs("")

    def _pairs(self, version: str) -> dict[str, PairMetrics]:
        """The comparison children of every (primary, shadow) pair for a shadow model version."""
        return {
            p: PairMetrics(
                self.shadow_class_elements.labels(p, "shadow", version),
                self.shadow_class_agreements.labels(p, "shadow", version),
                self.shadow_score_elements.labels(p, "shadow", version),
                self.shadow_score_abs_diff.labels(p, "shadow", version),
                self.shadow_agreement.labels(p, "shadow", version),
                self.shadow_mad.labels(p, "shadow", version),
            )
            for p in PRIMARIES
        }

    def live_series(self) -> Iterator[tuple[str, str, LiveSeries]]:
        """Every (variant, version, series) to export: retired versions, then the current."""
        for variant in VARIANTS:
            for version, series in self.retired[variant]:
                yield variant, version, series
            yield variant, self.versions.get(variant, ""), self.live[variant]

    def shadow_series(self) -> Iterator[tuple[str, dict[tuple[str, str], int]]]:
        """Every (shadow version, outcome counts) to export: retired versions, then the current."""
        yield from self.retired_shadow
        yield self.versions.get("shadow", ""), self.shadow_outcomes

    def count_request(self, variant: str, outcome: str, latency_s: float) -> None:
        """Count one answered request and observe its client-facing latency (loop thread)."""
        series = self.live[variant]
        series.outcomes[outcome] += 1
        series.latency.observe(latency_s)

    def _switch_version(self, variant: str, version: str) -> None:
        """Label ``variant``'s series with ``version`` from now on; retire the old ones."""
        old = self.versions.get(variant)
        self.versions[variant] = version
        if old is None:  # the first table: the counts so far (none) are this version's
            if variant == "shadow":
                self.pair_children = self._pairs(version)
            return
        if variant == "shadow":
            self.retired_shadow = [*self.retired_shadow, (old, self.shadow_outcomes)]
            self.retired_shadow = self.retired_shadow[-RETIRED_PER_VARIANT:]
            self.shadow_outcomes = _shadow_zero()
            self.pair_children = self._pairs(version)
        retired = [*self.retired[variant], (old, self.live[variant])]
        self.retired[variant] = retired[-RETIRED_PER_VARIANT:]
        self.live[variant] = LiveSeries.empty()

    def show_table(self, table: RouteTable) -> None:
        """Export the live table: its version, weights and mirror percent.

        A variant whose model version changed gets fresh series (see the module docstring); a
        variant the table leaves out keeps its label (it gets no requests).
        """
        for variant in VARIANTS:
            entry = table.variant(variant)
            if entry is not None and entry.model_version != self.versions.get(variant):
                self._switch_version(variant, entry.model_version)
        self.table_version.set(table.version)
        for variant in VARIANTS:
            self.weight.labels(variant).set(table.weight(variant))
        self.mirror.set(table.shadow.mirror_percent if table.shadow is not None else 0)
