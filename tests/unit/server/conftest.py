"""Fixtures for the model server's tests: small ONNX models for every protocol datatype.

``identity_model(datatype)`` builds an ONNX graph ``y = Identity(x)`` with ``x`` of shape
``[batch, 3]`` in that datatype (BYTES: ONNX strings), so codecs and the runtime can be checked
per datatype with a real ONNX Runtime session. The integration tests load this file too.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

ONNX_ELEM = {
    "BOOL": TensorProto.BOOL,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}


def identity_model(datatype: str, width: int = 3) -> bytes:
    """An ONNX model ``y = Identity(x)``, ``x: [batch, width]`` of ``datatype``."""
    elem = ONNX_ELEM[datatype]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        f"identity_{datatype.lower()}",
        [helper.make_tensor_value_info("x", elem, ["batch", width])],
        [helper.make_tensor_value_info("y", elem, ["batch", width])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def two_input_model() -> bytes:
    """``sum = a + b`` (FP32 ``[batch, 2]``) and ``neg = -c`` (INT64 ``[batch]``): two inputs
    that must agree on the batch, two outputs."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"]), helper.make_node("Neg", ["c"], ["neg"])],
        "two_inputs",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 2]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 2]),
            helper.make_tensor_value_info("c", TensorProto.INT64, ["batch"]),
        ],
        [
            helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["batch", 2]),
            helper.make_tensor_value_info("neg", TensorProto.INT64, ["batch"]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``identity_<datatype>.onnx`` for every datatype and ``two_inputs.onnx``."""
    out = tmp_path_factory.mktemp("onnx_models")
    for datatype in ONNX_ELEM:
        (out / f"identity_{datatype.lower()}.onnx").write_bytes(identity_model(datatype))
    (out / "two_inputs.onnx").write_bytes(two_input_model())
    (out / "broken.onnx").write_bytes(b"this is not an onnx model")
    return out
