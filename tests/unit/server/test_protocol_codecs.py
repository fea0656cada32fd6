"""OIP v2 request parsing, validation and response encoding (driftline.serving.protocol).

We test these aspects: JSON decoding of every datatype (flat and nested data), binary tensor
decoding of every datatype, every validation failure naming its field (table), requested and
binary outputs, response encoding (JSON and binary) round-tripping through the decoders.
"""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from driftline.serving.errors import InvalidInput
from driftline.serving.protocol import (
    DTYPES,
    Policy,
    Signature,
    TensorSpec,
    decode_binary_tensor,
    decode_json_tensor,
    encode_infer_response,
    model_metadata,
    parse_infer_request,
)

SIG = Signature(
    inputs=(TensorSpec("x", "FP32", (-1, 3)),),
    outputs=(TensorSpec("y", "FP32", (-1, 3)), TensorSpec("label", "INT64", (-1,))),
)
TWO = Signature(
    inputs=(TensorSpec("a", "FP32", (-1, 2)), TensorSpec("c", "INT64", (-1,))),
    outputs=(TensorSpec("sum", "FP32", (-1, 2)),),
)
POLICY = Policy(max_rows=8)


def _body(doc: object) -> bytes:
    return orjson.dumps(doc)


def _req(data: object, shape: object = (1, 3), datatype: str = "FP32", **extra: object) -> bytes:
    inp = {
        "name": "x",
        "shape": list(shape) if isinstance(shape, tuple) else shape,
        "datatype": datatype,
        "data": data,
    }
    return _body({"inputs": [inp], **extra})


JSON_CASES = [
    ("BOOL", [True, False, True], np.array([True, False, True])),
    ("INT8", [-128, 0, 127], np.array([-128, 0, 127], dtype=np.int8)),
    ("INT16", [-32768, 1, 32767], np.array([-32768, 1, 32767], dtype=np.int16)),
    ("INT32", [-(2**31), 2, 2**31 - 1], np.array([-(2**31), 2, 2**31 - 1], dtype=np.int32)),
    ("INT64", [-(2**63), 3, 2**63 - 1], np.array([-(2**63), 3, 2**63 - 1], dtype=np.int64)),
    ("UINT8", [0, 1, 255], np.array([0, 1, 255], dtype=np.uint8)),
    ("UINT16", [0, 1, 65535], np.array([0, 1, 65535], dtype=np.uint16)),
    ("UINT32", [0, 1, 2**32 - 1], np.array([0, 1, 2**32 - 1], dtype=np.uint32)),
    ("UINT64", [0, 1, 2**64 - 1], np.array([0, 1, 2**64 - 1], dtype=np.uint64)),
    ("FP16", [0.5, -1, 65504.0], np.array([0.5, -1, 65504.0], dtype=np.float16)),
    ("FP32", [0.25, 1, -3.5], np.array([0.25, 1, -3.5], dtype=np.float32)),
    ("FP64", [1e300, 2, -0.1], np.array([1e300, 2, -0.1], dtype=np.float64)),
    ("BYTES", ["a", "", "ü"], np.array(["a", "", "ü"], dtype=object)),
]


@pytest.mark.parametrize(("datatype", "data", "expected"), JSON_CASES)
def test_decoding_json_data_of_every_datatype(
    datatype: str, data: list[object], expected: np.ndarray
) -> None:
    out = decode_json_tensor("d", datatype, (1, 3), data, allow_non_finite=False)
    assert out.dtype == DTYPES[datatype]
    assert out.shape == (1, 3)
    assert out.ravel().tolist() == expected.tolist()


@pytest.mark.parametrize(("datatype", "data", "expected"), JSON_CASES)
def test_decoding_nested_json_data_row_major(
    datatype: str, data: list[object], expected: np.ndarray
) -> None:
    out = decode_json_tensor("d", datatype, (3, 1), [[v] for v in data], allow_non_finite=False)
    assert out.shape == (3, 1)
    assert out.ravel().tolist() == expected.tolist()


def _binary(datatype: str, values: np.ndarray) -> bytes:
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)
    return values.astype(DTYPES[datatype].newbyteorder("<")).tobytes()


@pytest.mark.parametrize(("datatype", "data", "expected"), JSON_CASES)
def test_decoding_binary_data_of_every_datatype(
    datatype: str, data: list[object], expected: np.ndarray
) -> None:
    raw = _binary(datatype, expected)
    out = decode_binary_tensor("d", datatype, (3,), raw, allow_non_finite=False)
    assert out.dtype == DTYPES[datatype]
    assert out.tolist() == expected.tolist()


ERROR_CASES = [
    ("not json", b"{nope", "not valid JSON"),
    ("not an object", b"[1]", "must be a JSON object"),
    ("id not string", _req([1, 2, 3], id=5), "id: must be a string"),
    ("no inputs", _body({"inputs": []}), "inputs: must be a non-empty list"),
    ("inputs missing", _body({}), "inputs: must be a non-empty list"),
    ("input not object", _body({"inputs": [3]}), "inputs[0]: must be an object"),
    (
        "unknown input",
        _body({"inputs": [{"name": "z", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}),
        "no input 'z'",
    ),
    (
        "wrong datatype",
        _req([1, 2, 3], datatype="FP64"),
        "'FP64' does not match the model's 'FP32'",
    ),
    ("shape not list", _req([1, 2, 3], shape="1,3"), "inputs[0].shape: must be a list"),
    ("negative dim", _req([1, 2, 3], shape=[-1, 3]), "non-negative integers"),
    ("bool dim", _req([1, 2, 3], shape=[True, 3]), "non-negative integers"),
    ("wrong rank", _req([1, 2, 3], shape=[3]), "rank 1 does not match"),
    (
        "wrong fixed dim",
        _req([1, 2, 3, 4], shape=[1, 4]),
        "[1, 4] does not match the model's [-1, 3]",
    ),
    ("too few elements", _req([1, 2]), "has 2 elements but shape [1, 3] needs 3"),
    ("too many elements", _req([[1, 2, 3], [4, 5, 6]]), "has 6 elements but shape [1, 3] needs 3"),
    ("string in numbers", _req([1, "2", 3]), "FP32 data must be numbers, got str"),
    ("bool in numbers", _req([1, True, 3]), "FP32 data must be numbers, got bool"),
    ("null in numbers", _req([1, None, 3]), "got NoneType"),
    ("data not list", _req(5), "inputs[0].data: must be a list"),
    (
        "data missing",
        _body({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32"}]}),
        "inputs[0].data: is required",
    ),
    ("fp32 overflow", _req([1e39, 0, 0]), "non-finite value"),
    ("empty batch", _req([], shape=[0, 3]), "empty batch"),
    ("batch over max", _req([0] * 27, shape=[9, 3]), "9 rows exceeds the maximum of 8"),
    (
        "duplicate input",
        _body(
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}] * 2}
        ),
        "given twice",
    ),
    ("parameters not object", _req([1, 2, 3], parameters=[1]), "parameters: must be an object"),
    ("parameter value", _req([1, 2, 3], parameters={"k": [1]}), "parameters.k: must be"),
    ("outputs not list", _req([1, 2, 3], outputs={"name": "y"}), "outputs: must be a list"),
    ("unknown output", _req([1, 2, 3], outputs=[{"name": "q"}]), "no output 'q'"),
    ("output twice", _req([1, 2, 3], outputs=[{"name": "y"}, {"name": "y"}]), "requested twice"),
    ("output no name", _req([1, 2, 3], outputs=[{}]), "outputs[0]: must be an object"),
    (
        "deep nesting",
        b'{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":['
        + b"[" * 70
        + b"1"
        + b"]" * 70
        + b"]}]}",
        "deeper than 64",
    ),
    (
        "binary without header",
        _body(
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [1, 3],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": 12},
                    }
                ]
            }
        ),
        "without the Inference-Header-Content-Length",
    ),
]


@pytest.mark.parametrize(("case", "body", "message"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_rejecting_invalid_requests_naming_the_problem(
    case: str, body: bytes, message: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_infer_request(body, SIG, POLICY)
    assert message in info.value.message
    assert info.value.status == 400


INT_RANGE_CASES = [
    ("INT8", [128]),
    ("INT8", [-129]),
    ("UINT8", [-1]),
    ("UINT8", [256]),
    ("INT16", [2**15]),
    ("UINT16", [2**16]),
    ("INT32", [2**31]),
    ("UINT32", [-1]),
    ("INT64", [2**63]),
    ("UINT64", [2**64]),
    ("UINT64", [-1]),
]


@pytest.mark.parametrize(("datatype", "data"), INT_RANGE_CASES)
def test_rejecting_integers_out_of_range(datatype: str, data: list[int]) -> None:
    with pytest.raises(InvalidInput, match="out of range"):
        decode_json_tensor("d", datatype, (1,), data, allow_non_finite=False)


@pytest.mark.parametrize(
    ("datatype", "data", "what"),
    [
        ("INT32", [1.5], "integers, got float"),
        ("INT64", [True], "integers, got bool"),
        ("BOOL", [1], "booleans, got int"),
        ("BYTES", [1], "strings, got int"),
        ("FP16", ["1"], "numbers, got str"),
    ],
)
def test_rejecting_elements_of_the_wrong_type(datatype: str, data: list[object], what: str) -> None:
    with pytest.raises(InvalidInput, match=what):
        decode_json_tensor("d", datatype, (1,), data, allow_non_finite=False)


def test_allowing_non_finite_values_when_the_policy_says_so() -> None:
    out = decode_json_tensor("d", "FP16", (1,), [1e6], allow_non_finite=True)
    assert np.isinf(out[0])
    with pytest.raises(InvalidInput, match="non-finite"):
        decode_json_tensor("d", "FP16", (1,), [1e6], allow_non_finite=False)


@pytest.mark.parametrize(
    ("datatype", "raw", "message"),
    [
        ("FP32", b"\0" * 11, "11 bytes but shape [3] of FP32 needs 12"),
        ("BOOL", b"\x00\x01\x02", "BOOL bytes must be 0 or 1"),
        ("BYTES", b"\x05\0\0\0ab", "overruns"),
        ("BYTES", b"\x01\0", "truncated"),
        ("BYTES", b"\x01\0\0\0\xff" * 3, "not valid UTF-8"),
        ("BYTES", b"\x01\0\0\0a", "has 1 elements"),
        ("FP64", np.array([1, np.nan, 2]).tobytes(), "non-finite"),
    ],
)
def test_rejecting_bad_binary_tensors(datatype: str, raw: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_binary_tensor("d", datatype, (3,), raw, allow_non_finite=False)
    assert message in info.value.message


def test_parsing_a_request_with_two_inputs_in_the_models_order() -> None:
    body = _body(
        {
            "id": "r1",
            "inputs": [
                {"name": "c", "shape": [2], "datatype": "INT64", "data": [1, 2]},
                {"name": "a", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]},
            ],
        }
    )
    req = parse_infer_request(body, TWO, POLICY)
    assert req.id == "r1"
    assert req.rows == 2
    assert list(req.inputs) == ["a", "c"]
    assert req.outputs is None
    assert req.binary_outputs == frozenset()


def test_rejecting_inputs_whose_batch_sizes_differ() -> None:
    body = _body(
        {
            "inputs": [
                {"name": "a", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]},
                {"name": "c", "shape": [1], "datatype": "INT64", "data": [1]},
            ]
        }
    )
    with pytest.raises(InvalidInput, match=r"inputs\[1\].shape: batch size 1 differs from 2"):
        parse_infer_request(body, TWO, POLICY)


def test_rejecting_a_missing_model_input() -> None:
    body = _body({"inputs": [{"name": "a", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]})
    with pytest.raises(InvalidInput, match=r"missing model input.*'c'"):
        parse_infer_request(body, TWO, POLICY)


def test_parsing_binary_inputs_and_binary_output_requests() -> None:
    values = np.arange(6, dtype=np.float32)
    header = _body(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [2, 3],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 24},
                }
            ],
            "outputs": [{"name": "label", "parameters": {"binary_data": True}}, {"name": "y"}],
        }
    )
    req = parse_infer_request(header + values.tobytes(), SIG, POLICY, header_length=len(header))
    assert req.inputs["x"].tolist() == values.reshape(2, 3).tolist()
    assert req.outputs == ("label", "y")
    assert req.binary_outputs == frozenset(["label"])


def test_returning_every_output_binary_when_binary_data_output_is_set() -> None:
    req = parse_infer_request(_req([1, 2, 3], parameters={"binary_data_output": True}), SIG, POLICY)
    assert req.binary_outputs == frozenset(["y", "label"])


@pytest.mark.parametrize(
    ("header_length", "extra", "message"),
    [
        (10_000, b"", "outside the body"),
        (None, b"\0" * 4, "4 bytes not claimed"),
    ],
)
def test_rejecting_inconsistent_binary_framing(
    header_length: int | None, extra: bytes, message: str
) -> None:
    header = _req([1, 2, 3])
    length = len(header) if header_length is None else header_length
    with pytest.raises(InvalidInput, match=message):
        parse_infer_request(header + extra, SIG, POLICY, header_length=length)


def test_encoding_a_json_response_that_echoes_the_id() -> None:
    y = np.array([[1.5, 2, 3]], dtype=np.float32)
    label = np.array([7], dtype=np.int64)
    body, header_length = encode_infer_response(
        "m", "2", "r9", [(SIG.outputs[0], y), (SIG.outputs[1], label)]
    )
    assert header_length is None
    assert orjson.loads(body) == {
        "model_name": "m",
        "model_version": "2",
        "id": "r9",
        "outputs": [
            {"name": "y", "datatype": "FP32", "shape": [1, 3], "data": [1.5, 2.0, 3.0]},
            {"name": "label", "datatype": "INT64", "shape": [1], "data": [7]},
        ],
    }


@pytest.mark.parametrize(("datatype", "data", "expected"), JSON_CASES)
def test_round_tripping_every_datatype_through_the_response_encoder(
    datatype: str, data: list[object], expected: np.ndarray
) -> None:
    spec = TensorSpec("t", datatype, (-1,))
    arr = expected.astype(DTYPES[datatype])
    body, header_length = encode_infer_response("m", "1", None, [(spec, arr)])
    doc = orjson.loads(body)
    assert "id" not in doc
    back = decode_json_tensor("t", datatype, (3,), doc["outputs"][0]["data"], True)
    assert back.tolist() == arr.tolist()
    body, header_length = encode_infer_response("m", "1", None, [(spec, arr)], frozenset(["t"]))
    assert header_length is not None
    head = orjson.loads(body[:header_length])
    size = head["outputs"][0]["parameters"]["binary_data_size"]
    assert "data" not in head["outputs"][0]
    raw = body[header_length:]
    assert len(raw) == size
    assert decode_binary_tensor("t", datatype, (3,), raw, True).tolist() == arr.tolist()


def test_describing_model_metadata_with_platform_and_signature() -> None:
    assert model_metadata("churn", "3", SIG) == {
        "name": "churn",
        "versions": ["3"],
        "platform": "onnx_onnxv1",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}],
        "outputs": [
            {"name": "y", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "label", "datatype": "INT64", "shape": [-1]},
        ],
    }


def test_calling_a_signature_batchable_only_with_variable_first_dimensions() -> None:
    assert SIG.batchable
    fixed = Signature((TensorSpec("x", "FP32", (1, 3)),), (TensorSpec("y", "FP32", (-1,)),))
    assert not fixed.batchable
