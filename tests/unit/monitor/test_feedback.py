"""Delayed labels: join by request id, unknown/late/duplicate ids counted, metrics vs sklearn.

Covers: a join per row of a multi-row request, eviction of old predictions from the bounded
ring (then unknown), late labels, duplicates, accuracy/AUC/MAE/RMSE checked against sklearn,
metrics per (variant, version) restricted to the window's time range.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, roc_auc_score

from driftline.serving.monitor.feedback import (
    Feedback,
    JoinResult,
    PredictionLog,
    roc_auc,
)


def test_joining_rows_and_counting_unknown_ids() -> None:
    log = PredictionLog(capacity=100, max_age=60.0)
    ids = ["r1", "r1", "r2"]
    log.log("stable", "v1", ids, np.array([10.0, 10.0, 11.0]), np.array([0.9, 0.2, 0.6]),
            np.array([1.0, 0.0, 1.0]))  # fmt: skip
    assert log.join(Feedback("r1", 1.0, row=0), now=20.0) is JoinResult.JOINED
    assert log.join(Feedback("r1", 1.0, row=1), now=20.0) is JoinResult.JOINED
    assert log.join(Feedback("r1", 1.0, row=2), now=20.0) is JoinResult.UNKNOWN
    assert log.join(Feedback("nope", 1.0), now=20.0) is JoinResult.UNKNOWN
    assert log.join(Feedback("r1", 0.0), now=20.0) is JoinResult.DUPLICATE
    assert log.join(Feedback("r2", 0.0), now=100.0) is JoinResult.LATE
    perf = log.performance("classification", None, None)[("stable", "v1")]
    assert perf["labelled"] == 2 and perf["accuracy"] == 0.5


def test_old_predictions_are_evicted_from_the_bounded_ring() -> None:
    log = PredictionLog(capacity=10, max_age=1e9)
    for i in range(5):
        ids = [f"q{i}"] * 4
        log.log("stable", "v1", ids, np.full(4, float(i)), np.zeros(4), np.zeros(4))
    assert log.join(Feedback("q0", 1.0), now=5.0) is JoinResult.UNKNOWN
    assert log.join(Feedback("q1", 1.0), now=5.0) is JoinResult.UNKNOWN
    assert log.join(Feedback("q4", 1.0, row=3), now=5.0) is JoinResult.JOINED
    assert len(log._slots) <= 3


def test_classification_metrics_match_sklearn_per_version_and_window() -> None:
    rng = np.random.default_rng(0)
    log = PredictionLog(capacity=10_000, max_age=1e9)
    n = 2000
    score = rng.random(n)
    truth = (rng.random(n) < score).astype(float)
    truth[:10] = 1.0
    score[:10] = 0.5  # ties
    predicted = (score >= 0.5).astype(float)
    ts = np.arange(n, dtype=float)
    ids = [str(i) for i in range(n)]
    log.log("stable", "v1", ids[:1000], ts[:1000], score[:1000], predicted[:1000])
    log.log("canary", "v2", ids[1000:], ts[1000:], score[1000:], predicted[1000:])
    for i in range(n):
        log.join(Feedback(ids[i], float(truth[i])), now=0.0)
    perf = log.performance("classification", None, None)
    assert perf[("stable", "v1")]["auc"] == pytest.approx(roc_auc_score(truth[:1000], score[:1000]))
    assert perf[("canary", "v2")]["accuracy"] == pytest.approx(
        float((predicted[1000:] == truth[1000:]).mean())
    )
    windowed = log.performance("classification", 500.0, 999.0)[("stable", "v1")]
    assert windowed["labelled"] == 500
    assert windowed["auc"] == pytest.approx(roc_auc_score(truth[500:1000], score[500:1000]))


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    log = PredictionLog(capacity=1000, max_age=1e9)
    pred = rng.normal(size=300)
    truth = pred + rng.normal(0, 0.5, 300)
    ids = [f"r{i}" for i in range(300)]
    log.log("stable", "v1", ids, np.zeros(300), pred, pred)
    for i, rid in enumerate(ids):
        log.join(Feedback(rid, float(truth[i])), now=0.0)
    perf = log.performance("regression", None, None)[("stable", "v1")]
    assert perf["mae"] == pytest.approx(mean_absolute_error(truth, pred))
    assert perf["rmse"] == pytest.approx(math.sqrt(mean_squared_error(truth, pred)))


def test_auc_needs_both_classes() -> None:
    assert math.isnan(roc_auc(np.array([0.1, 0.2]), np.array([1.0, 1.0])))
