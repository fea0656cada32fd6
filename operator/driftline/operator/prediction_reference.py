"""A Model's prediction reference: the model run over its reference data, for prediction drift.

Owns: which output of the graph is "the prediction" and how it is compared (``prediction_target``,
pure), how the reference's feature columns become the graph's input tensors (``input_batches``,
pure), and running the model over them in bounded batches with ONNX Runtime (``predict``, the
thin I/O part). ``driftline.operator.profiles`` adds the result to the reference profile as one
more feature whose source is an *output* tensor: the monitor sidecar (``driftline.serving.
monitor.run``) treats every profile feature with an output source as a prediction, so prediction
drift needs nothing else downstream.

The prediction is ``spec.predictionOutput`` or else the graph's first output:

- a ``BYTES``/``BOOL``/integer output with one column is a label: a ``categorical`` feature;
- a float output with one column is a value or a score: ``numeric``, column 0;
- a float output with two columns is a binary classifier's probabilities: ``numeric``, the
  positive class (column 1);
- anything else (more columns, unknown width, more than two dimensions) cannot be read as one
  prediction. Neither can a graph whose inputs the declared features do not fill exactly (an
  input column no feature names has no reference values). That is **not** a failure: the profile
  has no prediction reference and the Model's status says why (``predictionReference``).

Bounds: the reference is already size-limited (``profiles.MAX_REFERENCE_BYTES``) and in memory;
the model runs over it ``BATCH_ROWS`` rows at a time (flat memory for the outputs) and gives up
after ``MAX_SECONDS`` of wall time (then: no prediction reference, status says so).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
import numpy.typing as npt

from driftline.operator.api.model import ModelSignature, ModelSpec, TensorSpec

if TYPE_CHECKING:
    from driftline.operator.profiles import FeatureColumn
    from driftline.serving.drift.profile import Column

BATCH_ROWS: Final = 4096
"""Reference rows per model call."""
MAX_SECONDS: Final = 120.0
"""Wall time allowed for the whole run over the reference."""
PREDICTION_FEATURE: Final = "prediction"
"""The profile feature holding the prediction (``prediction.<output>`` if a feature is named so)."""

_LABEL_TYPES: Final = frozenset(
    {"BYTES", "BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
)
_FLOAT_TYPES: Final = frozenset({"FP16", "FP32", "FP64"})
_NUMPY: Final[Mapping[str, str]] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
}
"""Input datatypes the reference's numbers can be cast to (``BYTES`` inputs are not fed)."""


@dataclass(frozen=True)
class PredictionTarget:
    """Where the prediction is in the graph's outputs and how it is compared.

    Attributes:
        name: the profile feature's name.
        output: the output tensor.
        column: its column (0 for a one-column or 1-D output).
        type: ``numeric`` (values, scores) or ``categorical`` (labels).
    """

    name: str
    output: str
    column: int
    type: Literal["numeric", "categorical"]

    def describe(self) -> str:
        """One line for the Model's status: ``output 'y' column 0 (numeric)``."""
        return f"output {self.output!r} column {self.column} ({self.type})"


@dataclass(frozen=True)
class NoPrediction:
    """Why a Model's profile has no prediction reference (a sentence for its status)."""

    reason: str


def _columns(shape: Sequence[int]) -> int:
    """Columns of a tensor shape: 1 for 1-D or ``[-1, 1]``, -1 when unknown or more than 2-D."""
    if len(shape) <= 1:
        return 1
    return shape[-1] if len(shape) == 2 else -1


def prediction_target(
    spec: ModelSpec, signature: ModelSignature, feature_names: Sequence[str]
) -> PredictionTarget | NoPrediction:
    """The output read as the prediction, or why none can be. Pure.

    Args:
        spec: the Model's spec (``predictionOutput``).
        signature: the graph's signature.
        feature_names: the profile's input features (the prediction's name must differ).
    """
    outputs = {t.name: t for t in signature.outputs}
    if not outputs:
        return NoPrediction("the graph has no outputs")
    chosen = outputs.get(spec.prediction_output or "") or signature.outputs[0]
    name = PREDICTION_FEATURE
    if name in feature_names:
        name = f"{PREDICTION_FEATURE}.{chosen.name}"
    if name in feature_names:
        return NoPrediction(f"features named {PREDICTION_FEATURE!r} and {name!r} already exist")
    columns = _columns(chosen.shape)
    if chosen.datatype in _LABEL_TYPES and columns == 1:
        return PredictionTarget(name, chosen.name, 0, "categorical")
    if chosen.datatype in _FLOAT_TYPES and columns in (1, 2):
        return PredictionTarget(name, chosen.name, columns - 1, "numeric")
    return NoPrediction(
        f"output {chosen.name!r} ({chosen.datatype}, shape {chosen.shape}) is not one prediction "
        "per row (a label, a value, or a binary classifier's two probabilities); set "
        "spec.predictionOutput to one that is"
    )


def input_plan(
    features: Sequence[FeatureColumn], inputs: Sequence[TensorSpec]
) -> dict[str, list[str]] | NoPrediction:
    """Per graph input, the features filling its columns in order, or why they cannot. Pure.

    Every column of every input must come from exactly one feature: an input column no feature
    names has no reference values to feed.
    """
    plan: dict[str, list[str]] = {}
    for tensor in inputs:
        mine = sorted((f for f in features if f.tensor == tensor.name), key=lambda f: f.position)
        columns = _columns(tensor.shape)
        if tensor.datatype not in _NUMPY:
            return NoPrediction(f"input {tensor.name!r} is {tensor.datatype}: not fed from numbers")
        if not mine or (columns > 0 and len(mine) != columns):
            return NoPrediction(
                f"input {tensor.name!r} has {columns if columns > 0 else 'unknown'} columns but "
                f"{len(mine)} features fill it: the model cannot be run over the reference"
            )
        if len(tensor.shape) > 2:
            return NoPrediction(f"input {tensor.name!r} has shape {tensor.shape}, not rows")
        plan[tensor.name] = [f.name for f in mine]
    return plan


def input_batches(
    plan: Mapping[str, Sequence[str]],
    inputs: Sequence[TensorSpec],
    table: Mapping[str, Column],
    batch_rows: int,
) -> Iterator[dict[str, npt.NDArray[np.generic]]]:
    """The graph's feeds, ``batch_rows`` reference rows at a time. Pure (a generator).

    Raises:
        ValueError: a reference column that cannot be cast to its input's type (e.g. text).
    """
    rows = len(next(iter(table.values()))) if table else 0
    specs = {t.name: t for t in inputs}
    for start in range(0, rows, batch_rows):
        stop = min(rows, start + batch_rows)
        feed: dict[str, npt.NDArray[np.generic]] = {}
        for tensor, names in plan.items():
            spec = specs[tensor]
            dtype = np.dtype(_NUMPY[spec.datatype])
            cols = [np.asarray(table[n][start:stop]).astype(dtype) for n in names]
            feed[tensor] = cols[0] if len(spec.shape) == 1 else np.stack(cols, axis=1)
        yield feed


Run = Callable[[Mapping[str, npt.NDArray[np.generic]]], npt.NDArray[np.generic]]
"""One model call: feeds -> the prediction output tensor."""


def collect(
    batches: Iterator[Mapping[str, npt.NDArray[np.generic]]],
    run: Run,
    target: PredictionTarget,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
) -> npt.NDArray[np.generic] | NoPrediction:
    """The prediction column over every batch, or why it could not be read (pure given ``run``)."""
    parts: list[npt.NDArray[np.generic]] = []
    for feed in batches:
        if clock() > deadline:
            return NoPrediction(
                f"running the model over the reference took longer than {MAX_SECONDS:.0f} s"
            )
        out = np.asarray(run(feed))
        rows = len(next(iter(feed.values())))
        if out.ndim == 2 and out.shape[1] > target.column:
            out = out[:, target.column]
        if out.ndim != 1 or len(out) != rows:
            return NoPrediction(
                f"output {target.output!r} gave shape {list(out.shape)} for {rows} rows, "
                "not one prediction per row"
            )
        parts.append(out)
    if not parts:
        return NoPrediction("the reference has no rows")
    values = np.concatenate(parts)
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        return NoPrediction(f"output {target.output!r} is not finite on some reference rows")
    if target.type == "categorical" and values.dtype.kind in "SO":
        values = np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in values])
    return values


def predict(
    model: Path,
    features: Sequence[FeatureColumn],
    signature: ModelSignature,
    target: PredictionTarget,
    table: Mapping[str, Column],
) -> npt.NDArray[np.generic] | NoPrediction:
    """Run the (verified) model over the reference's features with ONNX Runtime; never raises.

    Anything the run cannot do (inputs the features do not fill, a column of the wrong type, a
    graph that fails on the data, the time limit) is a ``NoPrediction`` naming it.
    """
    plan = input_plan(features, signature.inputs)
    if isinstance(plan, NoPrediction):
        return plan
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )

        def run(feed: Mapping[str, npt.NDArray[np.generic]]) -> npt.NDArray[np.generic]:
            (out,) = session.run([target.output], dict(feed))
            return np.asarray(out)

        columns = {f.name: table[f.column] for f in features}
        return collect(
            input_batches(plan, signature.inputs, columns, BATCH_ROWS),
            run,
            target,
            time.monotonic() + MAX_SECONDS,
        )
    except Exception as e:  # the edge: whatever ONNX Runtime or a cast raises on this data
        return NoPrediction(f"the model failed on the reference: {type(e).__name__}: {e}"[:300])
