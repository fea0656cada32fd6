"""A Model's reference profile as the operator builds and stores it (driftline.operator.profiles).

We test these aspects:
- features map to reference columns (``column`` renames) and to their input tensor and column;
  without declared features a one-input model's features are f0..f<k-1>;
- a reference whose columns do not match the features is ReferenceColumnsMismatch, naming the
  missing and the mistyped columns and the columns the reference has;
- an unreadable reference (wrong suffix, broken file) is ReferenceUnreadable;
- the profile is the `driftline profile` document, versioned with both digests, and loads back;
- a profile too large at 512 points is rebuilt with fewer; one that never fits is ProfileTooLarge;
- the ConfigMap carries the profile under profile.json with the digests as annotations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from driftline.operator import names, profiles
from driftline.operator.api.model import ModelSignature, ModelSpec
from driftline.operator.errors import ArtifactInvalid
from driftline.serving.drift.profile import profile_from_json

REF_SHA, MODEL_SHA = "1" * 64, "2" * 64


def signature(columns: int, inputs: tuple[str, ...] = ("x",)) -> ModelSignature:
    return ModelSignature.model_validate(
        {
            "inputs": [{"name": n, "datatype": "FP32", "shape": [-1, columns]} for n in inputs],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}],
        }
    )


def spec(features: list[dict[str, Any]] | None = None) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "family": "churn",
            "version": "v1",
            "source": {"uri": "https://m.example/m.onnx", "sha256": MODEL_SHA},
            "reference": {"uri": "https://m.example/ref.npz", "sha256": REF_SHA},
            "features": features or [],
        }
    )


def npz(path: Path, **columns: Any) -> Path:
    np.savez(path, **{k: np.asarray(v) for k, v in columns.items()})
    return path


def reason_of(fn: Any) -> ArtifactInvalid:
    with pytest.raises(ArtifactInvalid) as info:
        fn()
    return info.value


def test_features_map_to_columns_and_record_positions() -> None:
    got = profiles.feature_columns(
        spec(
            [
                {"name": "age", "column": "AGE"},
                {"name": "plan", "type": "categorical", "input": "cat"},
                {"name": "income", "input": "x"},
            ]
        ),
        signature(2, ("x", "cat")),
    )
    assert [(f.name, f.column, f.tensor, f.position, f.type) for f in got] == [
        ("age", "AGE", "", 0, "numeric"),  # no input named, two inputs: check_features rejects it
        ("plan", "plan", "cat", 0, "categorical"),
        ("income", "income", "x", 0, "numeric"),
    ]
    default = profiles.feature_columns(spec(), signature(3))
    assert [(f.name, f.tensor, f.position) for f in default] == [
        ("f0", "x", 0),
        ("f1", "x", 1),
        ("f2", "x", 2),
    ]
    multi = reason_of(lambda: profiles.feature_columns(spec(), signature(3, ("a", "b"))))
    assert multi.reason == "FeatureMismatch" and "2 inputs" in multi.message


def test_columns_that_do_not_match_are_named(tmp_path: Path) -> None:
    ref = npz(tmp_path / "r.npz", a=[1.0, 2.0], c=np.array(["x", "y"]), label=[0, 1])
    features = [{"name": "a"}, {"name": "b", "column": "B"}, {"name": "c"}]
    error = reason_of(lambda: profiles.build(spec(features), signature(3), ref, REF_SHA, MODEL_SHA))
    assert error.reason == "ReferenceColumnsMismatch"
    assert "no column for 'B (feature b)'" in error.message
    assert "text in the numeric feature column(s) 'c'" in error.message
    assert "the reference has 'a', 'c', 'label'" in error.message


def test_unreadable_references(tmp_path: Path) -> None:
    bad_suffix = reason_of(lambda: profiles.reference_file_name("https://x/ref.parquet?sig=1"))
    assert bad_suffix.reason == "ReferenceUnreadable"
    assert profiles.reference_file_name("s3://b/ref.CSV") == "reference.csv"
    assert profiles.reference_file_name("file://ref.npz") == "reference.npz"  # relative
    broken = tmp_path / "reference.npz"
    broken.write_bytes(b"not a zip")
    error = reason_of(lambda: profiles.build(spec(), signature(1), broken, REF_SHA, MODEL_SHA))
    assert error.reason == "ReferenceUnreadable" and "spec.reference" in error.message


def test_the_profile_is_versioned_and_loads_back(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ref = npz(
        tmp_path / "r.npz",
        TENURE=rng.normal(size=500),
        plan=rng.choice(["a", "b", "c"], size=500),
        label=rng.integers(0, 2, size=500),
    )
    features = [{"name": "tenure", "column": "TENURE"}, {"name": "plan", "type": "categorical"}]
    built = profiles.build(spec(features), signature(2), ref, REF_SHA, MODEL_SHA)
    assert (built.rows, built.features, built.grid_points) == (500, 2, 512)
    doc = json.loads(built.text)
    assert doc["reference_sha256"] == REF_SHA and doc["model_sha256"] == MODEL_SHA
    loaded = profile_from_json(doc)
    assert loaded.layout.names == ("tenure", "plan")
    sources = {f.name: f.source for f in (*loaded.layout.numeric, *loaded.layout.categorical)}
    assert (sources["tenure"].tensor, sources["tenure"].column) == ("x", 0)  # type: ignore[union-attr]
    assert (sources["plan"].tensor, sources["plan"].column) == ("x", 1)  # type: ignore[union-attr]
    cm = profiles.config_map("churn-v1", "ml", built, REF_SHA, MODEL_SHA)
    assert cm["metadata"]["name"] == "churn-v1-profile"
    assert cm["data"] == {names.PROFILE_KEY: built.text}
    notes = cm["metadata"]["annotations"]
    assert notes[names.ANNOTATION_PROFILE_SHA256] == built.sha256
    assert notes[names.ANNOTATION_REFERENCE_SHA256] == REF_SHA
    assert cm["metadata"]["labels"][names.LABEL_MODEL] == "churn-v1"


def test_a_large_profile_is_rebuilt_coarser_until_it_fits(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    ref = npz(tmp_path / "r.npz", **{f"f{j}": rng.normal(size=1500) for j in range(60)})
    built = profiles.build(spec(), signature(60), ref, REF_SHA, MODEL_SHA)
    assert built.grid_points == 128
    assert built.size_bytes <= profiles.MAX_PROFILE_BYTES


def test_a_profile_that_never_fits_is_refused(tmp_path: Path) -> None:
    ids = np.array([f"customer-{i:07d}" for i in range(50_000)])
    ref = npz(tmp_path / "r.npz", who=ids)
    features = [{"name": "who", "type": "categorical"}]
    error = reason_of(lambda: profiles.build(spec(features), signature(1), ref, REF_SHA, MODEL_SHA))
    assert error.reason == "ProfileTooLarge"
    assert str(profiles.MAX_PROFILE_BYTES) in error.message
