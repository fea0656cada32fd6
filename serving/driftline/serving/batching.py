"""Dynamic batching: concurrent requests coalesce into one model run, results split back by row.

Who uses it: the model server's app submits every validated request here; one worker task owns the
runtime and calls :meth:`~driftline.serving.runtime.ModelRuntime.predict` once per batch.

Policy (what a batch is):

- One way in, :meth:`Batcher.dispatch`: the caller passes a completion callback (``done``),
  called exactly once with the request's outputs or the :class:`InferenceFailed` that ended it.
  No task, no future per request: the worker calls ``done`` for every request of a batch right
  after the run. :meth:`Batcher.submit` is the awaitable form of the same call (a future
  completed by ``done``), for callers that want one.
- A lone request runs at once ("dispatch when idle, coalesce only under load"): when the caller
  knows no other request is waiting (``alone``: the HTTP server holds only this one), nothing is
  queued, no run is in progress and the runtime runs on this thread, :meth:`Batcher.dispatch`
  runs it synchronously (:meth:`Batcher.run_now`) and calls ``done`` before returning. This
  holds whatever ``max_delay_s`` is: the delay only ever applies to requests that arrive while
  others are waiting.
- Requests are taken in arrival order. A batch holds requests whose non-batch dimensions agree
  (same trailing shape per input), up to ``max_batch_size`` rows; a single request larger than
  that runs alone. A model without a variable batch dimension runs every request alone.
- ``max_delay_s == 0`` (the default): no timer. The worker takes whatever queued while the
  previous batch ran (requests parsed in the same loop iteration are queued together). Idle
  latency is not increased and batches grow by themselves under load.
- ``max_delay_s > 0``: after the first request of a batch arrives, wait until ``max_batch_size``
  rows are queued or the delay has passed since its arrival, whichever is first.

Correctness: the outputs a request receives are the rows of the batch's outputs that its rows
produced (row slices in submission order), so they equal an unbatched run for any model whose rows
are independent (every ONNX model with a batch dimension that does not mix rows).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from driftline.serving.errors import InferenceFailed
from driftline.serving.protocol import Array
from driftline.serving.runtime import ModelRuntime

log = logging.getLogger(__name__)


Done = Callable[[dict[str, Array] | InferenceFailed], None]
"""A request's completion callback: its outputs, or the failure that ended it. Called once."""


@dataclass(slots=True)
class _Item:
    inputs: dict[str, Array]
    rows: int
    key: tuple[tuple[int, ...], ...]
    arrival: float
    done: Done


def batch_key(inputs: dict[str, Array]) -> tuple[tuple[int, ...], ...]:
    """What must agree for two requests to share a run: every input's non-batch dimensions."""
    return tuple(a.shape[1:] for a in inputs.values())


def take_batch(queue: deque[_Item], max_rows: int, batchable: bool) -> list[_Item]:
    """Pop the next batch off the front of ``queue`` (pure apart from the pops).

    The first item is always taken; following items join while their key matches the first's and
    the total stays within ``max_rows``. Items that do not fit stay queued, in order.
    """
    first = queue.popleft()
    batch = [first]
    if not batchable:
        return batch
    rows = first.rows
    while queue and queue[0].key == first.key and rows + queue[0].rows <= max_rows:
        item = queue.popleft()
        rows += item.rows
        batch.append(item)
    return batch


def concat_inputs(items: Sequence[_Item]) -> dict[str, Array]:
    """The batch's inputs: each request's arrays concatenated along the first dimension."""
    if len(items) == 1:
        return items[0].inputs
    names = items[0].inputs.keys()
    return {n: np.concatenate([it.inputs[n] for it in items]) for n in names}


def split_outputs(outputs: dict[str, Array], row_counts: Sequence[int]) -> list[dict[str, Array]]:
    """Slice each output back into per-request row ranges.

    Raises:
        InferenceFailed: when an output's first dimension is not the batch's row count (a model
            that mixes rows cannot be batched).
    """
    total = sum(row_counts)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise InferenceFailed(
                f"output {name!r} has shape {list(array.shape)}, not {total} rows: the model "
                "cannot be batched (set --max-batch-size 1)"
            )
    result: list[dict[str, Array]] = []
    start = 0
    for count in row_counts:
        end = start + count
        result.append({n: a[start:end] for n, a in outputs.items()})
        start = end
    return result


class Batcher:
    """Queue + one worker task running batches on a :class:`ModelRuntime`."""

    def __init__(
        self,
        runtime: ModelRuntime,
        *,
        max_batch_size: int,
        max_delay_s: float,
        batchable: bool,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        """Create a batcher; call :meth:`start` inside the running loop before submitting.

        Args:
            runtime: the loaded model runtime.
            max_batch_size: most rows in one run (requests larger than this run alone).
            max_delay_s: how long the first queued request may wait for company (0: never).
            batchable: whether the model has a variable batch dimension on every tensor.
            on_batch: called with the row count of every run (metrics).
        """
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        if max_delay_s < 0:
            raise ValueError("max_delay_s must be >= 0")
        self._runtime = runtime
        self._max_rows = max_batch_size
        self._max_delay = max_delay_s
        self._batchable = batchable and max_batch_size > 1
        self._on_batch = on_batch
        self._inline = runtime.inline
        self._queue: deque[_Item] = deque()
        self._queued_rows = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self._time: Callable[[], float] = time.monotonic  # the loop's clock once started

    @property
    def queued_rows(self) -> int:
        """Rows waiting for a run (queue depth, for metrics)."""
        return self._queued_rows

    def start(self) -> None:
        """Start the worker task on the running loop."""
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._time = loop.time
            self._task = loop.create_task(self._worker())

    def dispatch(
        self, inputs: dict[str, Array], rows: int, done: Done, *, alone: bool = False
    ) -> None:
        """Run one request's inputs, now or in a batch; ``done`` gets its rows of the outputs.

        Args:
            inputs: one array per model input, first dimension ``rows``.
            rows: the request's rows.
            done: called exactly once with the outputs or the :class:`InferenceFailed`: before
                this returns when the request ran at once (or the batcher is shut down), else
                from the worker right after the batch's run.
            alone: the caller knows no other request is waiting (e.g. the HTTP server has no
                other request pending). When the batcher is :attr:`idle` too, the request runs
                at once on the caller's thread: no hand-over to the worker, no loop turn.
        """
        if self._closing:
            done(InferenceFailed("server is shutting down"))
            return
        if alone and self.idle:
            try:
                outputs = self.run_now(inputs, rows)
            except InferenceFailed as exc:
                done(exc)
                return
            if outputs is not None:
                done(outputs)
                return
        self._queue.append(_Item(inputs, rows, batch_key(inputs), self._time(), done))
        self._queued_rows += rows
        self._wake.set()

    async def submit(
        self, inputs: dict[str, Array], rows: int, *, alone: bool = False
    ) -> dict[str, Array]:
        """Awaitable :meth:`dispatch`: the request's outputs (its rows of the batch's).

        Raises:
            InferenceFailed: when the run fails or the batcher is shut down.
        """
        future: asyncio.Future[dict[str, Array]] = asyncio.get_running_loop().create_future()

        def done(result: dict[str, Array] | InferenceFailed) -> None:
            if future.done():  # the awaiting caller was cancelled
                return
            if isinstance(result, InferenceFailed):
                future.set_exception(result)
            else:
                future.set_result(result)

        self.dispatch(inputs, rows, done, alone=alone)
        return await future

    @property
    def idle(self) -> bool:
        """Whether :meth:`run_now` would run a request at once.

        True when nothing is queued or running, the batcher is not closing, and the runtime may
        run on this thread.
        """
        return not self._queue and not self._running and not self._closing and self._inline

    def run_now(self, inputs: dict[str, Array], rows: int) -> dict[str, Array] | None:
        """Run one lone request synchronously when the batcher is :attr:`idle`, else return None.

        The caller's contract is :meth:`submit`'s with ``alone=True``: it knows no other request
        is waiting. Returning None means "submit it instead" (something is queued or running, the
        runtime offloads to a thread, or the batcher is closing).

        Raises:
            InferenceFailed: when the run fails.
        """
        if self._queue or self._running or self._closing or not self._inline:
            return None
        if self._on_batch is not None:
            self._on_batch(rows)
        try:
            return self._runtime.predict_now(inputs)
        except InferenceFailed:
            raise
        except Exception:  # the same boundary as the worker's
            log.exception("model run failed")
            raise InferenceFailed("model run failed") from None

    async def close(self) -> None:
        """Finish every queued request, then stop the worker."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _gather(self) -> None:
        """Wait for company for the first queued request, per the delay policy."""
        if self._max_delay <= 0 or not self._batchable:
            return  # whatever queued while the previous run executed is the batch
        loop = asyncio.get_running_loop()
        deadline = self._queue[0].arrival + self._max_delay
        while self._queued_rows < self._max_rows and not self._closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wake.clear()
            handle = loop.call_later(remaining, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                handle.cancel()

    async def _worker(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._gather()
            batch = take_batch(self._queue, self._max_rows, self._batchable)
            counts = [it.rows for it in batch]
            self._queued_rows -= sum(counts)
            if self._on_batch is not None:
                self._on_batch(sum(counts))
            self._running = True
            try:
                outputs = await self._runtime.predict(concat_inputs(batch))
                parts = split_outputs(outputs, counts) if len(batch) > 1 else [outputs]
            except Exception as exc:  # the worker is a boundary: every failure goes to its callers
                if not isinstance(exc, InferenceFailed):
                    log.exception("model run failed")
                message = exc.message if isinstance(exc, InferenceFailed) else "model run failed"
                for it in batch:
                    _complete(it.done, InferenceFailed(message))
                continue
            finally:
                self._running = False
            for it, part in zip(batch, parts, strict=True):
                _complete(it.done, part)


def _complete(done: Done, result: dict[str, Array] | InferenceFailed) -> None:
    """Call one request's ``done``; a callback that raises is logged, never kills the worker."""
    try:
        done(result)
    except Exception:
        log.exception("a request's completion callback failed")
