"""Prediction records: the one format in which a model server hands its predictions to the monitor.

Who uses it: ``driftline serve`` encodes a :class:`RecordBatch` per flush and POSTs it to the
monitor sidecar on localhost (``POST {monitor_url}{RECORDS_PATH}``, ``Content-Type:
{MEDIA_TYPE}``); ``driftline monitor`` decodes it. Nothing else defines this format.

Why binary: the monitor must ingest hundreds of thousands of rows per second on one core; JSON
per row costs more than the drift statistics themselves. A frame is a small JSON header followed by
the raw little-endian bytes of each array, so decoding is ``numpy.frombuffer`` per array: no
per-row Python work.

Frame layout (all integers little-endian)::

    b"DLR1"                      4 bytes, magic and format version
    header_length                uint32
    header                       UTF-8 JSON, header_length bytes (see below)
    padding                      zero bytes up to the next multiple of 8
    array 0 bytes, padding, array 1 bytes, padding, ...   in header["arrays"] order

Header::

    {"model": str, "version": str, "variant": str, "rows": int,
     "request_ids": [str] * rows,          # one per row; a 3-row request repeats its id 3 times
     "timestamps": [float] * rows,         # seconds since the epoch, when the answer was sent
     "latencies_ms": [float] * rows,       # server-side latency of the request the row came in
     "arrays": [{"kind": "input"|"output", "name": str, "dtype": "<f4", "shape": [rows, ...]}],
     "strings": {"input:NAME": [...]} }    # BYTES tensors, as JSON lists (never raw bytes)

Every array's first dimension is ``rows``. Decoding checks every length, count and dtype and raises
:class:`RecordFormatError` naming the problem; a bad frame is counted and skipped by the monitor,
never fatal.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
import orjson

MAGIC: Final = b"DLR1"
MEDIA_TYPE: Final = "application/vnd.driftline.records.v1"
RECORDS_PATH: Final = "/v1/records"

MAX_HEADER_BYTES: Final = 64 * 1024 * 1024
"""Upper bound on a header: a frame claiming more is corrupt (the server flushes far smaller)."""

_ALLOWED_DTYPES: Final = frozenset(
    ["|b1", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8", "<f2", "<f4", "<f8"]
)
_LEN: Final = struct.Struct("<I")
_ALIGN: Final = 8


class RecordFormatError(ValueError):
    """A frame that does not follow the format; the message names what is wrong."""


@dataclass(frozen=True)
class RecordBatch:
    """Predictions of one model variant, row-aligned.

    Attributes:
        model: the model name the server serves.
        version: the model version (the Model's ``spec.version``).
        variant: ``stable``, ``canary`` or ``shadow``; the monitor keeps windows per variant.
        request_ids: one id per row; rows of one request share its id (joins delayed labels).
        timestamps: seconds since the epoch, float64, one per row.
        latencies_ms: server-side latency of the row's request in milliseconds, float64.
        inputs: input tensors by name, each with ``rows`` as first dimension (numeric dtypes, or
            object arrays of ``str`` for BYTES tensors).
        outputs: output tensors by name, same rule.
    """

    model: str
    version: str
    variant: str
    request_ids: tuple[str, ...]
    timestamps: npt.NDArray[np.float64]
    latencies_ms: npt.NDArray[np.float64]
    inputs: Mapping[str, npt.NDArray[np.generic]] = field(default_factory=dict)
    outputs: Mapping[str, npt.NDArray[np.generic]] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Number of rows in the batch."""
        return len(self.request_ids)


def _pad(n: int) -> int:
    return (-n) % _ALIGN


def encode(batch: RecordBatch) -> bytes:
    """Encode a batch into one frame.

    Raises:
        RecordFormatError: when an array's first dimension is not ``batch.rows`` or its dtype is
            not one the format carries.
    """
    rows = batch.rows
    if batch.timestamps.shape != (rows,) or batch.latencies_ms.shape != (rows,):
        raise RecordFormatError(f"timestamps and latencies_ms must have shape ({rows},)")
    arrays: list[dict[str, object]] = []
    strings: dict[str, list[str]] = {}
    buffers: list[bytes] = []
    for kind, tensors in (("input", batch.inputs), ("output", batch.outputs)):
        for name, array in tensors.items():
            if array.ndim == 0 or array.shape[0] != rows:
                raise RecordFormatError(
                    f"{kind} {name!r}: first dimension {array.shape[:1]} is not rows={rows}"
                )
            if array.dtype.kind in "OUS":
                strings[f"{kind}:{name}"] = [str(v) for v in array.reshape(rows, -1)[:, 0]]
                continue
            le = array.astype(array.dtype.newbyteorder("<"), copy=False)
            dtype = le.dtype.str
            if dtype not in _ALLOWED_DTYPES:
                raise RecordFormatError(f"{kind} {name!r}: dtype {dtype} is not supported")
            data = np.ascontiguousarray(le).tobytes()
            arrays.append({"kind": kind, "name": name, "dtype": dtype, "shape": list(le.shape)})
            buffers.append(data + b"\0" * _pad(len(data)))
    header = orjson.dumps(
        {
            "model": batch.model,
            "version": batch.version,
            "variant": batch.variant,
            "rows": rows,
            "request_ids": list(batch.request_ids),
            "timestamps": batch.timestamps.tolist(),
            "latencies_ms": batch.latencies_ms.tolist(),
            "arrays": arrays,
            "strings": strings,
        }
    )
    prefix = MAGIC + _LEN.pack(len(header)) + header
    return b"".join([prefix, b"\0" * _pad(len(prefix)), *buffers])


def _str_field(header: Mapping[str, object], key: str) -> str:
    value = header.get(key)
    if not isinstance(value, str):
        raise RecordFormatError(f"header field {key!r} must be a string")
    return value


def _float_list(header: Mapping[str, object], key: str, rows: int) -> npt.NDArray[np.float64]:
    value = header.get(key)
    if not isinstance(value, list) or len(value) != rows:
        raise RecordFormatError(f"header field {key!r} must be a list of {rows} numbers")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RecordFormatError(f"header field {key!r} must hold numbers only") from exc


def decode(frame: bytes) -> RecordBatch:
    """Decode one frame, checking every length, count and dtype.

    Raises:
        RecordFormatError: on any deviation from the format, naming the problem.
    """
    view = memoryview(frame)
    if len(view) < 8 or bytes(view[:4]) != MAGIC:
        raise RecordFormatError("not a driftline record frame (bad magic)")
    (header_len,) = _LEN.unpack(view[4:8])
    if header_len > MAX_HEADER_BYTES or 8 + header_len > len(view):
        raise RecordFormatError(f"header length {header_len} exceeds the frame")
    try:
        header = orjson.loads(view[8 : 8 + header_len])
    except orjson.JSONDecodeError as exc:
        raise RecordFormatError(f"header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise RecordFormatError("header must be a JSON object")
    rows = header.get("rows")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
        raise RecordFormatError("header field 'rows' must be a non-negative integer")
    ids = header.get("request_ids")
    if not isinstance(ids, list) or len(ids) != rows or not all(isinstance(i, str) for i in ids):
        raise RecordFormatError(f"header field 'request_ids' must be a list of {rows} strings")
    inputs: dict[str, npt.NDArray[np.generic]] = {}
    outputs: dict[str, npt.NDArray[np.generic]] = {}
    offset = 8 + header_len
    offset += _pad(offset)
    specs = header.get("arrays", [])
    if not isinstance(specs, list):
        raise RecordFormatError("header field 'arrays' must be a list")
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise RecordFormatError(f"arrays[{i}] must be an object")
        kind, name, dtype, shape = (spec.get(k) for k in ("kind", "name", "dtype", "shape"))
        if kind not in ("input", "output") or not isinstance(name, str):
            raise RecordFormatError(f"arrays[{i}]: kind must be input|output and name a string")
        if dtype not in _ALLOWED_DTYPES:
            raise RecordFormatError(f"arrays[{i}] ({name}): dtype {dtype!r} is not supported")
        if (
            not isinstance(shape, list)
            or not shape
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
            or shape[0] != rows
        ):
            raise RecordFormatError(
                f"arrays[{i}] ({name}): shape must be a list of sizes starting with rows={rows}"
            )
        np_dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * np_dtype.itemsize
        if offset + nbytes > len(view):
            raise RecordFormatError(f"arrays[{i}] ({name}): frame is truncated")
        array = np.frombuffer(
            view, dtype=np_dtype, count=nbytes // np_dtype.itemsize, offset=offset
        )
        (inputs if kind == "input" else outputs)[name] = array.reshape(shape)
        offset += nbytes + _pad(nbytes)
    strings = header.get("strings", {})
    if not isinstance(strings, dict):
        raise RecordFormatError("header field 'strings' must be an object")
    for key, values in strings.items():
        kind, _, name = key.partition(":")
        if kind not in ("input", "output") or not name:
            raise RecordFormatError(f"strings key {key!r} must be 'input:NAME' or 'output:NAME'")
        if not isinstance(values, list) or len(values) != rows:
            raise RecordFormatError(f"strings[{key!r}] must be a list of {rows} values")
        (inputs if kind == "input" else outputs)[name] = np.asarray(
            [str(v) for v in values], dtype=object
        )
    if offset != len(view):
        raise RecordFormatError(f"{len(view) - offset} unexpected trailing bytes")
    return RecordBatch(
        model=_str_field(header, "model"),
        version=_str_field(header, "version"),
        variant=_str_field(header, "variant"),
        request_ids=tuple(ids),
        timestamps=_float_list(header, "timestamps", rows),
        latencies_ms=_float_list(header, "latencies_ms", rows),
        inputs=inputs,
        outputs=outputs,
    )
