"""The sidecar's behaviour without HTTP: ingest, verdicts, malformed input, feedback, routes.

Covers: frames built with ``records.encode`` counted per variant; a shifted canary drifts while
the stable variant does not; malformed frames, missing tensors and surplus variants are counted
and skipped; delayed labels joined into accuracy/AUC per version; the route table answers
404/405/415/400 with a JSON error; the metrics text parses and carries the verdict.
"""

from __future__ import annotations

import asyncio
from types import ModuleType

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from driftline.serving import records
from driftline.serving.drift.decide import DecisionConfig
from driftline.serving.drift.profile import Profile, Source, build_profile
from driftline.serving.http import Request
from driftline.serving.monitor.app import FeedbackError, create_handler, parse_feedback
from driftline.serving.monitor.feedback import Feedback
from driftline.serving.monitor.metrics import MonitorMetrics
from driftline.serving.monitor.service import MonitorConfig, MonitorService
from driftline.serving.monitor.window import WindowSpec


@pytest.fixture(scope="module")
def churn_profile(quickstart_train: ModuleType) -> Profile:
    qs = quickstart_train
    x, _ = qs.make_dataset(5000, 0)
    table = {name: x[:, j].astype(np.float64) for j, name in enumerate(qs.FEATURES)}
    sources = {name: Source("input", "input", j) for j, name in enumerate(qs.FEATURES)}
    return build_profile(table, "sha", categorical=["region", "plan"], segments=["region"],
                         sources=sources)  # fmt: skip


def frame(qs: ModuleType, rows: int, seed: int, variant: str, shift: float = 0.0,
          version: str = "v1", prefix: str = "r") -> tuple[bytes, np.ndarray]:  # fmt: skip
    x, y = qs.make_dataset(rows, seed, shift=shift)
    score = np.clip(0.5 + 0.1 * np.random.default_rng(seed).normal(size=rows), 0, 1)
    batch = records.RecordBatch(
        model="churn", version=version, variant=variant,
        request_ids=tuple(f"{prefix}{seed}-{i}" for i in range(rows)),
        timestamps=np.full(rows, 1000.0), latencies_ms=np.ones(rows),
        inputs={"input": x},
        outputs={"probabilities": np.column_stack([1 - score, score]).astype(np.float32),
                 "label": (score >= 0.5).astype(np.int64)},
    )  # fmt: skip
    return records.encode(batch), y


def service(profile: Profile, **kw: object) -> MonitorService:
    cfg = MonitorConfig(window=WindowSpec(rows=2000), decision=DecisionConfig(min_samples=300),
                        **kw)  # type: ignore[arg-type]  # fmt: skip
    return MonitorService(profile, cfg, clock=lambda: 1000.0, rng=np.random.default_rng(0))


def test_stable_traffic_no_drift_shifted_canary_drifts(churn_profile, quickstart_train) -> None:
    svc = service(churn_profile)
    for seed in range(1, 5):
        assert svc.ingest(frame(quickstart_train, 500, seed, "stable")[0]).rows == 500
        svc.ingest(frame(quickstart_train, 500, 100 + seed, "canary", shift=1.0)[0])
    doc = svc.verdicts()
    stable = doc["variants"]["stable"]["verdict"]
    canary = doc["variants"]["canary"]["verdict"]
    assert doc["variants"]["stable"]["window"] == {
        "rows": 2000, "complete": True, "first_ts": 1000.0, "last_ts": 1000.0
    }  # fmt: skip
    assert stable["status"] == "no_drift"
    assert canary["status"] == "drift"
    assert {"monthly_charges", "usage_gb", "region"} <= set(canary["drifted"])
    assert doc["ingest"]["rows"] == {"stable": 2000, "canary": 2000}


def test_malformed_frames_and_missing_tensors_are_counted(churn_profile, quickstart_train) -> None:
    svc = service(churn_profile, max_variants=2)
    good, _ = frame(quickstart_train, 100, 1, "stable")
    assert svc.ingest(b"garbage").error is not None
    assert svc.ingest(good[:-8]).error is not None  # truncated
    no_input = records.RecordBatch(
        model="m", version="v", variant="stable", request_ids=("a",),
        timestamps=np.zeros(1), latencies_ms=np.zeros(1), inputs={"other": np.zeros((1, 7))},
    )  # fmt: skip
    result = svc.ingest(records.encode(no_input))
    assert result.dropped == {"missing_feature": 1} and "no input tensor 'input'" in result.error
    svc.ingest(good)
    svc.ingest(frame(quickstart_train, 10, 2, "canary")[0])
    result = svc.ingest(frame(quickstart_train, 10, 3, "shadow")[0])
    assert result.dropped == {"too_many_variants": 10}
    counters = svc.counters()
    assert counters["malformed_frames"] == 2 and counters["frames"] == 6
    assert counters["dropped"] == {"missing_feature": 1, "too_many_variants": 10}
    assert svc.verdicts()["variants"]["stable"]["window"]["rows"] == 100


def test_feedback_joins_into_performance_per_version(churn_profile, quickstart_train) -> None:
    svc = service(churn_profile)
    data, y = frame(quickstart_train, 400, 7, "stable", version="v1")
    svc.ingest(data)
    items = [Feedback(f"r7-{i}", float(y[i])) for i in range(400)]
    items += [Feedback("never-seen", 1.0), Feedback("r7-0", 0.0)]
    assert svc.feedback(items) == {"joined": 400, "unknown": 1, "late": 0, "duplicate": 1}
    perf = svc.verdicts()["variants"]["stable"]["performance"]
    assert perf[0]["version"] == "v1" and perf[0]["labelled"] == 400
    assert 0.0 <= perf[0]["accuracy"] <= 1.0 and 0.0 <= perf[0]["auc"] <= 1.0
    assert svc.task == "classification"


def test_feedback_bodies_are_validated_naming_the_field() -> None:
    ok = parse_feedback(b'{"feedback": [{"request_id": "a", "label": 1, "row": 2}]}', 10)
    assert ok == [Feedback("a", 1.0, 2)]
    for body, message in [
        (b"{", "not valid JSON"),
        (b'{"feedback": 3}', "expected"),
        (b'[{"label": 1}]', r"feedback[0].request_id"),
        (b'[{"request_id": "a"}]', "exactly one"),
        (b'[{"request_id": "a", "label": "x"}]', r"feedback[0].label"),
        (b'[{"request_id": "a", "value": 1, "row": -1}]', r"feedback[0].row"),
        (b'[{"request_id": "a", "value": 1, "extra": 0}]', "unknown field"),
    ]:
        with pytest.raises(FeedbackError) as info:
            parse_feedback(body, 10)
        assert message in str(info.value)
    with pytest.raises(FeedbackError, match="at most 1"):
        parse_feedback(b'[{"request_id": "a", "value": 1}, {"request_id": "b", "value": 1}]', 1)


def _call(handler, method: str, path: str, body: bytes = b"", ctype: str = "") -> tuple[int, bytes]:
    request = Request(method, path, "", {"content-type": ctype} if ctype else {}, body)
    response = asyncio.run(handler(request))
    return response.status, response.body


def test_routes_answer_with_json_errors(churn_profile, quickstart_train) -> None:
    registry = CollectorRegistry()
    svc = service(churn_profile)
    handler = create_handler(svc, MonitorMetrics.build(registry), registry)
    good, _ = frame(quickstart_train, 600, 1, "stable")
    assert _call(handler, "POST", "/v1/records", good, records.MEDIA_TYPE)[0] == 202
    status, body = _call(handler, "POST", "/v1/records", b"xx", records.MEDIA_TYPE)
    assert status == 400 and b"malformed record frame" in body
    assert _call(handler, "POST", "/v1/records", good, "application/json")[0] == 415
    assert _call(handler, "GET", "/v1/records")[0] == 405
    assert _call(handler, "GET", "/nope")[0] == 404
    assert _call(handler, "POST", "/v1/feedback", b"[1]")[0] == 400
    status, body = _call(handler, "GET", "/v1/window")
    state = orjson.loads(body)
    assert status == 200 and state["variants"]["stable"]["whole"]["rows"] == 600
    status, body = _call(handler, "GET", "/metrics")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    frames = {s.labels["result"]: s.value for s in families["driftline_monitor_frames"].samples
              if s.name.endswith("_total")}  # fmt: skip
    assert frames == {"accepted": 1.0, "malformed": 1.0}
    drift = [s for s in families["driftline_monitor_drift"].samples]
    assert drift[0].labels == {"variant": "stable"} and drift[0].value == 0.0
    scores = families["driftline_monitor_drift_score"].samples
    assert any(s.labels["statistic"] == "psi" and s.labels["feature"] == "age" for s in scores)


def test_window_states_of_two_pods_merge_into_the_single_pod_verdict(
    churn_profile, quickstart_train
) -> None:
    from driftline.serving.drift.decide import verdict_to_json
    from driftline.serving.monitor.state import judge, merge_variant_windows

    pods = [service(churn_profile), service(churn_profile)]
    single = service(churn_profile)
    for seed in range(6):
        data = frame(quickstart_train, 300, 200 + seed, "canary", shift=0.4)[0]
        pods[seed % 2].ingest(data)
        single.ingest(data)
    docs = [orjson.loads(orjson.dumps(p.window_state())) for p in pods]
    merged = merge_variant_windows(churn_profile, docs, "canary")
    assert merged.pods == 2 and merged.whole.rows == 1800
    alone = single.windows["canary"].view(0.0)
    assert np.array_equal(merged.whole.numeric, alone.whole.numeric)
    assert np.array_equal(merged.whole.categorical, alone.whole.categorical)
    ours = verdict_to_json(judge(churn_profile, merged, single.config.decision))
    theirs = single.verdicts()["variants"]["canary"]["verdict"]
    assert ours["drifted"] == theirs["drifted"] and ours["status"] == theirs["status"]
    docs[1]["reference_sha256"] = "other"
    partial = merge_variant_windows(churn_profile, docs, "canary")
    assert partial.pods == 1 and partial.skipped == {"other_profile": 1}
    assert partial.problems == ("documents[1].reference_sha256: counted over another profile",)


def test_prediction_drift_from_an_output_feature(quickstart_train) -> None:
    qs = quickstart_train
    x, _ = qs.make_dataset(5000, 0)
    table = {name: x[:, j].astype(np.float64) for j, name in enumerate(qs.FEATURES)}
    table["score"] = np.clip(np.random.default_rng(0).normal(0.5, 0.1, 5000), 0, 1)
    sources = {name: Source("input", "input", j) for j, name in enumerate(qs.FEATURES)}
    sources["score"] = Source("output", "probabilities", 1)
    profile = build_profile(table, "sha", categorical=["region", "plan"], sources=sources)
    cfg = MonitorConfig(
        window=WindowSpec(rows=2000),
        decision=DecisionConfig(min_samples=300, predictions=frozenset({"score"})),
    )
    svc = MonitorService(profile, cfg, clock=lambda: 1000.0, rng=np.random.default_rng(0))
    x_cur, _ = qs.make_dataset(2000, 5)
    score = np.clip(np.random.default_rng(1).normal(0.7, 0.1, 2000), 0, 1)  # outputs moved
    batch = records.RecordBatch(
        model="churn", version="v1", variant="stable",
        request_ids=tuple(f"p{i}" for i in range(2000)), timestamps=np.full(2000, 1000.0),
        latencies_ms=np.ones(2000), inputs={"input": x_cur},
        outputs={"probabilities": np.column_stack([1 - score, score]).astype(np.float32)},
    )  # fmt: skip
    assert svc.ingest(records.encode(batch)).rows == 2000
    verdict = svc.verdicts()["variants"]["stable"]["verdict"]
    assert verdict["prediction_status"] == "drift"
    assert verdict["drifted"] == ["score"]
    score_row = next(f for f in verdict["features"] if f["name"] == "score")
    assert score_row["role"] == "prediction"


def _labels_of(qs: ModuleType, rows: int, seed: int) -> np.ndarray:
    score = np.clip(0.5 + 0.1 * np.random.default_rng(seed).normal(size=rows), 0, 1)
    return (score >= 0.5).astype(np.int64)


def test_verdict_reports_prediction_counts_of_the_window_in_the_operators_shape(
    churn_profile, quickstart_train
) -> None:
    from driftline.operator.analysis import Target
    from driftline.operator.analysis_http import MonitorVerdictDoc, measurements_from_monitor

    svc = service(churn_profile)
    for seed in range(1, 7):  # 3000 rows: the window is the complete pane of rows 0..1999
        svc.ingest(frame(quickstart_train, 500, seed, "canary", version="churn-v2")[0])
    labels = np.concatenate([_labels_of(quickstart_train, 500, s) for s in range(1, 5)])
    doc = orjson.loads(orjson.dumps(svc.verdicts()))
    counts = doc["variants"]["canary"]["prediction_counts"]
    assert counts == {"0": int((labels == 0).sum()), "1": int((labels == 1).sum())}
    assert sum(counts.values()) == doc["variants"]["canary"]["window"]["rows"] == 2000
    parsed = MonitorVerdictDoc.model_validate(doc)
    m = measurements_from_monitor(parsed, Target("default", "churn", "canary", "churn-v2"))
    assert m.prediction_counts == {k: float(v) for k, v in counts.items()}
    assert m.prediction_samples == 2000


def test_regression_reports_no_prediction_counts(churn_profile, quickstart_train) -> None:
    svc = service(churn_profile, task="regression")
    svc.ingest(frame(quickstart_train, 500, 1, "stable")[0])
    assert svc.verdicts()["variants"]["stable"]["prediction_counts"] == {}
