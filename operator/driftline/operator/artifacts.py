"""Model artifacts as the operator sees them: fetch and verify the bytes, read the graph.

Owns: the ``ArtifactSource`` seam (how the operator gets a verified local copy of an artifact or a
reference dataset) and ``inspect_onnx`` (digest, size limit, signature and opset through ONNX
Runtime and onnx). Called by the Model handler, in a worker thread (downloading, reading and
hashing are blocking).

``FetchingSource`` is the one implementation: it calls ``driftline.serving.fetch.fetch``, the code
the serving pods' init container runs (streamed into a temporary file, size-limited, sha256
verified, renamed into place only when the digest matches), once per attempt: retries are the
operator's (kopf's backoff), not a sleep inside a handler. ``file://`` URIs may be relative to a
base folder; ``http(s)://`` and ``s3://`` (with the ``s3`` extra) go through the same code.

Failures are mapped to the operator's errors with a reason that says which; ``what`` is
``source`` (the model) or ``reference`` (the dataset, whose reasons start with ``Reference``):

- permanent (``ArtifactInvalid``, the bytes will not change under the same digest):
  ``DigestMismatch``, ``ArtifactTooLarge``, ``FetchFailed`` (404 and other 4xx, unsupported
  scheme), ``UnreadableModel``, ``FeatureMismatch``;
- temporary (``ArtifactUnavailable``, retried with backoff): connection errors, 408/429/5xx,
  ``FetchRetrying``; a ``file://`` artifact that does not exist (yet), ``ArtifactMissing``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import unquote, urlparse

from driftline.operator.api.model import ModelSignature, ModelSpec, TensorSpec
from driftline.operator.errors import ArtifactInvalid, ArtifactUnavailable
from driftline.operator.status import ArtifactInfo

CHUNK = 1 << 20
"""Bytes hashed per read (1 MiB): flat memory for any model size."""

ORT_TO_OIP: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}
"""ONNX Runtime element types -> Open Inference Protocol datatypes."""

Which = Literal["source", "reference"]
"""Which artifact of a Model: its ONNX ``source`` or its ``reference`` dataset."""


class ArtifactSource(Protocol):
    """How the operator gets a verified local copy of an artifact."""

    def fetch(
        self, uri: str, sha256: str, dest: Path, *, name: str, limit: int, what: Which
    ) -> Path:
        """Fetch ``uri`` into ``dest/name``, verified against ``sha256``, at most ``limit`` bytes.

        Raises:
            ArtifactInvalid: permanently unusable (digest, size, 4xx, unsupported scheme).
            ArtifactUnavailable: cannot be fetched now; worth retrying.
        """
        ...


def _reason(what: Which, reason: str) -> str:
    return reason if what == "source" else f"Reference{reason.removeprefix('Artifact')}"


@dataclass(frozen=True)
class FetchingSource:
    """Artifacts fetched by the data plane's fetcher; relative ``file://`` paths use ``base``.

    Attributes:
        base: folder relative ``file://`` URIs resolve against.
        timeout_s: network timeout of one request.
    """

    base: Path = Path(".")
    timeout_s: float = 60.0

    def _location(self, uri: str, what: Which) -> str:
        """What to hand the fetcher: a ``file://`` URI becomes a checked absolute path."""
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            return uri
        path = Path(unquote(parsed.netloc + parsed.path))
        path = path if path.is_absolute() else self.base / path
        if not path.is_file():
            raise ArtifactUnavailable(
                f"spec.{what}.uri: {path} does not exist (yet)",
                delay=30,
                reason=_reason(what, "ArtifactMissing"),
            )
        return str(path)

    def fetch(
        self, uri: str, sha256: str, dest: Path, *, name: str, limit: int, what: Which
    ) -> Path:
        """See ``ArtifactSource.fetch``: one attempt, errors mapped to the operator's."""
        from driftline.serving.fetch import (
            DigestMismatchError,
            FetchError,
            RetryPolicy,
            TooLargeError,
            TransientFetchError,
            fetch,
        )

        location = self._location(uri, what)
        try:
            return fetch(
                location,
                sha256,
                dest,
                name=name,
                retry=RetryPolicy(attempts=1),
                timeout_s=self.timeout_s,
                max_bytes=limit,
            )
        except DigestMismatchError as e:
            raise ArtifactInvalid(
                f"spec.{what}.sha256: {e}", reason=_reason(what, "DigestMismatch")
            ) from None
        except TooLargeError as e:
            raise ArtifactInvalid(
                f"spec.{what}: {e}", reason=_reason(what, "ArtifactTooLarge")
            ) from None
        except TransientFetchError as e:
            raise ArtifactUnavailable(
                f"spec.{what}.uri: {e}", reason=_reason(what, "FetchRetrying")
            ) from None
        except FetchError as e:
            raise ArtifactInvalid(
                f"spec.{what}.uri: {e}", reason=_reason(what, "FetchFailed")
            ) from None


def sha256_of(path: Path, limit: int) -> tuple[str, int]:
    """The file's hex SHA-256 and size, refusing files larger than ``limit`` bytes."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise ArtifactInvalid(
                    f"spec.source: the artifact is larger than the limit of {limit} bytes",
                    reason="ArtifactTooLarge",
                )
            digest.update(chunk)
    return digest.hexdigest(), size


def _tensor(name: str, type_: str, shape: object) -> TensorSpec:
    dims = [
        d if isinstance(d, int) and d >= 0 else -1
        for d in (shape if isinstance(shape, list) else [])
    ]
    datatype = ORT_TO_OIP.get(type_)
    if datatype is None:
        raise ArtifactInvalid(
            f"tensor {name!r} has type {type_}, which the Open Inference Protocol cannot carry",
            reason="UnreadableModel",
        )
    return TensorSpec.model_validate({"name": name, "datatype": datatype, "shape": dims})


def inspect_onnx(path: Path, expected_sha256: str, limit: int) -> ArtifactInfo:
    """Verify and read an ONNX artifact: digest first, then the graph.

    Args:
        path: the local copy.
        expected_sha256: ``spec.source.sha256``.
        limit: largest accepted size in bytes.

    Raises:
        ArtifactInvalid: digest mismatch, too large, or not a loadable ONNX graph.
    """
    actual, size = sha256_of(path, limit)
    if actual != expected_sha256:
        raise ArtifactInvalid(
            f"spec.source.sha256: the artifact's digest is {actual}, the spec says "
            f"{expected_sha256}",
            reason="DigestMismatch",
        )
    opset, signature = read_graph(path)
    return ArtifactInfo(actual, size, opset, signature)


def read_graph(path: Path) -> tuple[int, ModelSignature]:
    """The default-domain opset and the signature of an ONNX file (digest already verified).

    Raises:
        ArtifactInvalid: ``UnreadableModel`` when ONNX or ONNX Runtime cannot load it.
    """
    import onnx
    import onnxruntime

    try:
        proto = onnx.load(str(path), load_external_data=False)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # the mapper for everything a malformed graph can raise
        raise ArtifactInvalid(
            f"spec.source: not a loadable ONNX model: {type(e).__name__}: {e}"[:500],
            reason="UnreadableModel",
        ) from e
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    signature = ModelSignature(
        inputs=[_tensor(i.name, i.type, i.shape) for i in session.get_inputs()],
        outputs=[_tensor(o.name, o.type, o.shape) for o in session.get_outputs()],
    )
    return int(opset), signature


def check_features(spec: ModelSpec, signature: ModelSignature) -> None:
    """The declared features must fit the graph: inputs named, and at most the input's columns.

    Raises:
        ArtifactInvalid: with reason ``FeatureMismatch`` naming the feature and the problem.
    """
    inputs = {t.name: t for t in signature.inputs}
    if spec.prediction_output is not None and spec.prediction_output not in {
        t.name for t in signature.outputs
    }:
        raise ArtifactInvalid(
            f"spec.predictionOutput: {spec.prediction_output!r} is not an output of the graph "
            f"(outputs: {', '.join(t.name for t in signature.outputs)})",
            reason="FeatureMismatch",
        )
    per_input: dict[str, int] = {}
    for i, feature in enumerate(spec.features):
        name = feature.input
        if name is None:
            if len(inputs) != 1:
                raise ArtifactInvalid(
                    f"spec.features[{i}].input: required, the graph has {len(inputs)} inputs",
                    reason="FeatureMismatch",
                )
            name = next(iter(inputs))
        if name not in inputs:
            raise ArtifactInvalid(
                f"spec.features[{i}].input: {name!r} is not an input of the graph "
                f"(inputs: {', '.join(inputs)})",
                reason="FeatureMismatch",
            )
        per_input[name] = per_input.get(name, 0) + 1
    for name, count in per_input.items():
        shape = inputs[name].shape
        columns = shape[-1] if len(shape) == 2 else (1 if len(shape) <= 1 else -1)
        if columns > 0 and count > columns:
            raise ArtifactInvalid(
                f"spec.features: {count} features map to input {name!r}, which has "
                f"{columns} columns",
                reason="FeatureMismatch",
            )
