"""The quickstart training script: artifacts, determinism, models that behave as the demo needs."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import onnxruntime as ort
import pytest

pytestmark = pytest.mark.timeout(120)


def test_every_artifact_is_written_with_its_digest(quickstart_artifacts: Path) -> None:
    digests = json.loads((quickstart_artifacts / "digests.json").read_text())
    expected = {
        "model-v1.onnx",
        "model-v2.onnx",
        "model-v3.onnx",
        "reference.npz",
        "reference.csv",
        "traffic.csv",
        "traffic-shifted.csv",
    }
    assert set(digests) == expected
    for name, digest in digests.items():
        assert len(digest) == 64
        assert (quickstart_artifacts / name).exists()


def test_models_have_one_float_input_and_plain_tensor_outputs(
    quickstart_artifacts: Path, quickstart_train: ModuleType
) -> None:
    session = ort.InferenceSession(str(quickstart_artifacts / "model-v1.onnx"))
    (inp,) = session.get_inputs()
    assert inp.name == quickstart_train.INPUT_NAME
    assert inp.type == "tensor(float)"
    assert inp.shape[1] == len(quickstart_train.FEATURES)
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]


def _holdout_accuracy(path: Path, train: ModuleType) -> float:
    x, y = train.make_dataset(3000, 12345)
    label = ort.InferenceSession(str(path)).run(["label"], {"input": x})[0]
    return float((label == y).mean())


def test_v2_beats_v1_and_v3_is_noise(
    quickstart_artifacts: Path, quickstart_train: ModuleType
) -> None:
    v1 = _holdout_accuracy(quickstart_artifacts / "model-v1.onnx", quickstart_train)
    v2 = _holdout_accuracy(quickstart_artifacts / "model-v2.onnx", quickstart_train)
    v3 = _holdout_accuracy(quickstart_artifacts / "model-v3.onnx", quickstart_train)
    assert v2 > v1 + 0.01
    assert v3 < 0.55


def test_shifted_traffic_moves_the_inputs(quickstart_train: ModuleType) -> None:
    base, _ = quickstart_train.make_dataset(5000, 1)
    shifted, _ = quickstart_train.make_dataset(5000, 1, shift=1.0)
    charges = quickstart_train.FEATURES.index("monthly_charges")
    assert shifted[:, charges].mean() - base[:, charges].mean() > 10.0


def test_same_seed_gives_same_rows(quickstart_train: ModuleType) -> None:
    a, ya = quickstart_train.make_dataset(100, 3)
    b, yb = quickstart_train.make_dataset(100, 3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
