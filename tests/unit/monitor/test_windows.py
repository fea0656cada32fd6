"""Windows: tumbling/sliding by count and by age, exact merging across pods, bounded memory.

Covers: tumbling count windows pick the last complete pane; sliding count windows span the last
panes; age windows by timestamp with late rows counted; windows from two "pods" merge to the
counts of one pod that saw every row; the reservoir stays a bounded uniform sample; predicted
labels are counted over exactly the window's rows (count and age windows), with a bounded
number of distinct labels.
"""

from __future__ import annotations

import numpy as np
import pytest

from driftline.serving.drift.profile import build_profile, encode_table, histograms
from driftline.serving.monitor.window import (
    OTHER_LABEL,
    Reservoir,
    WindowError,
    WindowKind,
    Windows,
    WindowSpec,
    count_labels,
)


def _profile():
    rng = np.random.default_rng(0)
    table = {
        "x": rng.normal(size=5000),
        "seg": rng.choice(np.array(["a", "b"], dtype=object), 5000),
    }
    return build_profile(table, "sha", segments=["seg"])


def _batch(profile, rows: int, seed: int, t0: float = 0.0, dt: float = 1.0):
    rng = np.random.default_rng(seed)
    table = {
        "x": rng.normal(size=rows),
        "seg": rng.choice(np.array(["a", "b"], dtype=object), rows),
    }
    numeric, codes = encode_table(profile.layout, table)
    return numeric, codes, t0 + dt * np.arange(rows, dtype=float)


def _windows(profile, spec: WindowSpec) -> Windows:
    return Windows(profile.layout, spec, {"seg": 0}, np.random.default_rng(1))


def test_tumbling_count_window_is_the_last_complete_pane() -> None:
    profile = _profile()
    w = _windows(profile, WindowSpec(rows=100))
    numeric, codes, ts = _batch(profile, 250, 1)
    w.add(numeric[:60], codes[:60], ts[:60])
    view = w.view(now=0.0)
    assert view.whole.rows == 60 and not view.complete
    w.add(numeric[60:], codes[60:], ts[60:])
    view = w.view(now=0.0)
    assert view.complete and view.whole.rows == 100
    (expected,) = histograms(profile.layout, numeric[100:200], codes[100:200])
    assert np.array_equal(view.whole.numeric, expected.numeric)
    assert view.first_ts == 100.0 and view.last_ts == 199.0
    assert len(w.panes) <= 2


def test_sliding_count_window_spans_the_last_panes() -> None:
    profile = _profile()
    w = _windows(profile, WindowSpec(kind=WindowKind.SLIDING, rows=100, panes=4))
    numeric, codes, ts = _batch(profile, 1000, 2)
    for start in range(0, 1000, 37):
        w.add(numeric[start : start + 37], codes[start : start + 37], ts[start : start + 37])
    view = w.view(now=0.0)
    # 1000 rows in panes of 25: the window is the last 4 panes = rows 900..999.
    (expected,) = histograms(profile.layout, numeric[900:], codes[900:])
    assert view.whole.rows == 100 and view.complete
    assert np.array_equal(view.whole.numeric, expected.numeric)
    assert len(w.panes) <= 5


def test_segments_are_counted_per_category() -> None:
    profile = _profile()
    w = _windows(profile, WindowSpec(rows=1000))
    numeric, codes, ts = _batch(profile, 500, 3)
    w.add(numeric, codes, ts)
    view = w.view(now=0.0)
    seg_a, seg_b = view.segments["seg"]
    assert seg_a.rows + seg_b.rows == 500
    a_index = profile.layout.categorical[0].categories.index("a")
    assert view.segments["seg"][a_index].rows == int((codes[:, 0] == a_index).sum())


def test_age_windows_group_rows_by_timestamp_and_count_late_rows() -> None:
    profile = _profile()
    w = _windows(profile, WindowSpec(rows=None, seconds=60.0))
    numeric, codes, ts = _batch(profile, 180, 4, t0=6000.0, dt=1.0)  # 3 minutes
    w.add(numeric, codes, ts)
    # A tumbling age window keeps the open pane and the one before: minute 100 is already late.
    assert w.late_rows == 60
    view = w.view(now=6200.0)  # minute 103 is open; the last closed is minute 102
    assert view.complete and view.whole.rows == 60
    assert view.first_ts == 6120.0
    old, old_codes, old_ts = _batch(profile, 10, 5, t0=100.0)
    w.add(old, old_codes, old_ts)
    assert w.late_rows == 70


def test_sliding_age_window_covers_the_last_seconds() -> None:
    profile = _profile()
    w = _windows(profile, WindowSpec(kind=WindowKind.SLIDING, rows=None, seconds=60.0, panes=6))
    numeric, codes, ts = _batch(profile, 300, 6, t0=1000.0)
    w.add(numeric, codes, ts)
    view = w.view(now=1299.5)
    # Panes of 10 s; now is in pane 129: the window is panes 124..129 = t in [1240, 1299].
    assert view.whole.rows == 60
    assert view.first_ts == 1240.0


def test_windows_from_two_pods_merge_exactly() -> None:
    profile = _profile()
    numeric, codes, ts = _batch(profile, 900, 7)
    pods = [_windows(profile, WindowSpec(rows=10_000)) for _ in range(2)]
    one = _windows(profile, WindowSpec(rows=10_000))
    for start in range(0, 900, 100):
        part = slice(start, start + 100)
        pods[(start // 100) % 2].add(numeric[part], codes[part], ts[part])
        one.add(numeric[part], codes[part], ts[part])
    merged = pods[0].view(0.0).whole.merge(pods[1].view(0.0).whole)
    alone = one.view(0.0).whole
    assert merged.rows == alone.rows == 900
    assert np.array_equal(merged.numeric, alone.numeric)
    assert np.array_equal(merged.categorical, alone.categorical)
    assert np.allclose(merged.sums, alone.sums)


def test_invalid_specs_name_the_field() -> None:
    with pytest.raises(WindowError, match="exactly one"):
        WindowSpec(rows=10, seconds=5.0)
    with pytest.raises(WindowError, match="rows"):
        WindowSpec(rows=0)
    with pytest.raises(WindowError, match="seconds"):
        WindowSpec(rows=None, seconds=-1.0)


def test_reservoir_is_bounded_and_uniform() -> None:
    res = Reservoir(500, 1, np.random.default_rng(8))
    stream = np.arange(20_000, dtype=float)[:, None]
    for start in range(0, 20_000, 1000):
        res.add(stream[start : start + 1000])
    sample = res.sample()[:, 0]
    assert len(sample) == 500 and res.seen == 20_000
    assert len(np.unique(sample)) == 500
    # Uniform over the stream: the mean rank is near the middle (sd of the mean ~ 258).
    assert abs(sample.mean() - 10_000) < 1500
    assert (sample < 10_000).mean() == pytest.approx(0.5, abs=0.1)


def _labels(rows: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 3, rows).astype(np.float64)


def test_prediction_counts_cover_exactly_the_tumbling_window() -> None:
    profile = _profile()
    w = _windows(profile, WindowSpec(rows=100))
    numeric, codes, ts = _batch(profile, 250, 1)
    labels = _labels(250, 2)
    w.add(numeric[:60], codes[:60], ts[:60], labels[:60])
    assert dict(w.view(now=0.0).predictions) == _expected(labels[:60])
    w.add(numeric[60:], codes[60:], ts[60:], labels[60:])  # split over panes 0, 1, 2
    view = w.view(now=0.0)
    assert dict(view.predictions) == _expected(labels[100:200])
    assert sum(view.predictions.values()) == view.whole.rows == 100


def _expected(labels: np.ndarray) -> dict[str, int]:
    values, n = np.unique(labels, return_counts=True)
    return {str(int(v)): int(k) for v, k in zip(values, n, strict=True)}


def test_prediction_counts_follow_age_panes_and_skip_late_rows() -> None:
    profile = _profile()
    w = _windows(profile, WindowSpec(kind=WindowKind.SLIDING, rows=None, seconds=60.0, panes=6))
    numeric, codes, ts = _batch(profile, 300, 6, t0=1000.0)
    labels = _labels(300, 7)
    w.add(numeric, codes, ts, labels)
    view = w.view(now=1299.5)
    assert dict(view.predictions) == _expected(labels[240:])
    w.add(numeric[:5], codes[:5], ts[:5], labels[:5])  # t = 1000..1004: late, not counted
    assert dict(w.view(now=1299.5).predictions) == _expected(labels[240:])


def test_windows_without_labels_report_no_prediction_counts() -> None:
    profile = _profile()
    w = _windows(profile, WindowSpec(rows=100))
    numeric, codes, ts = _batch(profile, 50, 1)
    w.add(numeric, codes, ts)
    assert dict(w.view(now=0.0).predictions) == {}


def test_count_labels_keys_like_category_codes_and_bounds_distinct_labels() -> None:
    counts: dict[str, int] = {}
    count_labels(counts, np.array([1.0, 0.0, 1.0, np.nan, 2.5, np.inf]))
    assert counts == {"0": 1, "1": 2, "2.5": 1}
    count_labels(counts, np.arange(10, dtype=np.float64), limit=5)
    assert len(counts) == 6  # five label keys, then everything new pools into OTHER_LABEL
    assert counts[OTHER_LABEL] == 6  # 4..9 arrived once five keys existed
    assert counts["0"] == 2 and counts["1"] == 3 and counts["2"] == 1 and counts["3"] == 1
    assert sum(counts.values()) == 4 + 10
