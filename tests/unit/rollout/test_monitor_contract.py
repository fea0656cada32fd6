"""The monitor sidecar's real verdict document, read by the analysis provider's parser.

We test: ``MonitorService.verdicts()`` (the body of ``GET /v1/verdict``) for a drifted canary and an
unshifted stable becomes measurements with the drift share and its row count; delayed labels
become performance with their labelled count; the judge then fails the drifted canary with
``DriftScoreTooHigh``. This pins the contract between ``driftline.serving.monitor`` and
``driftline.operator.analysis_http`` without HTTP (the transport is covered elsewhere).
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import ModuleType

import numpy as np
import orjson
import pytest

from driftline.operator.analysis import Target, Thresholds, judge
from driftline.operator.analysis_http import MonitorVerdictDoc, measurements_from_monitor
from driftline.serving import records
from driftline.serving.drift.decide import DecisionConfig
from driftline.serving.drift.profile import Profile, Source, build_profile
from driftline.serving.monitor.feedback import Feedback
from driftline.serving.monitor.service import MonitorConfig, MonitorService
from driftline.serving.monitor.window import WindowSpec


@pytest.fixture(scope="module")
def profile(quickstart_train: ModuleType) -> Profile:
    x, _ = quickstart_train.make_dataset(3000, 0)
    table = {n: x[:, j].astype(np.float64) for j, n in enumerate(quickstart_train.FEATURES)}
    sources = {n: Source("input", "input", j) for j, n in enumerate(quickstart_train.FEATURES)}
    return build_profile(table, "sha", categorical=["region", "plan"], sources=sources)


def _frame(
    qs: ModuleType, rows: int, seed: int, variant: str, version: str, shift: float
) -> tuple[bytes, np.ndarray]:
    x, y = qs.make_dataset(rows, seed, shift=shift)
    score = np.clip(0.5 + 0.1 * np.random.default_rng(seed).normal(size=rows), 0, 1)
    batch = records.RecordBatch(
        model="churn",
        version=version,
        variant=variant,
        request_ids=tuple(f"{variant}{seed}-{i}" for i in range(rows)),
        timestamps=np.full(rows, 1000.0),
        latencies_ms=np.ones(rows),
        inputs={"input": x},
        outputs={
            "probabilities": np.column_stack([1 - score, score]).astype(np.float32),
            "label": (score >= 0.5).astype(np.int64),
        },
    )
    return records.encode(batch), y


def test_real_verdicts_feed_the_judge(profile: Profile, quickstart_train: ModuleType) -> None:
    config = MonitorConfig(window=WindowSpec(rows=1000), decision=DecisionConfig(min_samples=300))
    svc = MonitorService(profile, config, clock=lambda: 1000.0, rng=np.random.default_rng(0))
    labels: list[Feedback] = []
    for seed in (1, 2):
        svc.ingest(_frame(quickstart_train, 500, seed, "stable", "churn-v1", 0.0)[0])
        data, y = _frame(quickstart_train, 500, 10 + seed, "canary", "churn-v2", 1.0)
        svc.ingest(data)
        labels += [Feedback(f"canary{10 + seed}-{i}", float(y[i])) for i in range(500)]
    svc.feedback(labels)
    doc = MonitorVerdictDoc.model_validate_json(orjson.dumps(svc.verdicts()))

    canary = measurements_from_monitor(doc, Target("default", "churn", "canary", "churn-v2"))
    stable = measurements_from_monitor(doc, Target("default", "churn", "stable", "churn-v1"))
    assert canary.drift_samples == 1000 and stable.drift_samples == 1000
    assert canary.drift_score is not None and stable.drift_score is not None
    assert canary.drift_score > stable.drift_score
    assert canary.labelled_samples == 1000
    assert 0.0 <= canary.performance["accuracy"] <= 1.0

    t = Thresholds(max_error_rate=None, min_samples=100, max_drift_score=0.2)
    result = judge(canary, stable, t, at=datetime(2026, 1, 1, tzinfo=UTC))
    assert result.reason == "DriftScoreTooHigh"
    assert judge(stable, stable, t, at=datetime(2026, 1, 1, tzinfo=UTC)).verdict == "Successful"
