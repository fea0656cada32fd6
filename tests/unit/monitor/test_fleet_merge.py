"""Merging the pods' window states: exact sums, skipped documents, bounded reservoir merge.

We test: two sidecars fed the two halves of one stream merge to exactly the counts (whole and per
segment) and the verdict of one sidecar fed the whole stream; documents of another format,
profile version or model version, or malformed, are skipped and counted while the rest merge;
a variant no pod saw is "no pods", distinct from a merged window below ``min_samples``; the
reservoir merge never exceeds its capacity and draws from each pod in proportion to its stream.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

from driftline.serving import records
from driftline.serving.drift import decide
from driftline.serving.drift.decide import DecisionConfig
from driftline.serving.drift.profile import Histograms, Profile, Source, build_profile
from driftline.serving.monitor.service import MonitorConfig, MonitorService
from driftline.serving.monitor.state import (
    SKIP_FORMAT,
    SKIP_MALFORMED,
    SKIP_PROFILE,
    SKIP_VERSION,
    judge,
    merge_reservoirs,
    merge_variant_windows,
)
from driftline.serving.monitor.window import WindowSpec


@pytest.fixture(scope="module")
def profile(quickstart_train: ModuleType) -> Profile:
    qs = quickstart_train
    x, _ = qs.make_dataset(4000, 0)
    table = {name: x[:, j].astype(np.float64) for j, name in enumerate(qs.FEATURES)}
    sources = {name: Source("input", "input", j) for j, name in enumerate(qs.FEATURES)}
    return build_profile(table, "sha-ref", categorical=["region", "plan"], segments=["region"],
                         sources=sources)  # fmt: skip


def _batch(x: np.ndarray, version: str = "v2") -> records.RecordBatch:
    rows = len(x)
    return records.RecordBatch(
        model="churn",
        version=version,
        variant="canary",
        request_ids=tuple(f"r{i}" for i in range(rows)),
        timestamps=np.full(rows, 1000.0),
        latencies_ms=np.ones(rows),
        inputs={"input": x},
        outputs={"probabilities": np.full((rows, 2), 0.5, dtype=np.float32)},
    )


def _service(profile: Profile, min_samples: int = 600) -> MonitorService:
    cfg = MonitorConfig(
        window=WindowSpec(rows=10_000), decision=DecisionConfig(min_samples=min_samples)
    )
    return MonitorService(profile, cfg, clock=lambda: 2000.0, rng=np.random.default_rng(1))


def _same(a: Histograms, b: Histograms) -> None:
    assert a.rows == b.rows
    np.testing.assert_array_equal(a.numeric, b.numeric)
    np.testing.assert_array_equal(a.categorical, b.categorical)
    np.testing.assert_array_equal(a.numeric_missing, b.numeric_missing)
    np.testing.assert_allclose(a.sums, b.sums, rtol=1e-12)
    np.testing.assert_allclose(a.moments, b.moments, rtol=1e-12)


def _halves(
    qs: ModuleType, profile: Profile, rows: int, shift: float
) -> tuple[list[object], MonitorService]:
    x, _ = qs.make_dataset(rows, 7, shift=shift)
    pods = [_service(profile), _service(profile)]
    pods[0].ingest_batch(_batch(x[: rows // 2]))
    pods[1].ingest_batch(_batch(x[rows // 2 :]))
    single = _service(profile)
    single.ingest_batch(_batch(x))
    return [p.window_state() for p in pods], single


def test_merged_counts_equal_the_counts_of_the_concatenated_rows(
    profile: Profile, quickstart_train: ModuleType
) -> None:
    docs, single = _halves(quickstart_train, profile, 1600, shift=1.0)
    merged = merge_variant_windows(profile, docs, "canary", "v2")
    view = single.windows["canary"].view(2000.0)
    assert merged.pods == 2 and merged.skipped == {}
    _same(merged.whole, view.whole)
    assert set(merged.segments) == {"region"}
    for got, want in zip(merged.segments["region"], view.segments["region"], strict=True):
        _same(got, want)
    cfg = DecisionConfig(min_samples=600)
    fleet = decide.verdict_to_json(judge(profile, merged, cfg))
    one = single.verdicts()["variants"]["canary"]["verdict"]  # type: ignore[index]
    assert fleet == one
    assert fleet["status"] == "drift"


def test_each_half_alone_is_not_enough_data_the_merge_decides(
    profile: Profile, quickstart_train: ModuleType
) -> None:
    docs, _ = _halves(quickstart_train, profile, 1000, shift=1.0)
    cfg = DecisionConfig(min_samples=600)
    for doc in docs:
        alone = judge(profile, merge_variant_windows(profile, [doc], "canary"), cfg)
        assert alone.status is decide.Status.NOT_ENOUGH_DATA and alone.rows == 500
    both = judge(profile, merge_variant_windows(profile, docs, "canary"), cfg)
    assert both.status is decide.Status.DRIFT and both.rows == 1000


def test_bad_documents_are_skipped_and_counted_never_fatal(
    profile: Profile, quickstart_train: ModuleType
) -> None:
    docs, _ = _halves(quickstart_train, profile, 1000, shift=0.0)
    good = docs[0]
    assert isinstance(good, dict)
    other_profile = {**good, "reference_sha256": "another"}
    other_format = {**good, "format": "driftline.window/v0"}
    entry = good["variants"]["canary"]
    other_version = {**good, "variants": {"canary": {**entry, "version": "v1"}}}
    bad_counts = {**good, "variants": {"canary": {**entry, "whole": {"rows": "many"}}}}
    bad_segments = {**good, "variants": {"canary": {**entry, "segments": {"plan": {}}}}}
    no_variants = {**good, "variants": []}
    unrelated = {**good, "variants": {"stable": entry, "shadow": entry}}
    merged = merge_variant_windows(
        profile,
        [good, other_profile, other_format, "text", other_version, bad_counts, bad_segments,
         no_variants, unrelated],
        "canary",
        "v2",
    )  # fmt: skip
    assert merged.pods == 1 and merged.whole.rows == 500
    assert merged.skipped == {SKIP_PROFILE: 1, SKIP_FORMAT: 2, SKIP_VERSION: 1, SKIP_MALFORMED: 3}
    assert any("documents[5].variants.canary.whole" in p for p in merged.problems)
    assert any("documents[6].variants.canary.segments" in p for p in merged.problems)


def test_no_pod_is_distinct_from_too_few_rows(profile: Profile) -> None:
    merged = merge_variant_windows(profile, [], "canary")
    assert merged.pods == 0 and merged.whole.rows == 0
    verdict = judge(profile, merged, DecisionConfig())
    assert verdict.status is decide.Status.NOT_ENOUGH_DATA


def test_reservoir_merge_is_bounded_and_proportional() -> None:
    rng = np.random.default_rng(3)
    a = np.zeros((100, 2))  # pod A saw 9,000 rows, kept 100
    b = np.ones((100, 2))  # pod B saw 1,000 rows, kept 100
    counts = []
    for _ in range(200):
        out = merge_reservoirs([(a, 9000), (b, 1000)], 100, rng)
        assert out.shape == (100, 2)
        counts.append(float(out[:, 0].mean()))
    assert abs(np.mean(counts) - 0.1) < 0.01  # B is 10% of the union's rows
    small = merge_reservoirs([(a[:5], 5), (b[:3], 3)], 100, rng)
    assert small.shape == (8, 2)  # fewer rows than the capacity: all of them
    short = merge_reservoirs([(a[:10], 9000), (b, 1000)], 100, rng)
    assert len(short) <= 100  # pod A kept fewer than its draw: bounded, never padded
    assert merge_reservoirs([], 10, rng).shape == (0, 0)
    with pytest.raises(ValueError, match="seen"):
        merge_reservoirs([(a, 10)], 10, rng)
    with pytest.raises(ValueError, match="capacity"):
        merge_reservoirs([(a, 100)], -1, rng)
