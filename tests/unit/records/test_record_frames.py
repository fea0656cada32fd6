"""The prediction record frame: round trips and every rejection path of the decoder."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from driftline.serving.records import MAGIC, RecordBatch, RecordFormatError, decode, encode


def _batch(rows: int = 3) -> RecordBatch:
    rng = np.random.default_rng(0)
    return RecordBatch(
        model="churn",
        version="v1",
        variant="canary",
        request_ids=tuple(f"r{i // 2}" for i in range(rows)),
        timestamps=np.arange(rows, dtype=np.float64) + 1.7e9,
        latencies_ms=np.full(rows, 0.25),
        inputs={"x": rng.normal(size=(rows, 4)).astype(np.float32)},
        outputs={
            "label": np.arange(rows, dtype=np.int64),
            "probabilities": rng.random((rows, 2)).astype(np.float32),
        },
    )


def test_round_trip_keeps_every_array_and_field() -> None:
    batch = _batch()
    back = decode(encode(batch))
    assert (back.model, back.version, back.variant) == ("churn", "v1", "canary")
    assert back.request_ids == batch.request_ids
    np.testing.assert_array_equal(back.timestamps, batch.timestamps)
    np.testing.assert_array_equal(back.latencies_ms, batch.latencies_ms)
    for name, array in batch.inputs.items():
        np.testing.assert_array_equal(back.inputs[name], array)
        assert back.inputs[name].dtype == array.dtype
    for name, array in batch.outputs.items():
        np.testing.assert_array_equal(back.outputs[name], array)


def test_round_trip_of_string_tensors() -> None:
    batch = _batch(2)
    batch = RecordBatch(**{**batch.__dict__, "inputs": {"region": np.array(["eu", "us"])}})
    back = decode(encode(batch))
    assert list(back.inputs["region"]) == ["eu", "us"]


def test_empty_batch_round_trips() -> None:
    batch = RecordBatch("m", "v", "stable", (), np.empty(0), np.empty(0))
    assert decode(encode(batch)).rows == 0


def test_encoding_rejects_misaligned_rows() -> None:
    batch = RecordBatch(
        "m", "v", "stable", ("a", "b"), np.zeros(2), np.zeros(2), inputs={"x": np.zeros((3, 1))}
    )
    with pytest.raises(RecordFormatError, match="first dimension"):
        encode(batch)


def _frame_with(header: dict[str, object], payload: bytes = b"") -> bytes:
    raw = orjson.dumps(header)
    prefix = MAGIC + struct.pack("<I", len(raw)) + raw
    return prefix + b"\0" * ((-len(prefix)) % 8) + payload


GOOD_HEADER: dict[str, object] = {
    "model": "m",
    "version": "v",
    "variant": "stable",
    "rows": 1,
    "request_ids": ["a"],
    "timestamps": [1.0],
    "latencies_ms": [0.1],
    "arrays": [{"kind": "input", "name": "x", "dtype": "<f4", "shape": [1, 2]}],
}


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"", "bad magic"),
        (b"XXXX\0\0\0\0", "bad magic"),
        (MAGIC + struct.pack("<I", 1000) + b"{}", "exceeds the frame"),
        (MAGIC + struct.pack("<I", 3) + b"{{{", "not valid JSON"),
        (_frame_with({**GOOD_HEADER, "rows": -1}), "'rows'"),
        (_frame_with({**GOOD_HEADER, "request_ids": ["a", "b"]}), "'request_ids'"),
        (_frame_with(GOOD_HEADER, b"\0" * 4), "truncated"),
        (_frame_with(GOOD_HEADER, b"\0" * 16), "trailing bytes"),
        (
            _frame_with(
                {
                    **GOOD_HEADER,
                    "arrays": [{"kind": "input", "name": "x", "dtype": "<c8", "shape": [1]}],
                }
            ),
            "dtype",
        ),
        (
            _frame_with(
                {
                    **GOOD_HEADER,
                    "arrays": [{"kind": "input", "name": "x", "dtype": "<f4", "shape": [2]}],
                }
            ),
            "shape",
        ),
        (_frame_with({**GOOD_HEADER, "arrays": [], "timestamps": ["x"]}), "'timestamps'"),
        (_frame_with({**GOOD_HEADER, "arrays": [], "model": 3}), "'model'"),
        (_frame_with({**GOOD_HEADER, "arrays": [], "strings": {"bad": ["a"]}}), "strings key"),
    ],
)
def test_decoding_rejects_bad_frames_with_a_reason(frame: bytes, message: str) -> None:
    with pytest.raises(RecordFormatError, match=message):
        decode(frame)


def test_good_hand_built_frame_decodes() -> None:
    payload = np.array([[1.0, 2.0]], dtype="<f4").tobytes()
    batch = decode(_frame_with(GOOD_HEADER, payload))
    np.testing.assert_array_equal(batch.inputs["x"], [[1.0, 2.0]])
