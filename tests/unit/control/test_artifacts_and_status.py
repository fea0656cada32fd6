"""Artifact verification and the status written from it, without a server.

We test these aspects:
- a real ONNX file yields its signature, opset and size; a wrong digest, an unreadable file, an
  oversized file and features that do not fit the graph are permanent, with distinct reasons;
- FetchingSource (the serving fetcher, one attempt): a missing file is temporary; a wrong digest,
  an oversized file and an unsupported scheme are permanent, with reasons naming the source or
  the reference;
- Model status: Ready with Verified, or Failed/Stalled with the reason; is_model_ready needs the
  digest and generation to match;
- status_patch nulls fields that went away.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import onnx
import pytest
from onnx import TensorProto, helper

from driftline.operator import conditions
from driftline.operator.api import Model
from driftline.operator.artifacts import FetchingSource, check_features, inspect_onnx
from driftline.operator.errors import ArtifactInvalid, ArtifactUnavailable
from driftline.operator.status import is_model_ready, model_failed, model_ready, status_patch

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LIMIT = 1 << 20


def tiny(path: Path) -> str:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    proto.ir_version = 8
    onnx.save(proto, str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model(
    sha: str, features: list[dict[str, Any]] | None = None, generation: int = 1, **status: Any
) -> Model:
    body: dict[str, Any] = {
        "apiVersion": "driftline.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "m", "namespace": "ns", "generation": generation},
        "spec": {
            "family": "tiny",
            "version": "v1",
            "source": {"uri": "file:///x.onnx", "sha256": sha},
            "features": features or [],
        },
    }
    if status:
        body["status"] = status
    return Model.from_manifest(body)


def test_reading_a_real_graph(tmp_path: Path) -> None:
    sha = tiny(tmp_path / "m.onnx")
    info = inspect_onnx(tmp_path / "m.onnx", sha, LIMIT)
    assert info.opset == 13
    assert info.size_bytes == (tmp_path / "m.onnx").stat().st_size
    assert [(t.name, t.datatype, t.shape) for t in info.signature.inputs] == [
        ("x", "FP32", [-1, 2])
    ]


def test_wrong_digest_is_named(tmp_path: Path) -> None:
    tiny(tmp_path / "m.onnx")
    with pytest.raises(ArtifactInvalid) as info:
        inspect_onnx(tmp_path / "m.onnx", "f" * 64, LIMIT)
    assert info.value.reason == "DigestMismatch"
    assert "f" * 64 in info.value.message


def test_unreadable_and_oversized_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    sha = hashlib.sha256(b"not a model").hexdigest()
    with pytest.raises(ArtifactInvalid) as unreadable:
        inspect_onnx(junk, sha, LIMIT)
    assert unreadable.value.reason == "UnreadableModel"
    with pytest.raises(ArtifactInvalid) as large:
        inspect_onnx(junk, sha, 4)
    assert large.value.reason == "ArtifactTooLarge"


def test_features_must_fit_the_graph(tmp_path: Path) -> None:
    sha = tiny(tmp_path / "m.onnx")
    info = inspect_onnx(tmp_path / "m.onnx", sha, LIMIT)
    check_features(model(sha, [{"name": "a"}, {"name": "b"}]).spec, info.signature)
    with pytest.raises(ArtifactInvalid, match="3 features map to input 'x'"):
        check_features(
            model(sha, [{"name": "a"}, {"name": "b"}, {"name": "c"}]).spec, info.signature
        )
    with pytest.raises(ArtifactInvalid, match=r"features\[0\].input"):
        check_features(model(sha, [{"name": "a", "input": "nope"}]).spec, info.signature)


def test_fetching_source_verifies_local_artifacts(tmp_path: Path) -> None:
    sha = tiny(tmp_path / "m.onnx")
    source = FetchingSource(base=tmp_path)
    got = source.fetch(
        "file://m.onnx", sha, tmp_path / "out", name="model.onnx", limit=LIMIT, what="source"
    )
    assert got == tmp_path / "out" / "model.onnx"
    assert got.read_bytes() == (tmp_path / "m.onnx").read_bytes()


def test_fetching_source_maps_failures_to_reasons(tmp_path: Path) -> None:
    sha = tiny(tmp_path / "m.onnx")
    source = FetchingSource(base=tmp_path)
    uri = f"file://{tmp_path / 'm.onnx'}"

    def reason(uri: str, digest: str, limit: int = LIMIT, what: str = "source") -> str:
        with pytest.raises((ArtifactInvalid, ArtifactUnavailable)) as info:
            source.fetch(uri, digest, tmp_path / "out", name="x", limit=limit, what=what)  # type: ignore[arg-type]
        assert f"spec.{what}" in info.value.message
        return info.value.reason

    assert reason(uri, "f" * 64) == "DigestMismatch"
    assert reason(uri, "f" * 64, what="reference") == "ReferenceDigestMismatch"
    assert reason(uri, sha, limit=10) == "ArtifactTooLarge"
    assert reason(uri, sha, limit=10, what="reference") == "ReferenceTooLarge"
    assert reason("gs://bucket/m.onnx", sha) == "FetchFailed"
    with pytest.raises(ArtifactUnavailable) as missing:
        source.fetch("file:///no/such.onnx", sha, tmp_path, name="x", limit=LIMIT, what="source")
    assert missing.value.reason == "ArtifactMissing"
    assert not list((tmp_path / "out").glob("*")), "nothing half-written"


def test_model_status_ready_and_failed(tmp_path: Path) -> None:
    sha = tiny(tmp_path / "m.onnx")
    m = model(sha)
    ready = model_ready(m, inspect_onnx(tmp_path / "m.onnx", sha, LIMIT), NOW)
    assert ready.phase == "Ready" and ready.verified_sha256 == sha
    assert conditions.is_true(ready.conditions, "Ready")
    assert is_model_ready(m.model_copy(update={"status": ready}))
    assert not is_model_ready(model(sha, generation=2).model_copy(update={"status": ready}))
    failed = model_failed(m, 1, ArtifactInvalid("bad digest", reason="DigestMismatch"), NOW)
    assert failed.phase == "Failed"
    assert conditions.is_true(failed.conditions, "Stalled")
    assert conditions.find(failed.conditions, "Ready").reason == "DigestMismatch"  # type: ignore[union-attr]


def test_status_patch_removes_fields_that_went_away() -> None:
    old = {"canaryModel": "v2", "canaryWeight": 10, "phase": "Progressing"}
    new = {"canaryWeight": 0, "phase": "Healthy"}
    assert status_patch(old, new) == {"canaryModel": None, "canaryWeight": 0, "phase": "Healthy"}
