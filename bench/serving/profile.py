"""Where the model server's time goes: per-stage CPU microseconds, in process, load-insensitive.

The wall-clock benchmark (``run.py``) needs an idle box; this one does not. It builds the real
server (ONNX Runtime session over the benchmark's model, validation, metrics and prediction
records on; records are encoded for real and handed to a post that discards them) and drives its
HTTP connections in process through a fake transport, so no socket, no kernel and no load
generator share the measurement. Every figure is CPU time of this thread (``time.thread_time``),
which other processes on the box do not inflate (they still slow it through shared caches, so
every figure is the minimum over ``--repeats`` rounds).

Reported:

- ``stages_us``: each step of the lone-request path timed on its own, in microseconds:
  HTTP parse (httptools callbacks up to the queued :class:`Request`), request parse +
  validation, ``InferenceSession.run`` (one row), response encoding, metrics updates, record
  enqueue, record frame encoding per row, response head rendering; then the whole app for one
  request, through the batcher's queue (``app_queued_path``: what a request arriving under load
  takes) and through the lone-request path (``app_lone_path``); and the typical (median) cost
  of one model run and of the whole lone path right after the server was idle
  (``*_after_idle_sleep_median``: a 0.5 ms sleep first, as between requests at c=1;
  ``session_run_after_cache_sweep_median``: a 32 MB sweep first, every cache line evicted),
  which is what a request at concurrency 1 pays;
- ``closed_loop``: ``C`` simulated connections, each sending its next request as soon as its
  answer is written (wrk's model), ``--requests`` requests per round: CPU microseconds per
  request (best round), rows per model run, and latency percentiles pooled over all rounds,
  measured on the thread's CPU clock (our own work only, garbage-collection pauses included),
  with the collector's gen-1/2 passes and its longest pause.

Usage: ``make bench-serving-profile`` or ``python bench/serving/profile.py [--quick] [--out FILE]``
(prints the JSON report; writes it to ``--out`` when given).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from driftline.serving import http as http_core
from driftline.serving import server as server_module
from driftline.serving.metrics import ServerMetrics
from driftline.serving.protocol import Policy, encode_infer_response, parse_infer_request
from driftline.serving.recorder import Entry, RecordShipper
from driftline.serving.runtime import OnnxRuntime, SessionConfig
from driftline.serving.server import ModelServer

HERE = Path(__file__).resolve().parent
WORK = HERE.parent / ".work" / "serving"
CLOCK = time.thread_time


def _request_bytes(body: bytes) -> bytes:
    head = (
        "POST /v2/models/model/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _git_head() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(HERE), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def per_call_us(fn: Callable[[], object], n: int, repeats: int) -> float:
    """Minimum over ``repeats`` rounds of the mean CPU microseconds of ``fn()`` over ``n`` calls."""
    best = float("inf")
    for _ in range(repeats):
        started = CLOCK()
        for _ in range(n):
            fn()
        best = min(best, (CLOCK() - started) / n * 1e6)
    return best


def after_pause_us(fn: Callable[[], object], pause: Callable[[], object], n: int) -> float:
    """Median CPU microseconds of one ``fn()`` right after ``pause()``, over ``n`` calls.

    What a request costs when the server was idle before it (c=1): the pause is a short sleep
    (the core goes to other processes, or idles, as between wrk's requests at concurrency 1) or
    a sweep through 32 MB (every cache line of the model evicted). The median, not the minimum:
    the point is the typical cold call.
    """
    times: list[float] = []
    for _ in range(n):
        pause()
        started = CLOCK()
        fn()
        times.append((CLOCK() - started) * 1e6)
    return float(np.median(times))


_SWEEP = np.ones(32 * 1024 * 1024 // 8)


def _idle_sleep() -> None:
    time.sleep(0.0005)  # the gap between two requests at c=1 (not a synchronisation)


def _cache_sweep() -> None:
    _SWEEP.__iadd__(1.0)


class FakeTransport(asyncio.Transport):
    """Collects what the server writes; tells the driver when a response is complete."""

    def __init__(self, on_response: Callable[[], None]) -> None:
        super().__init__()
        self.on_response = on_response
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.on_response()

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def build_app(model: Path) -> tuple[ModelServer, RecordShipper, ServerMetrics]:
    registry = CollectorRegistry()
    metrics = ServerMetrics(registry, "model", "1")
    runtime = OnnxRuntime(model, SessionConfig())

    async def discard(frame: bytes) -> None:
        return None

    shipper = RecordShipper(
        discard,
        metrics,
        model="model",
        version="1",
        variant="stable",
        max_rows=65536,
        flush_rows=4096,
        flush_interval_s=0.2,
    )
    app = ModelServer(
        runtime,
        metrics,
        registry,
        name="model",
        version="1",
        policy=Policy(),
        max_batch_size=64,
        max_delay_s=0.0,
        shipper=shipper,
    )
    if not await app.load():
        raise SystemExit("model failed to load")
    return app, shipper, metrics


async def closed_loop(
    app: ModelServer, raw: bytes, concurrency: int, requests: int
) -> dict[str, object]:
    """``concurrency`` fake connections in a closed loop; CPU-clock latencies and batch sizes."""
    loop = asyncio.get_running_loop()
    state = http_core.ServerState(app.handle, http_core.DEFAULT_MAX_BODY_BYTES)
    if hasattr(app, "dispatch"):  # the callback path, as `driftline serve` wires it
        state.start = app.dispatch
    elif hasattr(app, "handle_now"):  # before it: the synchronous lone-request path
        state.fast = app.handle_now
    state.idle.set()
    app.watch_pending(lambda: state.pending)
    done = asyncio.Event()
    sent = 0
    answered = 0
    latencies: list[float] = []
    batch_sizes: Counter[int] = Counter()
    metrics_hist = app._metrics.batch_rows
    original_observe = metrics_hist.observe

    def observe(value: float) -> None:
        batch_sizes[int(value)] += 1
        original_observe(value)

    app._batcher._on_batch = observe  # type: ignore[union-attr]

    conns: list[http_core._Connection] = []
    started_at: list[float] = [0.0] * concurrency

    def send(i: int) -> None:
        nonlocal sent
        if sent >= requests:
            return
        sent += 1
        started_at[i] = CLOCK()
        conns[i].data_received(raw)

    def make(i: int) -> http_core._Connection:
        def on_response() -> None:
            nonlocal answered
            latencies.append(CLOCK() - started_at[i])
            answered += 1
            if answered >= requests:
                done.set()
            else:
                loop.call_soon(send, i)

        conn = http_core._Connection(state)
        conn.connection_made(FakeTransport(on_response))
        return conn

    conns.extend(make(i) for i in range(concurrency))
    gc_pauses: list[float] = []
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = CLOCK()
        elif info["generation"] >= 1:
            gc_pauses.append((CLOCK() - gc_started[0]) * 1e3)

    gc.callbacks.append(on_gc)
    cpu0 = time.process_time()
    for i in range(concurrency):
        send(i)
    await done.wait()
    cpu = time.process_time() - cpu0
    gc.callbacks.remove(on_gc)
    lat = np.array(latencies) * 1e3
    runs = sum(batch_sizes.values())
    return {
        "concurrency": concurrency,
        "requests": requests,
        "cpu_us_per_request": cpu / requests * 1e6,
        "latency_cpu_ms": {
            "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99)),
            "max": float(lat.max()),
        },
        "runs": runs,
        "mean_batch_rows": requests / runs if runs else 0.0,
        "batch_rows": dict(sorted(batch_sizes.items())),
        "gc_gen1_or_2_passes": len(gc_pauses),
        "gc_longest_pause_ms": max(gc_pauses, default=0.0),
        "_latencies": lat,
    }


async def stages(
    app: ModelServer,
    shipper: RecordShipper,
    metrics: ServerMetrics,
    body: bytes,
    n: int,
    repeats: int,
) -> dict[str, float]:
    runtime = app._runtime
    assert isinstance(runtime, OnnxRuntime)
    signature = runtime.signature
    policy = Policy()
    raw = _request_bytes(body)
    out: dict[str, float] = {}

    # HTTP parse: httptools feeding our connection's callbacks, without answering
    state = http_core.ServerState(app.handle, http_core.DEFAULT_MAX_BODY_BYTES)
    conn = http_core._Connection(state)
    conn.connection_made(FakeTransport(lambda: None))
    conn._busy = True

    def parse_http() -> None:
        conn.data_received(raw)
        conn._queue.clear()

    out["http_parse"] = per_call_us(parse_http, n, repeats)
    req = parse_infer_request(body, signature, policy)
    out["request_parse_validate"] = per_call_us(
        lambda: parse_infer_request(body, signature, policy), n, repeats
    )
    out["session_run"] = per_call_us(lambda: runtime.run(req.inputs), n, repeats)
    cold_n = max(50, n // 10)
    out["session_run_after_idle_sleep_median"] = after_pause_us(
        lambda: runtime.run(req.inputs), _idle_sleep, cold_n
    )
    out["session_run_after_cache_sweep_median"] = after_pause_us(
        lambda: runtime.run(req.inputs), _cache_sweep, cold_n
    )
    outputs = runtime.run(req.inputs)
    pairs = [(s, outputs[s.name]) for s in signature.outputs]
    out["response_encode"] = per_call_us(
        lambda: encode_infer_response("model", "1", req.id, pairs), n, repeats
    )

    def metric_updates() -> None:
        metrics.request_duration.observe(0.0003)
        metrics.count("ok")
        metrics.batch_rows.observe(1)

    out["metrics_updates"] = per_call_us(metric_updates, n, repeats)
    entry = Entry("id", 1, time.time(), 0.3, req.inputs, outputs)

    def record() -> None:
        shipper.add(entry)
        if shipper.queued_rows >= 4096:
            shipper._entries.clear()
            shipper._rows = 0

    out["record_enqueue"] = per_call_us(record, n, repeats)
    from driftline.serving.recorder import build_batch
    from driftline.serving.records import encode

    entries = [entry] * 256
    out["record_frame_encode_per_row"] = (
        per_call_us(lambda: encode(build_batch("model", "1", "stable", entries)), 20, repeats) / 256
    )
    response = http_core.Response(200, b"x" * 200)
    out["response_head_render"] = per_call_us(
        lambda: http_core.render_head(response, True), n, repeats
    )
    request = http_core.Request(
        "POST", "/v2/models/model/infer", "", {"content-type": "application/json"}, body
    )

    # the whole app for one request: through the batcher's queue and worker (what a request
    # arriving under load takes; its awaitable form costs a future and a task step on top), and,
    # where the server has it, the synchronous lone-request path
    app.watch_pending(lambda: 2)
    times: list[float] = []
    for _ in range(repeats):
        started = CLOCK()
        for _ in range(n):
            await app.handle(request)
        times.append((CLOCK() - started) / n * 1e6)
    out["app_queued_path"] = min(times)
    app.watch_pending(lambda: 1)
    times = []
    for _ in range(repeats):
        started = CLOCK()
        if hasattr(app, "dispatch"):  # the hand-over runs in the next loop turn
            sink: list[http_core.Response] = []
            for _ in range(n):
                app.dispatch(request, sink.append)
                await asyncio.sleep(0)
            sink.clear()
        elif hasattr(app, "handle_now"):
            for _ in range(n):
                app.handle_now(request)
        else:  # before the synchronous path existed: the alone path of handle()
            for _ in range(n):
                await app.handle(request)
        times.append((CLOCK() - started) / n * 1e6)
    out["app_lone_path"] = min(times)
    if hasattr(app, "dispatch"):
        replies: list[http_core.Response] = []
        lone_times: list[float] = []
        for _ in range(max(50, n // 10)):
            _idle_sleep()
            started = CLOCK()
            app.dispatch(request, replies.append)
            await asyncio.sleep(0)  # the hand-over: the lone request runs and replies
            lone_times.append((CLOCK() - started) * 1e6)
        out["app_lone_path_after_idle_sleep_median"] = float(np.median(lone_times))
    return out


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    model = args.work / "model.onnx"
    body = (args.work / "request.json").read_bytes()
    app, shipper, metrics = await build_app(model)
    shipper_task = asyncio.get_running_loop().create_task(shipper.run())
    frozen = hasattr(server_module, "_load_and_freeze")  # what `driftline serve` does
    if frozen:
        gc.collect()
        gc.freeze()
    report: dict[str, object] = {
        "python": sys.version.split()[0],
        "git": _git_head(),
        "gc_frozen_after_load": frozen,
        "fast_path": hasattr(app, "handle_now") or hasattr(app, "dispatch"),
        "callback_dispatch": hasattr(app, "dispatch"),
        "loop": type(asyncio.get_running_loop()).__module__,
        "stages_us": await stages(app, shipper, metrics, body, args.n, args.repeats),
    }
    raw = _request_bytes(body)
    loops = []
    for c in args.levels:
        rounds = [await closed_loop(app, raw, c, args.requests) for _ in range(args.repeats)]
        best = min(rounds, key=lambda r: float(r["cpu_us_per_request"]))  # type: ignore[arg-type]
        pooled = np.concatenate([r.pop("_latencies") for r in rounds])  # type: ignore[misc]
        for r in rounds:
            r.pop("_latencies", None)
        loops.append(
            {
                **best,
                "rounds": len(rounds),
                "latency_cpu_ms": {
                    "p50": float(np.percentile(pooled, 50)),
                    "p99": float(np.percentile(pooled, 99)),
                    "max": float(pooled.max()),
                },
                "gc_gen1_or_2_passes": sum(int(r["gc_gen1_or_2_passes"]) for r in rounds),  # type: ignore[call-overload]
                "gc_longest_pause_ms": max(float(r["gc_longest_pause_ms"]) for r in rounds),  # type: ignore[arg-type]
            }
        )
    report["closed_loop"] = loops
    await shipper.close()
    await shipper_task
    await app.close()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (~10 s)")
    parser.add_argument(
        "--levels", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 64]
    )
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    args = parser.parse_args()
    # many short rounds, minimum kept: on a shared box some rounds run undisturbed
    args.n, args.repeats, args.requests = (300, 9, 3000) if args.quick else (500, 25, 6000)
    if not (args.work / "model.onnx").exists() or not (args.work / "request.json").exists():
        subprocess.run([sys.executable, str(HERE / "model.py"), str(args.work)], check=True)
    report = http_core.run_event_loop(main_async(args))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
