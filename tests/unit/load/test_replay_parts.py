"""The replayer's pure parts: dataset reading, request bodies, pacing, the summary.

We test these aspects: CSV with category names mapped to codes, explicit column order, a missing
label column meaning no feedback; .npz columns; every bad input naming the file, line and column;
the OIP body and the feedback body shapes; open-loop pacing; the plan refusing unbounded or
nonsensical loads; the summary's counts, nearest-rank quantiles and per-variant counts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from driftline.serving import load


def _csv(tmp_path: Path, text: str, name: str = "d.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reading_csv_maps_category_names_to_codes(tmp_path: Path) -> None:
    path = _csv(tmp_path, "a,region,label\n1.5,us,1\n2,eu,0\n3,2,1\n")
    data = load.read_dataset(path, categories={"region": ("eu", "us", "apac")})
    assert data.columns == ("a", "region")
    assert data.features.dtype == np.float32
    assert data.features.tolist() == [[1.5, 1.0], [2.0, 0.0], [3.0, 2.0]]
    assert data.labels is not None and data.labels.tolist() == [1.0, 0.0, 1.0]


def test_reading_csv_in_the_column_order_asked_for(tmp_path: Path) -> None:
    path = _csv(tmp_path, "a,b,c\n1,2,3\n")
    data = load.read_dataset(path, columns=["c", "a"], label=None)
    assert data.columns == ("c", "a")
    assert data.features.tolist() == [[3.0, 1.0]]
    assert data.labels is None


def test_a_csv_without_the_label_column_replays_without_labels(tmp_path: Path) -> None:
    data = load.read_dataset(_csv(tmp_path, "a,b\n1,2\n"))
    assert data.labels is None
    assert data.columns == ("a", "b")


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ("", {}, "empty file"),
        ("a,b\n", {}, "no data rows"),
        ("a,b\n1\n", {}, "line 2: 1 cells, the header has 2"),
        ("a,b\n1,x\n", {}, "line 2, column 'b': 'x' is not a number"),
        ("a,r\n1,mars\n", {"categories": {"r": ("eu", "us")}}, "'mars' is not one of"),
        ("a,r\n1,7\n", {"categories": {"r": ("eu", "us")}}, "outside 0..1"),
        ("a,b\n1,2\n", {"columns": ["zz"]}, "no column 'zz'"),
        ("a,b\n1,2\n", {"categories": {"q": ("x",)}}, "'q', which is not a feature column"),
        ("a,label\n1,yes\n", {}, "label column 'label': 'yes' is not a number"),
    ],
)
def test_rejecting_bad_csv_names_the_place(
    tmp_path: Path, text: str, kwargs: dict[str, object], expected: str
) -> None:
    with pytest.raises(load.DatasetError, match=expected.replace("(", r"\(")):
        load.read_dataset(_csv(tmp_path, text), **kwargs)  # type: ignore[arg-type]


def test_reading_npz_columns(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x=np.array([1.0, 2.0]), y=np.array([3, 4]), label=np.array([0, 1]))
    data = load.read_dataset(path)
    assert data.columns == ("x", "y")
    assert data.features.tolist() == [[1.0, 3.0], [2.0, 4.0]]
    assert data.labels is not None and data.labels.tolist() == [0.0, 1.0]


@pytest.mark.parametrize(
    ("arrays", "expected"),
    [
        ({"x": np.array([1.0]), "y": np.array([1.0, 2.0])}, "differ in length"),
        ({"x": np.ones((2, 2))}, "must be 1-D"),
    ],
)
def test_rejecting_bad_npz(tmp_path: Path, arrays: dict[str, object], expected: str) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(load.DatasetError, match=expected):
        load.read_dataset(path)


def test_rejecting_missing_files_and_unknown_types(tmp_path: Path) -> None:
    with pytest.raises(load.DatasetError, match="no such file"):
        load.read_dataset(tmp_path / "nope.csv")
    other = tmp_path / "d.parquet"
    other.write_text("x")
    with pytest.raises(load.DatasetError, match="unsupported file type"):
        load.read_dataset(other)


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        (["region"], "expected COLUMN=name0"),
        (["region="], "expected COLUMN=name0"),
        (["r=a,a"], "listed twice"),
        (["r=a", "r=b"], "given twice"),
    ],
)
def test_rejecting_bad_category_flags(specs: list[str], expected: str) -> None:
    with pytest.raises(load.DatasetError, match=expected):
        load.parse_categories(specs)


def test_parsing_category_flags() -> None:
    assert load.parse_categories(["region=eu, us ,apac", "plan=basic"]) == {
        "region": ("eu", "us", "apac"),
        "plan": ("basic",),
    }


def test_building_the_oip_request_body() -> None:
    rows = np.array([[1.0, 2.5], [3.0, 4.0]], dtype=np.float32)
    doc = orjson.loads(load.infer_body(rows, input_name="input", datatype="FP32", request_id="r1"))
    assert doc == {
        "id": "r1",
        "inputs": [{"name": "input", "shape": [2, 2], "datatype": "FP32", "data": [1, 2.5, 3, 4]}],
    }


def test_building_the_feedback_body() -> None:
    doc = orjson.loads(load.feedback_body([("a-1", 1.0), ("a-2", 0.0)]))
    assert doc == {
        "feedback": [
            {"request_id": "a-1", "label": 1, "row": 0},
            {"request_id": "a-2", "label": 0, "row": 0},
        ]
    }
    doc = orjson.loads(load.feedback_body([("a-3", 2.5)], field="value"))
    assert doc == {"feedback": [{"request_id": "a-3", "value": 2.5, "row": 0}]}


def test_pacing_is_open_loop() -> None:
    assert [load.due_time(i, 4.0) for i in range(3)] == [0.0, 0.25, 0.5]
    assert load.due_time(10, 0.0) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "needs a bound"),
        ({"count": 0}, "count must be at least 1"),
        ({"count": 1, "rate": -1.0}, "rate must be"),
        ({"count": 1, "concurrency": 0}, "at least 1"),
        ({"duration_s": 0.0}, "duration must be positive"),
        ({"count": 1, "url": "ftp://x"}, "http://"),
    ],
)
def test_refusing_plans_that_never_stop_or_make_no_sense(
    kwargs: dict[str, object], expected: str
) -> None:
    args: dict[str, object] = {"url": "http://127.0.0.1:1/v2/models/m/infer", **kwargs}
    with pytest.raises(ValueError, match=expected):
        load.LoadPlan(**args)  # type: ignore[arg-type]


def _o(status: int, ms: float, variant: str = "stable") -> load.Outcome:
    return load.Outcome(status, ms / 1000.0, variant, "id", 0, None if status == 200 else "boom")


def test_summarizing_counts_quantiles_and_variants() -> None:
    outcomes = [_o(200, float(i), "stable" if i % 4 else "canary") for i in range(1, 101)]
    outcomes += [_o(503, 1.0), _o(0, 1.0)]
    summary = load.summarize(outcomes, 2.0, feedback_sent=5)
    assert summary.sent == 102
    assert summary.ok == 100
    assert summary.errors == {"HTTP 503": 1, "transport": 1}
    assert summary.error_count == 2
    assert summary.p50_ms == 50.0
    assert summary.p99_ms == 99.0
    assert summary.by_variant == {"stable": 75, "canary": 25}
    assert summary.rate == 51.0
    assert summary.last_error == "boom"
    text = load.render_summary(summary)
    assert "HTTP 503: 1" in text
    assert "canary: 25" in text
    assert "feedback  5 labels posted" in text


def test_summarizing_nothing() -> None:
    summary = load.summarize([], 0.0)
    assert summary.p50_ms is None and summary.p99_ms is None and summary.rate == 0.0
    assert "latency   p50 -, p99 -" in load.render_summary(summary)
