"""Open Inference Protocol v2 (REST): request parsing, validation and response encoding (pure).

Who uses it: the model server's app (:mod:`driftline.serving.server`) calls
:func:`parse_infer_request` on every ``POST .../infer`` body and :func:`encode_infer_response` on
the runtime's outputs; the metadata endpoints use :func:`model_metadata`. Everything here is a pure
function of bytes and plain values, so it is table-tested without a server.

What is checked (every failure is :class:`~driftline.serving.errors.InvalidInput` naming the
field): JSON syntax and types; ``id`` a string; every model input present exactly once and no
unknown ones; ``datatype`` equal to the model's; ``shape`` a list of non-negative integers of the
model's rank with its fixed dimensions; ``data`` of the right element type (no strings for
numbers, no floats for integers, no booleans for numbers), in range for the datatype, with exactly
``prod(shape)`` elements (flat or nested, row-major); non-finite floats (an overflow such as
``1e39`` in FP32) rejected unless the policy allows them; the batch dimension equal across inputs,
non-empty and at most ``max_rows``; requested outputs known to the model.

The binary tensor extension (Triton's, used by ``tritonclient.http`` by default) is supported: a
request whose ``Inference-Header-Content-Length`` header splits the body into a JSON header and
raw tensor bytes (inputs with ``parameters.binary_data_size``), and outputs returned as raw bytes
when asked (``outputs[].parameters.binary_data`` or ``parameters.binary_data_output``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Final

import numpy as np
import numpy.typing as npt
import orjson

from driftline.serving.errors import InvalidInput

Array = npt.NDArray[np.generic]
"""Any numpy array: tensors travel as arrays of their datatype (BYTES as object arrays of str)."""

PLATFORM: Final = "onnx_onnxv1"
HEADER_LENGTH: Final = "inference-header-content-length"
"""The binary tensor extension's header (lower-cased; HTTP header names are case-insensitive)."""

DTYPES: Final[Mapping[str, np.dtype[np.generic]]] = {
    "BOOL": np.dtype(np.bool_),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
"""OIP datatype -> numpy dtype (BYTES: object arrays holding ``str``)."""

ONNX_TYPES: Final[Mapping[str, str]] = {
    "tensor(bool)": "BOOL",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}
"""ONNX Runtime's type strings -> OIP datatype; other ONNX types cannot be served."""

_FLOATS: Final = frozenset(["FP16", "FP32", "FP64"])
_INTS: Final = frozenset(["INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"])
_NARROW_FLOATS: Final = frozenset(["FP16", "FP32"])
_FLOAT_MAX: Final = {
    "FP16": float(np.finfo(np.float16).max),
    "FP32": float(np.finfo(np.float32).max),
}
_NUMBER_TYPES: Final = frozenset([int, float])
_INT_TYPES: Final = frozenset([int])
_BOOL_TYPES: Final = frozenset([bool])
_STR_TYPES: Final = frozenset([str])
_LEN: Final = struct.Struct("<I")
_NO_BYTES: Final = memoryview(b"")
_NO_OUTPUTS: Final[frozenset[str]] = frozenset()
_NUMPY_OPT: Final = orjson.OPT_SERIALIZE_NUMPY


# ------------------------------------------------------------------------------------ signature
@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output of a model: name, OIP datatype, shape (``-1`` = any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def metadata(self) -> dict[str, object]:
        """This tensor as the protocol's metadata object."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Signature:
    """A model's inputs and outputs, in the model's order."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @cached_property
    def _inputs_by_name(self) -> dict[str, TensorSpec]:
        return {t.name: t for t in self.inputs}

    @cached_property
    def _outputs_by_name(self) -> dict[str, TensorSpec]:
        return {t.name: t for t in self.outputs}

    @cached_property
    def batchable(self) -> bool:
        """Whether every input and output has a variable first (batch) dimension.

        Only then can requests be concatenated into one run and the outputs split back by row.
        """
        return all(t.shape[:1] == (-1,) for t in (*self.inputs, *self.outputs))

    def input(self, name: str) -> TensorSpec | None:
        """The input called ``name``, or None."""
        return self._inputs_by_name.get(name)

    def output(self, name: str) -> TensorSpec | None:
        """The output called ``name``, or None."""
        return self._outputs_by_name.get(name)


def model_metadata(name: str, version: str, signature: Signature) -> dict[str, object]:
    """The protocol's model metadata object (``GET /v2/models/{name}``)."""
    return {
        "name": name,
        "versions": [version],
        "platform": PLATFORM,
        "inputs": [t.metadata() for t in signature.inputs],
        "outputs": [t.metadata() for t in signature.outputs],
    }


# ------------------------------------------------------------------------------------ requests
@dataclass(frozen=True, slots=True)
class Policy:
    """How strict request validation is.

    Attributes:
        max_rows: the largest batch (first dimension) one request may carry.
        allow_non_finite: accept NaN/inf in float inputs (from overflow or binary data).
    """

    max_rows: int = 1024
    allow_non_finite: bool = False


@dataclass(slots=True)
class InferRequest:
    """A validated inference request.

    Attributes:
        id: the request's ``id`` (echoed in the response), or None.
        inputs: one array per model input, in the model's input order, shaped as sent.
        rows: the batch size (first dimension; 1 for a model without a batch dimension).
        outputs: requested output names in request order, or None for all outputs.
        binary_outputs: outputs to return as raw bytes (binary tensor extension).
    """

    id: str | None
    inputs: dict[str, Array]
    rows: int
    outputs: tuple[str, ...] | None
    binary_outputs: frozenset[str]


def _where(index: int, field: str) -> str:
    return f"inputs[{index}].{field}"


def _flatten(data: Sequence[object], where: str) -> list[object]:
    """Row-major flattening of nested lists, iterative so hostile nesting cannot recurse deep."""
    out: list[object] = []
    iters: list[Iterator[object]] = [iter(data)]
    while iters:
        for item in iters[-1]:
            if isinstance(item, list):
                if len(iters) >= 64:
                    raise InvalidInput(f"{where}: nested deeper than 64 levels")
                iters.append(iter(item))
                break
            out.append(item)
        else:
            iters.pop()
    return out


def decode_json_tensor(
    where: str, datatype: str, shape: tuple[int, ...], data: object, allow_non_finite: bool
) -> Array:
    """Decode a JSON ``data`` value into an array of ``datatype`` and ``shape``.

    Raises:
        InvalidInput: wrong element types, values out of range, wrong count, non-finite floats.
    """
    if not isinstance(data, list):
        raise InvalidInput(f"{where}: must be a list")
    flat: list[object] = (
        data if not data or not isinstance(data[0], list) else _flatten(data, where)
    )
    count = 1
    for dim in shape:
        count *= dim
    if len(flat) != count:
        raise InvalidInput(
            f"{where}: has {len(flat)} elements but shape {list(shape)} needs {count}"
        )
    kinds = set(map(type, flat))
    if datatype in _FLOATS:
        allowed, what = _NUMBER_TYPES, "numbers"
    elif datatype in _INTS:
        allowed, what = _INT_TYPES, "integers"
    elif datatype == "BOOL":
        allowed, what = _BOOL_TYPES, "booleans"
    else:
        allowed, what = _STR_TYPES, "strings"
    if not kinds <= allowed:
        bad = sorted(k.__name__ for k in kinds - allowed)
        raise InvalidInput(f"{where}: {datatype} data must be {what}, got {', '.join(bad)}")
    dtype = DTYPES[datatype]
    try:
        if datatype in _NARROW_FLOATS:
            # a value beyond the narrow type's range would silently become inf in the cast:
            # compare first (C-level min/max over Python numbers, no extra array)
            limit = _FLOAT_MAX[datatype]
            numbers: list[float] = flat  # type: ignore[assignment]  # checked int|float above
            if count and (max(numbers) > limit or min(numbers) < -limit):
                if not allow_non_finite:
                    raise InvalidInput(
                        f"{where}: non-finite value (beyond the range of {datatype}) is rejected"
                    )
                with np.errstate(over="ignore"):
                    return np.array(flat, dtype=np.float64).astype(dtype).reshape(shape)
            array: Array = np.array(flat, dtype=dtype)
        else:
            # JSON has no NaN or infinity, so FP64 data is always finite here
            array = np.array(flat, dtype=dtype)
    except (OverflowError, ValueError, TypeError) as exc:
        raise InvalidInput(f"{where}: value out of range for {datatype} ({exc})") from None
    return array.reshape(shape)


def decode_binary_tensor(
    where: str, datatype: str, shape: tuple[int, ...], raw: bytes, allow_non_finite: bool
) -> Array:
    """Decode raw little-endian tensor bytes (binary tensor extension) into an array.

    BYTES elements are each a 4-byte little-endian length followed by that many UTF-8 bytes.

    Raises:
        InvalidInput: wrong byte count, undecodable strings, non-finite floats.
    """
    count = 1
    for dim in shape:
        count *= dim
    if datatype == "BYTES":
        values: list[str] = []
        pos = 0
        try:
            while pos < len(raw):
                (n,) = _LEN.unpack_from(raw, pos)
                pos += 4
                if pos + n > len(raw):
                    raise InvalidInput(f"{where}: BYTES element overruns the binary data")
                values.append(raw[pos : pos + n].decode("utf-8"))
                pos += n
        except struct.error:
            raise InvalidInput(f"{where}: truncated BYTES length prefix") from None
        except UnicodeDecodeError:
            raise InvalidInput(f"{where}: BYTES element is not valid UTF-8") from None
        if len(values) != count:
            raise InvalidInput(
                f"{where}: has {len(values)} elements but shape {list(shape)} needs {count}"
            )
        return np.array(values, dtype=object).reshape(shape)
    dtype = DTYPES[datatype].newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise InvalidInput(
            f"{where}: {len(raw)} bytes but shape {list(shape)} of {datatype} needs "
            f"{count * dtype.itemsize}"
        )
    array: Array = np.frombuffer(raw, dtype=dtype).astype(DTYPES[datatype], copy=False)
    if datatype == "BOOL" and count and array.view(np.uint8).max() > 1:
        raise InvalidInput(f"{where}: BOOL bytes must be 0 or 1")
    if datatype in _FLOATS and not allow_non_finite and count and not np.isfinite(array).all():
        raise InvalidInput(f"{where}: non-finite value is rejected")
    return array.reshape(shape)


def _parse_shape(index: int, raw: object, spec: TensorSpec) -> tuple[int, ...]:
    where = f"inputs[{index}].shape"
    if not isinstance(raw, list):
        raise InvalidInput(f"{where}: must be a list of non-negative integers")
    for d in raw:
        if type(d) is not int or d < 0:
            raise InvalidInput(f"{where}: must be a list of non-negative integers")
    shape = tuple(raw)
    if len(shape) != len(spec.shape):
        raise InvalidInput(
            f"{where}: rank {len(shape)} does not match the model's {list(spec.shape)} "
            f"for input {spec.name!r}"
        )
    for got, want in zip(shape, spec.shape, strict=True):
        if want != -1 and got != want:
            raise InvalidInput(
                f"{where}: {list(shape)} does not match the model's {list(spec.shape)} "
                f"for input {spec.name!r}"
            )
    return shape


def _parse_parameters(where: str, raw: object) -> Mapping[str, object]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: must be an object")
    for key, value in raw.items():
        if not isinstance(value, str | int | float | bool):
            raise InvalidInput(f"{where}.{key}: must be a string, number or boolean")
    return raw


def parse_infer_request(
    body: bytes,
    signature: Signature,
    policy: Policy,
    *,
    header_length: int | None = None,
) -> InferRequest:
    """Parse and validate an inference request body against the model's signature.

    Args:
        body: the whole HTTP request body.
        signature: the model's inputs and outputs.
        policy: limits and the non-finite policy.
        header_length: the ``Inference-Header-Content-Length`` value when the client uses the
            binary tensor extension: the JSON part is ``body[:header_length]``, the tensor bytes
            follow in input order.

    Returns:
        The validated request, inputs decoded into numpy arrays.

    Raises:
        InvalidInput: naming the field and the problem, for anything that does not conform.
    """
    if header_length is not None and not 0 <= header_length <= len(body):
        raise InvalidInput(
            f"Inference-Header-Content-Length {header_length} is outside the body "
            f"({len(body)} bytes)"
        )
    json_part = body if header_length is None else body[:header_length]
    binary = memoryview(body)[header_length:] if header_length is not None else _NO_BYTES
    try:
        doc = orjson.loads(json_part)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("request body must be a JSON object")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("id: must be a string")
    parameters = _parse_parameters("parameters", doc.get("parameters"))
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInput("inputs: must be a non-empty list")

    inputs: dict[str, Array] = {}
    offset = 0
    rows: int | None = None
    batch_from = ""
    for i, raw in enumerate(raw_inputs):
        if not isinstance(raw, dict):
            raise InvalidInput(f"inputs[{i}]: must be an object")
        name = raw.get("name")
        if not isinstance(name, str):
            raise InvalidInput(f"{_where(i, 'name')}: must be a string")
        spec = signature.input(name)
        if spec is None:
            known = ", ".join(t.name for t in signature.inputs)
            raise InvalidInput(
                f"{_where(i, 'name')}: the model has no input {name!r} (inputs: {known})"
            )
        if name in inputs:
            raise InvalidInput(f"{_where(i, 'name')}: input {name!r} is given twice")
        datatype = raw.get("datatype")
        if datatype != spec.datatype:
            raise InvalidInput(
                f"{_where(i, 'datatype')}: {datatype!r} does not match the model's "
                f"{spec.datatype!r} for input {name!r}"
            )
        shape = _parse_shape(i, raw.get("shape"), spec)
        raw_params = raw.get("parameters")
        size = (
            _parse_parameters(_where(i, "parameters"), raw_params).get("binary_data_size")
            if raw_params
            else None
        )
        if size is not None:
            if header_length is None:
                raise InvalidInput(
                    f"{_where(i, 'parameters')}.binary_data_size: given without the "
                    "Inference-Header-Content-Length header"
                )
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise InvalidInput(
                    f"{_where(i, 'parameters')}.binary_data_size: {size!r} is not a byte count "
                    f"within the {len(binary)} bytes of binary data"
                )
            array = decode_binary_tensor(
                _where(i, "data"),
                spec.datatype,
                shape,
                bytes(binary[offset : offset + size]),
                policy.allow_non_finite,
            )
            offset += size
        else:
            if "data" not in raw:
                raise InvalidInput(f"{_where(i, 'data')}: is required")
            array = decode_json_tensor(
                f"inputs[{i}].data", spec.datatype, shape, raw["data"], policy.allow_non_finite
            )
        if spec.shape[:1] == (-1,):
            if rows is None:
                rows, batch_from = shape[0], name
            elif shape[0] != rows:
                raise InvalidInput(
                    f"{_where(i, 'shape')}: batch size {shape[0]} differs from {rows} of "
                    f"input {batch_from!r}"
                )
        inputs[name] = array
    if offset != len(binary):
        raise InvalidInput(
            f"binary data has {len(binary) - offset} bytes not claimed by any input's "
            "binary_data_size"
        )
    missing = [t.name for t in signature.inputs if t.name not in inputs]
    if missing:
        raise InvalidInput(f"inputs: missing model input(s) {', '.join(map(repr, missing))}")
    if rows is None:
        rows = 1
    elif rows == 0:
        raise InvalidInput(f"inputs: empty batch (first dimension 0 in input {batch_from!r})")
    if rows > policy.max_rows:
        raise InvalidInput(f"inputs: batch of {rows} rows exceeds the maximum of {policy.max_rows}")
    # order inputs as the model declares them, so batches concatenate deterministically
    ordered = (
        inputs if len(signature.inputs) == 1 else {t.name: inputs[t.name] for t in signature.inputs}
    )

    binary_default = parameters.get("binary_data_output") is True
    if doc.get("outputs") is None and not binary_default:
        return InferRequest(request_id, ordered, rows, None, _NO_OUTPUTS)
    requested: tuple[str, ...] | None = None
    binary_outputs: set[str] = set()
    raw_outputs = doc.get("outputs")
    if raw_outputs is not None:
        if not isinstance(raw_outputs, list):
            raise InvalidInput("outputs: must be a list")
        names: list[str] = []
        for j, out in enumerate(raw_outputs):
            if not isinstance(out, dict) or not isinstance(out.get("name"), str):
                raise InvalidInput(f"outputs[{j}]: must be an object with a string 'name'")
            out_name: str = out["name"]
            if signature.output(out_name) is None:
                known = ", ".join(t.name for t in signature.outputs)
                raise InvalidInput(
                    f"outputs[{j}].name: the model has no output {out_name!r} (outputs: {known})"
                )
            if out_name in names:
                raise InvalidInput(f"outputs[{j}].name: output {out_name!r} is requested twice")
            out_params = _parse_parameters(f"outputs[{j}].parameters", out.get("parameters"))
            if out_params.get("binary_data", binary_default) is True:
                binary_outputs.add(out_name)
            names.append(out_name)
        requested = tuple(names) if names else None
    if requested is None and binary_default:
        binary_outputs = {t.name for t in signature.outputs}
    return InferRequest(request_id, ordered, rows, requested, frozenset(binary_outputs))


# ------------------------------------------------------------------------------------ responses
def _binary_bytes(datatype: str, array: Array) -> bytes:
    if datatype == "BYTES":
        parts: list[bytes] = []
        for value in array.ravel().tolist():
            raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts.append(_LEN.pack(len(raw)))
            parts.append(raw)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def _json_data(datatype: str, array: Array) -> object:
    if datatype == "BYTES":
        return [
            v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            for v in array.ravel().tolist()
        ]
    return np.ascontiguousarray(array).ravel()


def encode_infer_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Sequence[tuple[TensorSpec, Array]],
    binary_outputs: frozenset[str] = frozenset(),
) -> tuple[bytes, int | None]:
    """Encode an inference response.

    Args:
        model_name: the served model's name.
        model_version: the served model's version.
        request_id: the request's ``id`` (echoed when not None).
        outputs: ``(spec, array)`` per returned output, in response order.
        binary_outputs: names to send as raw bytes after the JSON (binary tensor extension).

    Returns:
        ``(body, header_length)``: ``header_length`` is the JSON part's length when any output
        is binary (send it as ``Inference-Header-Content-Length``), else None.
    """
    items: list[dict[str, object]] = []
    blobs: list[bytes] = []
    for spec, array in outputs:
        item: dict[str, object] = {
            "name": spec.name,
            "datatype": spec.datatype,
            "shape": list(array.shape),
        }
        if spec.name in binary_outputs:
            blob = _binary_bytes(spec.datatype, array)
            item["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            item["data"] = _json_data(spec.datatype, array)
        items.append(item)
    doc: dict[str, object] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        doc["id"] = request_id
    doc["outputs"] = items
    head = orjson.dumps(doc, option=_NUMPY_OPT)
    if not blobs:
        return head, None
    return b"".join([head, *blobs]), len(head)
