"""Shadow comparison of OIP answers: class agreement and score mean absolute difference."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from driftline.serving.router.compare import (
    UNCOMPARABLE,
    CompareBudget,
    compare_bodies,
    json_length,
)


def _answer(labels: list[int], scores: list[list[float]]) -> bytes:
    return orjson.dumps(
        {
            "model_name": "m",
            "outputs": [
                {"name": "label", "datatype": "INT64", "shape": [len(labels)], "data": labels},
                {
                    "name": "probabilities",
                    "datatype": "FP32",
                    "shape": [len(scores), 2],
                    "data": scores,
                },
            ],
        }
    )


def test_identical_answers_agree_fully() -> None:
    body = _answer([0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]])
    result = compare_bodies(body, body)
    assert result.comparable
    assert (result.class_n, result.class_agree) == (3, 3)
    assert result.score_n == 6 and result.score_abs_sum == 0.0


def test_hand_computed_disagreement() -> None:
    primary = _answer([0, 1, 1, 0], [[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.5, 0.5]])
    shadow = _answer([0, 0, 1, 1], [[0.8, 0.2], [0.6, 0.4], [0.4, 0.6], [0.4, 0.6]])
    result = compare_bodies(primary, shadow)
    assert (result.class_n, result.class_agree) == (4, 2)
    assert result.score_n == 8
    # |diffs| = 0.1,0.1, 0.4,0.4, 0,0, 0.1,0.1 -> 1.2
    assert result.score_abs_sum == pytest.approx(1.2)


def test_flat_and_nested_data_compare_alike() -> None:
    nested = _answer([1], [[0.25, 0.75]])
    flat = orjson.dumps(
        {
            "outputs": [
                {"name": "label", "datatype": "INT64", "shape": [1], "data": [1]},
                {
                    "name": "probabilities",
                    "datatype": "FP32",
                    "shape": [1, 2],
                    "data": [0.25, 0.75],
                },
            ]
        }
    )
    assert compare_bodies(nested, flat).score_abs_sum == 0.0


@pytest.mark.parametrize(
    "shadow",
    [
        b"not json",
        b'{"error": "boom"}',
        orjson.dumps({"outputs": [{"name": "label", "datatype": "INT64", "data": [1]}]}),
        orjson.dumps(
            {
                "outputs": [
                    {"name": "label", "datatype": "INT64", "data": [1, 0]},
                    {"name": "probabilities", "datatype": "FP32", "data": [0.2, 0.8]},
                ]
            }
        ),
        orjson.dumps(
            {
                "outputs": [
                    {"name": "label", "datatype": "FP32", "data": [1.0]},
                    {"name": "probabilities", "datatype": "FP32", "data": [0.2, 0.8]},
                ]
            }
        ),
        orjson.dumps(
            {
                "outputs": [
                    {"name": "label", "datatype": "INT64", "data": [1]},
                    {"name": "probabilities", "datatype": "FP32", "data": ["a", "b"]},
                ]
            }
        ),
    ],
)
def test_unmatched_answers_are_uncomparable(shadow: bytes) -> None:
    assert compare_bodies(_answer([1], [[0.25, 0.75]]), shadow) == UNCOMPARABLE


def test_the_compare_budget_allows_per_s_comparisons_per_second() -> None:
    budget = CompareBudget(3)
    assert [budget.take(10.0 + i / 10) for i in range(5)] == [True, True, True, False, False]
    assert budget.take(11.0)  # a new second: a new budget
    assert [budget.take(11.5) for _ in range(3)] == [True, True, False]


def test_the_compare_budget_needs_at_least_one_per_second() -> None:
    with pytest.raises(ValueError, match="per_s"):
        CompareBudget(0)


def _binary_answer(labels: list[int], scores: list[list[float]]) -> tuple[bytes, int]:
    """The same answer in the binary tensor extension: (body, JSON part length)."""
    label_bytes = np.asarray(labels, dtype="<i8").tobytes()
    score_bytes = np.asarray(scores, dtype="<f4").tobytes()
    head = orjson.dumps(
        {
            "model_name": "m",
            "outputs": [
                {
                    "name": "label",
                    "datatype": "INT64",
                    "shape": [len(labels)],
                    "parameters": {"binary_data_size": len(label_bytes)},
                },
                {
                    "name": "probabilities",
                    "datatype": "FP32",
                    "shape": [len(scores), 2],
                    "parameters": {"binary_data_size": len(score_bytes)},
                },
            ],
        }
    )
    return head + label_bytes + score_bytes, len(head)


def test_binary_answers_compare_like_json_ones() -> None:
    """tritonclient asks for binary outputs by default: a shadow phase must read them."""
    scores = [[0.5, 0.5], [0.25, 0.75], [0.75, 0.25], [0.5, 0.5]]
    primary, primary_length = _binary_answer([0, 1, 1, 0], scores)
    shadow = _answer([0, 0, 1, 1], [[0.5, 0.5], [0.5, 0.5], [0.75, 0.25], [0.5, 0.5]])
    binary_vs_json = compare_bodies(primary, shadow, primary_length, None)
    json_vs_json = compare_bodies(_answer([0, 1, 1, 0], scores), shadow)
    assert binary_vs_json == json_vs_json
    assert (binary_vs_json.class_n, binary_vs_json.class_agree) == (4, 2)
    assert binary_vs_json.score_abs_sum == pytest.approx(0.5)
    both, shadow_length = _binary_answer([0, 1, 1, 0], scores)
    same = compare_bodies(primary, both, primary_length, shadow_length)
    assert (same.class_agree, same.score_abs_sum) == (4, 0.0)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda body, n: (body, None),  # binary body read as JSON
        lambda body, n: (body, len(body) + 1),  # header length beyond the body
        lambda body, n: (body[:-3], n),  # truncated binary data
        lambda body, n: (body, -1),  # malformed header
        lambda body, n: (body.replace(b'"INT64"', b'"FOO64"'), n),  # unknown datatype
    ],
)
def test_malformed_binary_answers_are_uncomparable(mangle: Any) -> None:
    body, length = _binary_answer([0, 1], [[0.5, 0.5], [0.5, 0.5]])
    bad, bad_length = mangle(body, length)
    assert compare_bodies(bad, body, bad_length, length) == UNCOMPARABLE


@pytest.mark.parametrize(
    ("raw", "length"),
    [
        (b"", None),
        (b"x-other: 1\r\n", None),
        (b"Inference-Header-Content-Length: 123\r\n", 123),
        (b"x-a: b\r\ninference-header-content-length:77\r\nx-c: d\r\n", 77),
        (b"x-inference-header-content-length: 5\r\n", None),  # another header's name
        (b"Inference-Header-Content-Length: 12a\r\n", -1),
    ],
)
def test_json_length_from_raw_headers(raw: bytes, length: int | None) -> None:
    assert json_length(raw) == length
