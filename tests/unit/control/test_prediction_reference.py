"""The prediction reference: a Model run over its reference data (prediction_reference).

We test these aspects:
- which output is the prediction: a one-column float (value), a two-column float (the positive
  class's probability), a one-column integer (label, categorical); ``predictionOutput`` picks
  another; a wider output is no prediction, with a sentence naming it; a name clash is avoided;
- inputs the features do not fill exactly: no prediction, naming the input;
- the batch loop gives up at its deadline and refuses a run whose output is not one value per row;
- ``profiles.build`` with a real ONNX model: the profile gets a ``prediction`` feature sourced
  from the output, with the model's exact outputs over the reference (moments), and the drift
  engine judges prediction drift against it (same distribution: no drift; shifted: drift);
- a model whose output cannot be read: the profile has the input features only and says why.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper

from driftline.operator import prediction_reference as pr
from driftline.operator import profiles
from driftline.operator.api.model import ModelSignature, ModelSpec
from driftline.serving.drift.decide import DecisionConfig, Status
from driftline.serving.drift.evaluate import evaluate_table
from driftline.serving.drift.profile import profile_from_json

REF_SHA, MODEL_SHA = "1" * 64, "2" * 64


def sig(outputs: list[tuple[str, str, list[int]]], columns: int = 3) -> ModelSignature:
    return ModelSignature.model_validate(
        {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, columns]}],
            "outputs": [{"name": n, "datatype": d, "shape": s} for n, d, s in outputs],
        }
    )


def spec(prediction_output: str | None = None) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "family": "tiny",
            "version": "v1",
            "source": {"uri": "https://m.example/m.onnx", "sha256": MODEL_SHA},
            "reference": {"uri": "https://m.example/ref.npz", "sha256": REF_SHA},
            "features": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
            "predictionOutput": prediction_output,
        }
    )


def test_which_output_is_the_prediction() -> None:
    names = ["a", "b", "c"]
    value = pr.prediction_target(spec(), sig([("y", "FP32", [-1, 1])]), names)
    assert value == pr.PredictionTarget("prediction", "y", 0, "numeric")
    proba = pr.prediction_target(spec(), sig([("p", "FP32", [-1, 2])]), names)
    assert proba == pr.PredictionTarget("prediction", "p", 1, "numeric")
    label = pr.prediction_target(spec(), sig([("label", "INT64", [-1])]), names)
    assert label == pr.PredictionTarget("prediction", "label", 0, "categorical")
    chosen = pr.prediction_target(
        spec("label"), sig([("p", "FP32", [-1, 5]), ("label", "INT64", [-1])]), names
    )
    assert chosen == pr.PredictionTarget("prediction", "label", 0, "categorical")
    wide = pr.prediction_target(spec(), sig([("p", "FP32", [-1, 5])]), names)
    assert isinstance(wide, pr.NoPrediction) and "'p'" in wide.reason and "[-1, 5]" in wide.reason
    clash = pr.prediction_target(spec(), sig([("y", "FP32", [-1, 1])]), ["prediction"])
    assert isinstance(clash, pr.PredictionTarget) and clash.name == "prediction.y"
    assert isinstance(pr.prediction_target(spec(), sig([]), names), pr.NoPrediction)


def test_inputs_the_features_do_not_fill_are_no_prediction() -> None:
    features = profiles.feature_columns(spec(), sig([("y", "FP32", [-1, 1])], columns=4))
    plan = pr.input_plan(features, sig([("y", "FP32", [-1, 1])], columns=4).inputs)
    assert isinstance(plan, pr.NoPrediction)
    assert "'x' has 4 columns but 3 features" in plan.reason
    ok = pr.input_plan(features, sig([("y", "FP32", [-1, 1])]).inputs)
    assert ok == {"x": ["a", "b", "c"]}


def _batches(n: int, rows: int) -> Iterator[Mapping[str, npt.NDArray[np.generic]]]:
    for _ in range(n):
        yield {"x": np.zeros((rows, 3), np.float32)}


def test_the_loop_stops_at_its_deadline_and_checks_shapes() -> None:
    target = pr.PredictionTarget("prediction", "y", 0, "numeric")
    ticks = iter([0.0, 1.0, 5.0])
    calls: list[int] = []

    def run(feed: Mapping[str, npt.NDArray[np.generic]]) -> npt.NDArray[np.generic]:
        calls.append(1)
        return np.ones((len(feed["x"]), 1), np.float32)

    late = pr.collect(_batches(5, 4), run, target, deadline=2.0, clock=lambda: next(ticks))
    assert isinstance(late, pr.NoPrediction) and "longer than" in late.reason
    assert len(calls) == 2  # the third batch was not run
    short = pr.collect(_batches(1, 4), lambda feed: np.ones(3, np.float32), target, deadline=1e18)
    assert isinstance(short, pr.NoPrediction) and "[3] for 4 rows" in short.reason
    good = pr.collect(_batches(3, 4), run, target, deadline=1e18)
    assert isinstance(good, np.ndarray) and good.shape == (12,)


def _model(path: Path, outputs: int) -> Path:
    """y = x @ w with ``outputs`` columns (w all ones)."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, outputs], [1.0] * (3 * outputs))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, outputs])],
        [w],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.save(proto, str(path))
    return path


def _reference(path: Path, rows: int) -> dict[str, Any]:
    rng = np.random.default_rng(11)
    cols: dict[str, Any] = {c: rng.normal(size=rows) for c in ("a", "b", "c", "label")}
    np.savez(path, **cols)
    return cols


def test_the_profile_carries_the_models_predictions_over_the_reference(tmp_path: Path) -> None:
    model = _model(tmp_path / "m.onnx", 1)
    cols = _reference(tmp_path / "ref.npz", 9000)  # more than two batches
    signature = sig([("y", "FP32", [-1, 1])])
    built = profiles.build(spec(), signature, tmp_path / "ref.npz", REF_SHA, MODEL_SHA, model)
    assert built.prediction == "output 'y' column 0 (numeric)"
    profile = profile_from_json(json.loads(built.text))
    assert profile.layout.names == ("a", "b", "c", "prediction")
    source = profile.layout.numeric[3].source
    assert source is not None and (source.kind, source.tensor, source.column) == ("output", "y", 0)
    expected = (cols["a"] + cols["b"] + cols["c"]).astype(np.float32)
    total, squares = profile.reference.moments[3]
    assert np.isclose(total, expected.astype(np.float64).sum(), rtol=1e-6)
    assert np.isclose(squares, np.square(expected.astype(np.float64)).sum(), rtol=1e-6)

    cfg = DecisionConfig(predictions=frozenset({"prediction"}), features=frozenset({"a"}))
    rng = np.random.default_rng(5)
    same = rng.normal(size=(2000, 3))
    shifted = same + np.array([0.0, 0.0, 0.8])
    for window, drifted in ((same, False), (shifted, True)):
        table = {"a": window[:, 0], "b": window[:, 1], "c": window[:, 2],
                 "prediction": window.sum(axis=1)}  # fmt: skip
        verdict = evaluate_table(profile, table, cfg).verdict
        assert verdict.prediction_status is not None
        assert (verdict.prediction_status == Status.DRIFT) is drifted


def test_an_unreadable_prediction_leaves_the_profile_without_one(tmp_path: Path) -> None:
    model = _model(tmp_path / "wide.onnx", 3)
    _reference(tmp_path / "ref.npz", 300)
    signature = sig([("y", "FP32", [-1, 3])])
    built = profiles.build(spec(), signature, tmp_path / "ref.npz", REF_SHA, MODEL_SHA, model)
    assert built.prediction.startswith("none: output 'y' (FP32, shape [-1, 3])")
    assert profile_from_json(json.loads(built.text)).layout.names == ("a", "b", "c")
    without = profiles.build(spec(), signature, tmp_path / "ref.npz", REF_SHA, MODEL_SHA)
    assert without.prediction.startswith("none:")
