"""Model artifacts as the operator sees them: locate the bytes, verify the digest, read the graph.

Owns: the ``ArtifactSource`` seam (where the operator gets a local copy of a Model's artifact) and
``inspect_onnx`` (digest, size limit, signature and opset through ONNX Runtime and onnx). Called by
the Model handler, in a worker thread (reading and hashing are blocking).

Failures are ``ArtifactInvalid`` (permanent: the bytes will not change under the same digest) with
a reason that says which: ``DigestMismatch``, ``ArtifactTooLarge``, ``UnreadableModel``,
``FeatureMismatch``. A source that cannot be reached is ``DependencyNotReady`` (temporary).

Sources: ``LocalSource`` reads ``file://`` URIs (absolute, or relative to a base folder). Remote
schemes (``https``, ``s3``, ``gs``) need the data plane's fetcher and are reported as not yet
reachable by the operator, without a retry storm (a long temporary delay).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from driftline.operator.api.model import ModelSignature, ModelSpec, TensorSpec
from driftline.operator.errors import ArtifactInvalid, DependencyNotReady
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


class ArtifactSource(Protocol):
    """Where the operator gets a local, readable copy of an artifact."""

    def local_path(self, uri: str) -> Path:
        """A local path holding the artifact's bytes (digest not yet verified).

        Raises:
            DependencyNotReady: the artifact cannot be reached now.
        """
        ...


@dataclass(frozen=True)
class LocalSource:
    """``file://`` artifacts; relative paths resolve against ``base``."""

    base: Path = Path(".")

    def local_path(self, uri: str) -> Path:
        """The file a ``file://`` URI names (see the class docstring for other schemes)."""
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise DependencyNotReady(
                f"spec.source.uri: the operator reads {parsed.scheme}:// artifacts through the "
                "data plane's fetcher, which is not enabled in this build; serving pods still "
                "fetch and verify it",
                delay=300,
            )
        path = Path(unquote(parsed.netloc + parsed.path))
        path = path if path.is_absolute() else self.base / path
        if not path.is_file():
            raise DependencyNotReady(f"spec.source.uri: {path} does not exist (yet)", delay=30)
        return path


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
    return ArtifactInfo(actual, size, int(opset), signature)


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
