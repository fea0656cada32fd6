"""``Metrics``: the operator's own Prometheus metrics, built over a registry passed in.

Names follow Prometheus conventions (``_total`` counters, ``_seconds`` durations) under the
``driftline_`` prefix. The process builds one ``Metrics`` over its registry in the CLI; tests build
their own over a fresh ``CollectorRegistry``: there are no module-level metrics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PHASES = ("Healthy", "Progressing", "Paused", "Degraded")
"""The rollout phases (Argo CD's vocabulary); one series per phase, 1 for the current one."""

RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds: a reconcile is milliseconds when nothing changes, seconds under API retries."""


@dataclass
class Metrics:
    """The operator's metrics. Build one per process: ``Metrics(registry)``.

    Attributes:
        registry: where every metric below is registered.
    """

    registry: CollectorRegistry
    rollout_phase: Gauge = field(init=False)
    rollout_weight: Gauge = field(init=False)
    analysis_results: Counter = field(init=False)
    analysis_value: Gauge = field(init=False)
    analysis_threshold: Gauge = field(init=False)
    rollbacks: Counter = field(init=False)
    reconcile_errors: Counter = field(init=False)
    reconcile_duration: Histogram = field(init=False)
    drift_score: Gauge = field(init=False)
    drift_breaches: Counter = field(init=False)
    _weights_seen: dict[tuple[str, str], set[str]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        r = self.registry
        self.rollout_phase = Gauge(
            "driftline_rollout_phase",
            "1 for the current phase of a Deployment's rollout, 0 for the others.",
            ["namespace", "deployment", "phase"],
            registry=r,
        )
        self.rollout_weight = Gauge(
            "driftline_rollout_weight",
            "Percent of a Deployment's traffic routed to each variant.",
            ["namespace", "deployment", "variant"],
            registry=r,
        )
        self.analysis_results = Counter(
            "driftline_analysis_results_total",
            "Analysis measurements judged, by metric and result (pass, fail, inconclusive).",
            ["namespace", "deployment", "metric", "result"],
            registry=r,
        )
        self.analysis_value = Gauge(
            "driftline_analysis_value",
            "The last measured value of each analysis metric.",
            ["namespace", "deployment", "metric"],
            registry=r,
        )
        self.analysis_threshold = Gauge(
            "driftline_analysis_threshold",
            "The threshold each analysis metric was judged against, beside its value.",
            ["namespace", "deployment", "metric"],
            registry=r,
        )
        self.rollbacks = Counter(
            "driftline_rollbacks_total",
            "Rollouts aborted and rolled back, by reason.",
            ["namespace", "deployment", "reason"],
            registry=r,
        )
        self.reconcile_errors = Counter(
            "driftline_reconcile_errors_total",
            "Reconciles that ended in an error, by kind and reason.",
            ["kind", "reason"],
            registry=r,
        )
        self.reconcile_duration = Histogram(
            "driftline_reconcile_duration_seconds",
            "Wall time of one reconcile, by kind.",
            ["kind"],
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self.drift_score = Gauge(
            "driftline_drift_monitor_score",
            "A DriftMonitor's last score: largest effect / threshold (1 = at the bound).",
            ["namespace", "monitor"],
            registry=r,
        )
        self.drift_breaches = Counter(
            "driftline_drift_monitor_breaches_total",
            "Transitions of a DriftMonitor into drift, by its action (alert, rollback, retrain).",
            ["namespace", "monitor", "action"],
            registry=r,
        )

    def set_phase(self, namespace: str, deployment: str, phase: str) -> None:
        """Mark ``phase`` as the Deployment's current rollout phase."""
        for p in PHASES:
            self.rollout_phase.labels(namespace, deployment, p).set(1.0 if p == phase else 0.0)

    def set_weights(self, namespace: str, deployment: str, weights: Mapping[str, int]) -> None:
        """Publish the traffic weight of each live variant; drop series of removed variants."""
        key = (namespace, deployment)
        for gone in self._weights_seen.get(key, set()) - set(weights):
            self.rollout_weight.remove(namespace, deployment, gone)
        for variant, weight in weights.items():
            self.rollout_weight.labels(namespace, deployment, variant).set(float(weight))
        self._weights_seen[key] = set(weights)

    def forget(self, namespace: str, deployment: str) -> None:
        """Drop the phase and weight series of a deleted Deployment."""
        for p in PHASES:
            with contextlib.suppress(KeyError):
                self.rollout_phase.remove(namespace, deployment, p)
        self.set_weights(namespace, deployment, {})
        self._weights_seen.pop((namespace, deployment), None)
