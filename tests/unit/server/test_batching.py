"""Dynamic batching (driftline.serving.batching).

We test these aspects: concurrent requests coalesce into fewer runs with outputs identical to
unbatched calls (fake runtime and the real quickstart ONNX models); the max-rows cap; requests with
different trailing shapes never share a run; non-batchable models run alone; the delay policy
waits for company and flushes on a full batch; a failing run fails only its own requests; close
finishes what is queued; a lone request runs at once, whatever the delay, and only when nothing is
queued or running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from driftline.serving.batching import Batcher, split_outputs
from driftline.serving.errors import InferenceFailed
from driftline.serving.protocol import Array, Signature, TensorSpec
from driftline.serving.runtime import FakeRuntime, OnnxRuntime, SessionConfig

QUICKSTART_TIMEOUT = pytest.mark.timeout(60)
"""Tests on the quickstart models: the first one pays for training them (a session fixture)."""

SIG = Signature((TensorSpec("x", "FP32", (-1, -1)),), (TensorSpec("y", "FP32", (-1, -1)),))


def _affine(inputs: Mapping[str, Array]) -> dict[str, Array]:
    return {"y": inputs["x"] * 2 + 1}


def _batcher(runtime: FakeRuntime | OnnxRuntime, **kw: object) -> Batcher:
    options: dict[str, object] = {"max_batch_size": 64, "max_delay_s": 0.0, "batchable": True}
    options.update(kw)
    batcher = Batcher(runtime, **options)  # type: ignore[arg-type]
    batcher.start()
    return batcher


async def test_coalescing_concurrent_requests_with_identical_outputs() -> None:
    runtime = FakeRuntime(SIG, _affine)
    batcher = _batcher(runtime)
    rng = np.random.default_rng(1)
    requests = [rng.normal(size=(int(rng.integers(1, 4)), 5)).astype(np.float32) for _ in range(40)]
    results = await asyncio.gather(*(batcher.submit({"x": r}, r.shape[0]) for r in requests))
    await batcher.close()
    for r, out in zip(requests, results, strict=True):
        assert out["y"].tolist() == (r * 2 + 1).tolist()
    assert sum(runtime.calls) == sum(r.shape[0] for r in requests)
    assert len(runtime.calls) < len(requests)  # batching happened
    assert max(runtime.calls) <= 64


async def test_capping_a_batch_at_max_rows() -> None:
    runtime = FakeRuntime(SIG, _affine)
    batcher = _batcher(runtime, max_batch_size=5)
    x = np.ones((2, 3), dtype=np.float32)
    await asyncio.gather(*(batcher.submit({"x": x}, 2) for _ in range(7)))
    await batcher.close()
    assert max(runtime.calls) <= 4
    assert sum(runtime.calls) == 14


async def test_running_a_request_larger_than_max_rows_alone() -> None:
    runtime = FakeRuntime(SIG, _affine)
    batcher = _batcher(runtime, max_batch_size=4)
    big = np.ones((9, 3), dtype=np.float32)
    out = await batcher.submit({"x": big}, 9)
    await batcher.close()
    assert out["y"].shape == (9, 3)
    assert runtime.calls == [9]


async def test_never_mixing_requests_with_different_trailing_shapes() -> None:
    seen: list[tuple[int, ...]] = []

    def record(inputs: Mapping[str, Array]) -> dict[str, Array]:
        seen.append(inputs["x"].shape)
        return _affine(inputs)

    batcher = _batcher(FakeRuntime(SIG, record))
    a = np.ones((1, 3), dtype=np.float32)
    b = np.ones((1, 4), dtype=np.float32)
    outs = await asyncio.gather(*(batcher.submit({"x": v}, 1) for v in (a, a, b, b, a)))
    await batcher.close()
    assert [o["y"].shape for o in outs] == [(1, 3), (1, 3), (1, 4), (1, 4), (1, 3)]
    assert all(shape[1] in (3, 4) for shape in seen)
    assert sum(s[0] for s in seen) == 5


async def test_running_each_request_alone_when_the_model_is_not_batchable() -> None:
    runtime = FakeRuntime(SIG, _affine)
    batcher = _batcher(runtime, batchable=False)
    x = np.ones((1, 3), dtype=np.float32)
    await asyncio.gather(*(batcher.submit({"x": x}, 1) for _ in range(6)))
    await batcher.close()
    assert runtime.calls == [1] * 6


async def test_waiting_for_company_up_to_the_delay() -> None:
    runtime = FakeRuntime(SIG, _affine)
    batcher = _batcher(runtime, max_delay_s=0.05, max_batch_size=100)
    x = np.ones((1, 3), dtype=np.float32)
    first = asyncio.create_task(batcher.submit({"x": x}, 1))
    await asyncio.sleep(0)  # the first request is queued and the worker waits for company
    rest = [asyncio.create_task(batcher.submit({"x": x}, 1)) for _ in range(3)]
    await asyncio.wait_for(asyncio.gather(first, *rest), 2.0)
    await batcher.close()
    assert runtime.calls == [4]


async def test_flushing_as_soon_as_the_batch_is_full_despite_the_delay() -> None:
    runtime = FakeRuntime(SIG, _affine)
    batcher = _batcher(runtime, max_delay_s=30.0, max_batch_size=3)
    x = np.ones((1, 3), dtype=np.float32)
    await asyncio.wait_for(asyncio.gather(*(batcher.submit({"x": x}, 1) for _ in range(3))), 2.0)
    await batcher.close()
    assert runtime.calls == [3]


async def test_failing_only_the_requests_of_a_failed_run() -> None:
    def flaky(inputs: Mapping[str, Array]) -> dict[str, Array]:
        if (inputs["x"] < 0).any():
            raise InferenceFailed("negative input broke the model")
        return _affine(inputs)

    batcher = _batcher(FakeRuntime(SIG, flaky), batchable=False)
    bad = batcher.submit({"x": -np.ones((1, 3), dtype=np.float32)}, 1)
    good = batcher.submit({"x": np.ones((1, 3), dtype=np.float32)}, 1)
    results = await asyncio.gather(bad, good, return_exceptions=True)
    await batcher.close()
    assert isinstance(results[0], InferenceFailed)
    assert "negative input" in results[0].message
    assert isinstance(results[1], dict)


async def test_finishing_queued_requests_on_close_and_refusing_new_ones() -> None:
    runtime = FakeRuntime(SIG, _affine)
    batcher = _batcher(runtime)
    x = np.ones((1, 3), dtype=np.float32)
    pending = [asyncio.create_task(batcher.submit({"x": x}, 1)) for _ in range(5)]
    await asyncio.sleep(0)
    await batcher.close()
    assert all(t.done() and not t.exception() for t in pending)
    with pytest.raises(InferenceFailed, match="shutting down"):
        await batcher.submit({"x": x}, 1)


def test_refusing_to_split_outputs_that_do_not_have_the_batch_rows() -> None:
    with pytest.raises(InferenceFailed, match="cannot be batched"):
        split_outputs({"y": np.zeros((2,))}, [1, 2])


@QUICKSTART_TIMEOUT
@pytest.mark.parametrize(("model", "exact"), [("model-v2.onnx", True), ("model-v1.onnx", False)])
async def test_batched_onnx_outputs_equal_unbatched_calls(
    quickstart_artifacts: Path, model: str, exact: bool
) -> None:
    # Gradient boosting (v2): every row's trees run alone, so batched == unbatched bit for bit.
    # Logistic regression (v1): ONNX Runtime computes a 1-row MatMul with a different kernel
    # (GEMV) than an n-row one (GEMM), so a single-row call can differ in the last bit; batches of
    # any size >= 2 agree with each other exactly. Checked: within 1e-6.
    path = quickstart_artifacts / model
    runtime = OnnxRuntime(path, SessionConfig())
    await runtime.load()
    calls: list[int] = []
    batcher = Batcher(
        runtime, max_batch_size=32, max_delay_s=0.0, batchable=True, on_batch=calls.append
    )
    batcher.start()
    rng = np.random.default_rng(7)
    rows = rng.normal(40, 25, (48, 7)).astype(np.float32)
    results = await asyncio.gather(
        *(batcher.submit({"input": rows[i : i + 1]}, 1) for i in range(48))
    )
    await batcher.close()
    await runtime.unload()
    assert max(calls) > 1
    session = ort.InferenceSession(str(path))
    for i, out in enumerate(results):
        label, proba = session.run(None, {"input": rows[i : i + 1]})
        assert out["label"].tolist() == label.tolist()
        if exact:
            assert out["probabilities"].tobytes() == proba.tobytes()
        else:
            np.testing.assert_allclose(out["probabilities"], proba, rtol=1e-6, atol=1e-6)


async def test_running_a_lone_request_at_once_on_an_idle_batcher() -> None:
    runtime = FakeRuntime(SIG, _affine)
    batches: list[int] = []
    batcher = _batcher(runtime, on_batch=batches.append)
    x = np.ones((2, 3), dtype=np.float32)
    out = await batcher.submit({"x": x}, 2, alone=True)
    assert out["y"].tolist() == (x * 2 + 1).tolist()
    assert runtime.calls == [2]
    assert batches == [2]
    # a burst still coalesces: only the first may run alone, the rest queue behind it
    results = await asyncio.gather(*(batcher.submit({"x": x}, 2) for _ in range(6)))
    await batcher.close()
    assert all(r["y"].shape == (2, 3) for r in results)
    assert len(runtime.calls) < 1 + 6


async def test_running_a_lone_request_synchronously_without_waiting_for_the_delay() -> None:
    runtime = FakeRuntime(SIG, _affine)
    batches: list[int] = []
    batcher = _batcher(runtime, max_delay_s=30.0, on_batch=batches.append)
    x = np.ones((2, 3), dtype=np.float32)
    # a plain call that returns the outputs: no task, no future, no timer, no loop turn
    out = batcher.run_now({"x": x}, 2)
    assert out is not None
    assert out["y"].tolist() == (x * 2 + 1).tolist()
    assert (runtime.calls, batches) == ([2], [2])
    # submit(alone=True) finishes on its coroutine's first step: it never suspends, so it
    # cannot have waited for the 30 s delay or for the worker
    step = batcher.submit({"x": x}, 2, alone=True)
    with pytest.raises(StopIteration) as done:
        step.send(None)
    assert done.value.value["y"].tolist() == (x * 2 + 1).tolist()
    assert runtime.calls == [2, 2]
    await batcher.close()


async def test_declining_to_run_at_once_when_others_wait_or_the_runtime_offloads() -> None:
    runtime = FakeRuntime(SIG, _affine)
    batcher = _batcher(runtime)
    x = np.ones((1, 3), dtype=np.float32)
    queued = asyncio.get_running_loop().create_task(batcher.submit({"x": x}, 1))
    for _ in range(100):  # loop turns until the task has queued its row
        if batcher.queued_rows:
            break
        await asyncio.sleep(0)
    assert batcher.queued_rows == 1
    assert not batcher.idle
    assert batcher.run_now({"x": x}, 1) is None  # it would overtake the queued request
    await queued
    assert batcher.idle
    await batcher.close()
    assert batcher.run_now({"x": x}, 1) is None  # closed

    class Offloading(FakeRuntime):
        @property
        def inline(self) -> bool:
            return False

    offloading = _batcher(Offloading(SIG, _affine))
    assert offloading.run_now({"x": x}, 1) is None
    await offloading.close()


async def test_completing_queued_requests_through_their_callbacks_in_one_run() -> None:
    runtime = FakeRuntime(SIG, _affine)
    runs: list[int] = []
    batcher = _batcher(runtime, on_batch=runs.append)
    results: list[tuple[int, dict[str, Array] | InferenceFailed]] = []
    inputs = [np.full((i + 1, 3), i, dtype=np.float32) for i in range(4)]
    for i, x in enumerate(inputs):
        batcher.dispatch({"x": x}, x.shape[0], lambda r, i=i: results.append((i, r)))
    assert results == []  # queued: nothing runs before the worker's turn
    assert batcher.queued_rows == 10
    deadline = asyncio.get_running_loop().time() + 5.0
    while len(results) < 4:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0)
    await batcher.close()
    assert runs == [10]  # one run for the four requests
    assert [i for i, _ in results] == [0, 1, 2, 3]  # completed in submission order
    for (_, out), x in zip(results, inputs, strict=True):
        assert isinstance(out, dict)
        np.testing.assert_array_equal(out["y"], x * 2 + 1)


async def test_a_lone_dispatch_completes_before_it_returns_and_failures_reach_the_callback() -> (
    None
):
    def flaky(inputs: Mapping[str, Array]) -> dict[str, Array]:
        if (inputs["x"] < 0).any():
            raise InferenceFailed("negative input broke the model")
        return _affine(inputs)

    batcher = _batcher(FakeRuntime(SIG, flaky))
    results: list[dict[str, Array] | InferenceFailed] = []
    batcher.dispatch({"x": np.ones((1, 3), dtype=np.float32)}, 1, results.append, alone=True)
    assert len(results) == 1
    assert isinstance(results[0], dict)
    batcher.dispatch({"x": -np.ones((1, 3), dtype=np.float32)}, 1, results.append, alone=True)
    assert len(results) == 2
    assert isinstance(results[1], InferenceFailed)
    assert "negative input" in results[1].message
    await batcher.close()
    batcher.dispatch({"x": np.ones((1, 3), dtype=np.float32)}, 1, results.append, alone=True)
    assert isinstance(results[2], InferenceFailed)
    assert "shutting down" in results[2].message


async def test_a_raising_callback_neither_kills_the_worker_nor_skips_the_others() -> None:
    batcher = _batcher(FakeRuntime(SIG, _affine))
    x = np.ones((1, 3), dtype=np.float32)
    results: list[dict[str, Array] | InferenceFailed] = []

    def broken(result: dict[str, Array] | InferenceFailed) -> None:
        raise RuntimeError("callback bug")

    batcher.dispatch({"x": x}, 1, broken)
    batcher.dispatch({"x": x}, 1, results.append)
    out = await asyncio.wait_for(batcher.submit({"x": x}, 1), 5.0)  # the worker still runs
    np.testing.assert_array_equal(out["y"], x * 2 + 1)
    assert len(results) == 1
    await batcher.close()
