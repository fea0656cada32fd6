"""Prometheus metrics of the monitor sidecar, built over a registry passed in (never global).

Who uses it: ``driftline monitor`` builds one :class:`MonitorMetrics` over its registry; the app
updates the counters on ingest and the gauges from the verdicts at every scrape. Metrics:

- ``driftline_monitor_frames_total`` (counter, ``result``: accepted|malformed): record frames;
- ``driftline_monitor_records_total`` (counter, ``variant``): rows counted into windows;
- ``driftline_monitor_dropped_records_total`` (counter, ``reason``: too_many_variants,
  missing_feature, late): rows not counted;
- ``driftline_monitor_feedback_total`` (counter, ``result``: joined|unknown|late|duplicate);
- ``driftline_monitor_window_samples`` (gauge, ``variant``): rows in the current window;
- ``driftline_monitor_drift`` (gauge, ``variant``): 1 drift, 0 no drift, -1 not enough data;
- ``driftline_monitor_drift_share`` (gauge, ``variant``): share of features drifted;
- ``driftline_monitor_feature_drift`` (gauge, ``variant, feature, segment``): 1/0/-1 per feature;
- ``driftline_monitor_drift_score`` (gauge, ``variant, feature, segment, statistic``): every
  statistic (psi, ks, wasserstein, jensen_shannon, chi2, ...);
- ``driftline_monitor_drift_p_value`` (gauge, ``variant, feature, segment``): corrected p-value;
- ``driftline_monitor_performance`` (gauge, ``variant, version, metric``): accuracy, auc, mae,
  rmse and labelled counts from delayed labels.

``segment`` is empty for the whole window, else ``feature=value``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

FRAME_RESULTS: Final = ("accepted", "malformed")
DROP_REASONS: Final = ("too_many_variants", "missing_feature", "late")
FEEDBACK_RESULTS: Final = ("joined", "unknown", "late", "duplicate")
STATUS_VALUE: Final = {"drift": 1.0, "no_drift": 0.0, "not_enough_data": -1.0}


@dataclass(frozen=True)
class MonitorMetrics:
    """Every metric of the sidecar, registered on one registry."""

    frames: Counter
    records: Counter
    dropped: Counter
    feedback: Counter
    window_samples: Gauge
    drift: Gauge
    drift_share: Gauge
    feature_drift: Gauge
    drift_score: Gauge
    p_value: Gauge
    performance: Gauge

    @staticmethod
    def build(registry: CollectorRegistry) -> MonitorMetrics:
        """Create and register the metrics on ``registry``."""
        p = "driftline_monitor_"
        fv = ["variant", "feature", "segment"]
        m = MonitorMetrics(
            frames=Counter(f"{p}frames", "Record frames received.", ["result"], registry=registry),
            records=Counter(f"{p}records", "Rows counted into windows.", ["variant"],
                            registry=registry),
            dropped=Counter(f"{p}dropped_records", "Rows not counted, by reason.", ["reason"],
                            registry=registry),
            feedback=Counter(f"{p}feedback", "Feedback items, by result.", ["result"],
                             registry=registry),
            window_samples=Gauge(f"{p}window_samples", "Rows in the current window.",
                                 ["variant"], registry=registry),
            drift=Gauge(f"{p}drift", "Window verdict: 1 drift, 0 no drift, -1 not enough data.",
                        ["variant"], registry=registry),
            drift_share=Gauge(f"{p}drift_share", "Share of judged features that drifted.",
                              ["variant"], registry=registry),
            feature_drift=Gauge(f"{p}feature_drift",
                                "Feature verdict: 1 drift, 0 no drift, -1 not enough data.", fv,
                                registry=registry),
            drift_score=Gauge(f"{p}drift_score", "Drift statistic of a feature.",
                              [*fv, "statistic"], registry=registry),
            p_value=Gauge(f"{p}drift_p_value", "Multiplicity-corrected p-value of a feature.", fv,
                          registry=registry),
            performance=Gauge(f"{p}performance", "Model performance from delayed labels.",
                              ["variant", "version", "metric"], registry=registry),
        )  # fmt: skip
        for r in FRAME_RESULTS:
            m.frames.labels(r)
        for r in DROP_REASONS:
            m.dropped.labels(r)
        for r in FEEDBACK_RESULTS:
            m.feedback.labels(r)
        return m

    def observe_verdicts(self, document: Mapping[str, object]) -> None:
        """Set the gauges from a ``MonitorService.verdicts()`` document."""
        variants = document.get("variants")
        if not isinstance(variants, Mapping):
            return
        for variant, entry in variants.items():
            if not isinstance(entry, Mapping):
                continue
            window = entry.get("window")
            verdict = entry.get("verdict")
            if isinstance(window, Mapping):
                self.window_samples.labels(variant).set(_float(window.get("rows")))
            if isinstance(verdict, Mapping):
                self.drift.labels(variant).set(STATUS_VALUE.get(str(verdict.get("status")), -1))
                self.drift_share.labels(variant).set(_float(verdict.get("share")))
                features = verdict.get("features")
                for f in features if isinstance(features, list) else []:
                    if not isinstance(f, Mapping):
                        continue
                    labels = (variant, str(f.get("name")), str(f.get("segment") or ""))
                    status = STATUS_VALUE.get(str(f.get("status")), -1.0)
                    self.feature_drift.labels(*labels).set(status)
                    self.p_value.labels(*labels).set(_float(f.get("p_adjusted")))
                    scores = f.get("scores")
                    for name, value in scores.items() if isinstance(scores, Mapping) else []:
                        self.drift_score.labels(*labels, str(name)).set(_float(value))
            perf = entry.get("performance")
            for row in perf if isinstance(perf, list) else []:
                if not isinstance(row, Mapping):
                    continue
                for metric in ("accuracy", "auc", "mae", "rmse", "labelled"):
                    if metric in row:
                        self.performance.labels(variant, str(row.get("version")), metric).set(
                            _float(row.get(metric))
                        )


def _float(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return math.nan
