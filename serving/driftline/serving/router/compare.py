"""Shadow vs primary: how much do the two variants' answers to the same request agree?

Who uses it: the proxy's shadow task calls :func:`compare_bodies` with the primary's and the
shadow's inference response bodies (Open Inference Protocol JSON) and adds the resulting
:class:`Comparison` to the stats window and the metrics of the pair (primary, shadow). This is what
a shadow phase's analysis reads.

Which outputs count as what: an output whose datatype is an integer, ``BOOL`` or ``BYTES`` is a
*class* output, compared element by element for equality (agreement rate); an ``FP16/32/64``
output is a *score*, compared by absolute difference (mean absolute difference). Outputs are
matched by name; one present in only one answer, or with a different element count, makes the
pair *uncomparable* (counted, never guessed at).

Both encodings of the protocol are read: JSON ``data`` and the binary tensor extension (the
``Inference-Header-Content-Length`` response header gives the JSON part's length; each output's
``parameters.binary_data_size`` bytes follow in order). ``tritonclient`` asks for binary outputs
whenever a request names no outputs, so a shadow phase fed by it compares binary answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import orjson

from driftline.serving.errors import InvalidInput
from driftline.serving.protocol import DTYPES, decode_binary_tensor

_CLASS_TYPES: Final = frozenset(
    ["BOOL", "BYTES", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"]
)
_SCORE_TYPES: Final = frozenset(["FP16", "FP32", "FP64"])


@dataclass(frozen=True, slots=True)
class Comparison:
    """The element counts of one comparison (sums over outputs).

    Attributes:
        comparable: False when the answers could not be matched (then every count is 0).
        class_n: class elements compared.
        class_agree: class elements equal in both answers.
        score_n: score elements compared.
        score_abs_sum: sum of ``|primary - shadow|`` over the score elements.
    """

    comparable: bool
    class_n: int = 0
    class_agree: int = 0
    score_n: int = 0
    score_abs_sum: float = 0.0


UNCOMPARABLE: Final = Comparison(False)


_JSON_LENGTH: Final = b"\ninference-header-content-length:"


def json_length(raw_headers: bytes) -> int | None:
    """The ``Inference-Header-Content-Length`` of a response's raw header lines (pure).

    Returns:
        The length; None when the header is absent (a plain JSON body); -1 when it is malformed
        (the answer is then uncomparable).
    """
    lower = b"\n" + raw_headers.lower()
    start = lower.find(_JSON_LENGTH)
    if start < 0:
        return None
    start += len(_JSON_LENGTH)
    end = lower.find(b"\r\n", start)
    value = lower[start : end if end >= 0 else len(lower)].strip()
    return int(value) if value.isdigit() else -1


def _binary(item: dict[str, object], datatype: str, raw: bytes) -> object | None:
    """One binary output's elements (an array), or None when it does not decode."""
    shape = item.get("shape")
    if datatype not in DTYPES or not isinstance(shape, list):
        return None
    if not all(type(d) is int and d >= 0 for d in shape):
        return None
    try:
        return decode_binary_tensor("output", datatype, tuple(shape), raw, True)
    except (InvalidInput, ValueError, TypeError):
        return None


def _outputs(body: bytes, length: int | None = None) -> dict[str, tuple[str, object]] | None:
    """``{name: (datatype, data)}`` of an OIP inference response, or None when malformed.

    ``length``: the JSON part's length (binary tensor extension), None for a plain JSON body.
    """
    if length is not None and not 0 <= length <= len(body):
        return None
    try:
        doc = orjson.loads(body if length is None else body[:length])
    except orjson.JSONDecodeError:
        return None
    outputs = doc.get("outputs") if isinstance(doc, dict) else None
    if not isinstance(outputs, list):
        return None
    found: dict[str, tuple[str, object]] = {}
    offset = 0 if length is None else length
    for item in outputs:
        if not isinstance(item, dict):
            return None
        name, datatype, data = item.get("name"), item.get("datatype"), item.get("data")
        if not isinstance(name, str) or not isinstance(datatype, str):
            return None
        if isinstance(data, list):
            found[name] = (datatype, data)
            continue
        params = item.get("parameters")
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if length is None or type(size) is not int or size < 0 or offset + size > len(body):
            return None
        decoded = _binary(item, datatype, body[offset : offset + size])
        if decoded is None:
            return None
        found[name] = (datatype, decoded)
        offset += size
    return found


def compare_bodies(
    primary: bytes,
    shadow: bytes,
    primary_length: int | None = None,
    shadow_length: int | None = None,
) -> Comparison:
    """Compare two OIP inference response bodies output by output (pure).

    Args:
        primary: the primary's response body.
        shadow: the shadow's response body.
        primary_length: the primary's ``Inference-Header-Content-Length`` (``json_length``),
            None for a plain JSON body.
        shadow_length: the same for the shadow's body.

    Returns:
        The counts, or :data:`UNCOMPARABLE` when either body is malformed, the output names
        differ, or an output differs in datatype class or element count.
    """
    left, right = _outputs(primary, primary_length), _outputs(shadow, shadow_length)
    if left is None or right is None or not left or left.keys() != right.keys():
        return UNCOMPARABLE
    class_n = class_agree = score_n = 0
    score_abs_sum = 0.0
    try:
        for name, (datatype, data) in left.items():
            other_type, other_data = right[name]
            if datatype in _SCORE_TYPES and other_type in _SCORE_TYPES:
                a = np.asarray(data, dtype=np.float64).ravel()
                b = np.asarray(other_data, dtype=np.float64).ravel()
                if a.shape != b.shape:
                    return UNCOMPARABLE
                score_n += a.size
                score_abs_sum += float(np.abs(a - b).sum())
            elif datatype in _CLASS_TYPES and other_type in _CLASS_TYPES:
                a = np.asarray(data).ravel()
                b = np.asarray(other_data).ravel()
                if a.shape != b.shape:
                    return UNCOMPARABLE
                class_n += a.size
                class_agree += int(np.count_nonzero(a == b))
            else:
                return UNCOMPARABLE
    except (ValueError, TypeError):  # ragged or non-numeric data: not an answer we can compare
        return UNCOMPARABLE
    if not np.isfinite(score_abs_sum):
        return UNCOMPARABLE
    return Comparison(True, class_n, class_agree, score_n, score_abs_sum)


class CompareBudget:
    """At most ``per_s`` comparisons per one-second epoch (pure: time is passed in).

    Why a budget: parsing both JSON answers costs more than forwarding the request; at 100 %
    mirroring under load that would double the router's CPU per request. Agreement is a rate, so
    a bounded sample per second estimates it (the number of compared pairs is reported with it).
    """

    __slots__ = ("_epoch", "_left", "per_s")

    def __init__(self, per_s: int) -> None:
        """Allow ``per_s`` (>= 1) comparisons per second."""
        if per_s < 1:
            raise ValueError("per_s must be at least 1")
        self.per_s = per_s
        self._epoch = -1
        self._left = 0

    def take(self, now: float) -> bool:
        """True (and one less left this second) when a comparison may run at ``now``."""
        epoch = int(now)
        if epoch != self._epoch:
            self._epoch = epoch
            self._left = self.per_s
        if self._left <= 0:
            return False
        self._left -= 1
        return True
