"""The quickstart manifests: all four kinds, valid, and naming the artifacts train.py writes.

We test these aspects:
- the manifests cover Model v1, v2, v3, a Deployment, a DriftMonitor and a RetrainPolicy;
- every file:// URI names an artifact the training script writes, resolved against the
  manifests' folder;
- every sha256 in the manifests equals the digest of the freshly trained artifact (training is
  seeded and its output byte-stable);
- train.py's digest refresh rewrites a stale digest in place and leaves the rest of the file alone.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePath
from types import ModuleType

import pytest
import yaml

from driftline.operator.api import Deployment, Model, kind_class

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[3]
MANIFESTS = ROOT / "examples" / "quickstart" / "manifests"


def _objects() -> list[object]:
    out: list[object] = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            cls = kind_class(doc["kind"])
            assert cls is not None, path
            out.append(cls.from_manifest(doc))
    return out


def _models() -> dict[str, Model]:
    return {o.metadata.name: o for o in _objects() if isinstance(o, Model)}


def test_manifests_cover_every_kind_and_three_model_versions() -> None:
    kinds = sorted({type(o).__name__ for o in _objects()})
    assert kinds == ["Deployment", "DriftMonitor", "Model", "RetrainPolicy"]
    models = _models()
    assert sorted(models) == ["churn-v1", "churn-v2", "churn-v3"]
    assert {m.spec.family for m in models.values()} == {"churn"}
    (deployment,) = [o for o in _objects() if isinstance(o, Deployment)]
    assert deployment.spec.model == "churn-v1"


def test_uris_name_the_artifacts_train_writes(quickstart_train: ModuleType) -> None:
    for name, model in _models().items():
        refs = [model.spec.source, model.spec.reference]
        for ref in refs:
            assert ref is not None, name
            path = ref.local_path(MANIFESTS)
            assert path is not None, ref.uri
            assert Path(path).resolve().parent == quickstart_train.DEFAULT_OUT.resolve()
            assert ref.local_path(PurePath("/elsewhere")) != path


def test_manifest_digests_equal_freshly_trained_artifacts(quickstart_artifacts: Path) -> None:
    digests = json.loads((quickstart_artifacts / "digests.json").read_text())
    for name, model in _models().items():
        for ref in (model.spec.source, model.spec.reference):
            assert ref is not None
            file_name = ref.uri.rsplit("/", 1)[-1]
            assert ref.sha256 == digests[file_name], (
                f"{name}: {file_name} digest differs from what train.py writes; run "
                "`python examples/quickstart/train.py` (it refreshes the manifests)"
            )


def test_refreshing_digests_rewrites_only_stale_values(
    tmp_path: Path, quickstart_train: ModuleType
) -> None:
    original = (MANIFESTS / "model-v2.yaml").read_text()
    stale = original.replace(_models()["churn-v2"].spec.source.sha256, "0" * 64)
    (tmp_path / "model-v2.yaml").write_text(stale)
    (tmp_path / "deployment.yaml").write_text((MANIFESTS / "deployment.yaml").read_text())
    digests = {
        "model-v2.onnx": _models()["churn-v2"].spec.source.sha256,
        "reference.npz": _models()["churn-v2"].spec.reference.sha256,  # type: ignore[union-attr]
    }
    changed = quickstart_train.refresh_manifest_digests(tmp_path, digests)
    assert changed == [tmp_path / "model-v2.yaml"]
    assert (tmp_path / "model-v2.yaml").read_text() == original
    assert quickstart_train.refresh_manifest_digests(tmp_path, digests) == []
