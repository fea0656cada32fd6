"""Model runtimes: the one interface the server calls to run a model, and its ONNX Runtime form.

Who uses it: the batcher (:mod:`driftline.serving.batching`) calls :meth:`ModelRuntime.predict`
with whole batches; the app reads :attr:`ModelRuntime.signature` for validation and metadata.
Tests pass :class:`FakeRuntime`.

:class:`OnnxRuntime` calls the blocking ``InferenceSession.run`` in exactly one place,
:meth:`OnnxRuntime.run`. :meth:`OnnxRuntime.predict` calls it either inline on the event loop
(``offload=False``: cheapest for small models on a single core, and the batcher keeps the loop's
stalls short because one run serves many requests) or in a one-thread executor (``offload=True``:
the loop keeps parsing requests while ONNX Runtime computes, better with spare cores).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from driftline.serving.errors import InferenceFailed
from driftline.serving.protocol import DTYPES, ONNX_TYPES, Array, Signature, TensorSpec

if TYPE_CHECKING:
    import onnxruntime

GraphOptimization = Literal["disable", "basic", "extended", "all"]


class ModelLoadError(Exception):
    """The model could not be loaded or verified; the message says why in one line."""


class ModelRuntime(Protocol):
    """What the server needs from a model, whatever runs it.

    Contract: :meth:`load` before anything else; :attr:`signature` is valid after it.
    :meth:`predict` takes one array per model input (first dimension = rows, in the signature's
    order) and returns every model output, each with the same number of rows when the signature
    is batchable. :meth:`predict` raises :class:`~driftline.serving.errors.InferenceFailed` for a
    failure of the runtime itself.
    """

    @property
    def signature(self) -> Signature:
        """The model's inputs and outputs (valid after :meth:`load`)."""
        ...

    async def load(self) -> None:
        """Load, verify and warm up the model; raises :class:`ModelLoadError`."""
        ...

    async def predict(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        """Run the model on one batch."""
        ...

    @property
    def inline(self) -> bool:
        """Whether :meth:`predict_now` may be called on the event loop.

        True when a run is cheap enough to block the loop for (ONNX Runtime without
        ``offload``).
        """
        ...

    def predict_now(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        """Run the model on one batch synchronously (only when :attr:`inline` is True)."""
        ...

    async def unload(self) -> None:
        """Release the model's resources."""
        ...


@dataclass(frozen=True)
class SessionConfig:
    """ONNX Runtime session options.

    Attributes:
        intra_op_threads: threads inside one operator (0 = ONNX Runtime's default, all cores).
        inter_op_threads: threads across independent operators (0 = default).
        graph_optimization: ``disable|basic|extended|all`` graph rewrites at load time.
        offload: run sessions in a worker thread instead of on the event loop.
    """

    intra_op_threads: int = 1
    inter_op_threads: int = 1
    graph_optimization: GraphOptimization = "all"
    offload: bool = False


def _dim(value: object) -> int:
    """An ONNX dimension as the protocol's integer: symbolic or unknown dimensions are -1."""
    return value if isinstance(value, int) and value >= 0 else -1


def signature_of(session: onnxruntime.InferenceSession) -> Signature:
    """The protocol signature of a loaded session.

    Raises:
        ModelLoadError: when an input or output is not a tensor the protocol can carry.
    """

    def spec(kind: str, arg: onnxruntime.NodeArg) -> TensorSpec:
        datatype = ONNX_TYPES.get(arg.type)
        if datatype is None:
            raise ModelLoadError(
                f"{kind} {arg.name!r} has type {arg.type}, which the inference protocol cannot "
                "carry (export plain tensors, e.g. skl2onnx option zipmap=False)"
            )
        return TensorSpec(arg.name, datatype, tuple(_dim(d) for d in arg.shape))

    return Signature(
        inputs=tuple(spec("input", a) for a in session.get_inputs()),
        outputs=tuple(spec("output", a) for a in session.get_outputs()),
    )


def warmup_inputs(signature: Signature) -> dict[str, Array]:
    """One row of zeros (empty strings for BYTES) per input; variable dimensions become 1."""
    out: dict[str, Array] = {}
    for t in signature.inputs:
        shape = tuple(1 if d == -1 else d for d in t.shape)
        if t.datatype == "BYTES":
            out[t.name] = np.full(shape, "", dtype=object)
        else:
            out[t.name] = np.zeros(shape, dtype=DTYPES[t.datatype])
    return out


class OnnxRuntime:
    """A model file run by ONNX Runtime (CPU)."""

    def __init__(self, path: Path, config: SessionConfig) -> None:
        self._path = path
        self._config = config
        self._session: onnxruntime.InferenceSession | None = None
        self._signature: Signature | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._run_options: onnxruntime.RunOptions | None = None
        self._output_names: list[str] = []

    @property
    def signature(self) -> Signature:
        """The model's inputs and outputs (valid after :meth:`load`)."""
        if self._signature is None:
            raise RuntimeError("model is not loaded")
        return self._signature

    def _load_sync(self) -> tuple[onnxruntime.InferenceSession, Signature, float]:
        import onnxruntime as ort

        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._config.intra_op_threads
        options.inter_op_num_threads = self._config.inter_op_threads
        options.graph_optimization_level = levels[self._config.graph_optimization]
        options.log_severity_level = 3
        try:
            model_bytes = self._path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"cannot read model file {self._path}: {exc}") from None
        try:
            session = ort.InferenceSession(
                model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors: map to one line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"ONNX Runtime cannot load {self._path}: {first}") from None
        signature = signature_of(session)
        if not signature.inputs or not signature.outputs:
            raise ModelLoadError(f"{self._path}: the model has no inputs or no outputs")
        started = time.perf_counter()
        try:
            session.run(None, warmup_inputs(signature))
        except Exception as exc:  # a model that cannot run one row of zeros is not servable
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"{self._path}: warm-up inference failed: {first}") from None
        return session, signature, time.perf_counter() - started

    async def load(self) -> None:
        """Read, verify (signature, one warm-up run) and keep the session.

        Raises:
            ModelLoadError: unreadable file, invalid ONNX, non-tensor inputs or outputs, or a
                failed warm-up run.
        """
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(1, thread_name_prefix="driftline-load") as pool:
            session, signature, _ = await loop.run_in_executor(pool, self._load_sync)
        import onnxruntime as ort

        self._session, self._signature = session, signature
        # passing the names saves ONNX Runtime re-reading the outputs' metadata on every run
        # (about a third of a one-row run's cost, measured in bench/serving/profile.py)
        self._output_names = [t.name for t in signature.outputs]
        self._run_options = ort.RunOptions()
        if self._config.offload:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="driftline-infer")

    def run(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        """Run the session once (blocking): the one place ``InferenceSession.run`` is called.

        Raises:
            InferenceFailed: when ONNX Runtime fails on inputs that passed validation.
        """
        session = self._session
        if session is None or self._signature is None:
            raise InferenceFailed("model is not loaded")
        feed = inputs if type(inputs) is dict else dict(inputs)
        try:
            values = session.run(self._output_names, feed, self._run_options)
        except Exception as exc:  # onnxruntime's error types are not exported: map them here
            raise InferenceFailed(f"ONNX Runtime failed: {str(exc).strip()[:300]}") from None
        return {
            name: v if type(v) is np.ndarray else np.asarray(v)
            for name, v in zip(self._output_names, values, strict=True)
        }

    @property
    def inline(self) -> bool:
        """True unless runs are offloaded to the worker thread (:attr:`SessionConfig.offload`)."""
        return not self._config.offload

    def predict_now(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        """Run one batch on the calling thread (the event loop's, for a lone request)."""
        return self.run(inputs)

    async def predict(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        """Run one batch inline or in the worker thread, per :class:`SessionConfig`."""
        if self._executor is None:
            return self.run(inputs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.run, inputs)

    async def unload(self) -> None:
        """Drop the session and stop the worker thread."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._session = None


class FakeRuntime:
    """A runtime for tests: applies ``fn`` to the inputs; optional failure on load."""

    def __init__(
        self,
        signature: Signature,
        fn: Callable[[Mapping[str, Array]], dict[str, Array]],
        *,
        load_error: str | None = None,
    ) -> None:
        self._signature = signature
        self._fn = fn
        self._load_error = load_error
        self.calls: list[int] = []
        """Rows of every batch :meth:`predict` received, in order."""

    @property
    def signature(self) -> Signature:
        """The signature given at construction."""
        return self._signature

    async def load(self) -> None:
        """Succeed, or raise the configured :class:`ModelLoadError`."""
        if self._load_error is not None:
            raise ModelLoadError(self._load_error)

    async def predict(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        """Record the batch's rows and apply ``fn``."""
        return self.predict_now(inputs)

    @property
    def inline(self) -> bool:
        """Always: ``fn`` runs on the caller's thread."""
        return True

    def predict_now(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        """Record the batch's rows and apply ``fn`` synchronously."""
        first = next(iter(inputs.values()))
        self.calls.append(int(first.shape[0]) if first.ndim else 1)
        return self._fn(inputs)

    async def unload(self) -> None:
        """Nothing to release."""
