"""The model server app: the OIP v2 route table, the one error mapper, and the process lifecycle.

Who uses it: ``driftline serve`` calls :func:`run` with its :class:`ServerSettings`; tests build a
:class:`ModelServer` over a :class:`~driftline.serving.runtime.FakeRuntime` or a real
:class:`~driftline.serving.runtime.OnnxRuntime` and call :meth:`ModelServer.handle` in-process,
or start the whole process.

The request path, in order: route (exact-path table for the served model, then the pattern table
:data:`ROUTES` for everything else) -> readiness -> ``protocol.parse_infer_request`` ->
``batching.Batcher`` -> ``protocol.encode_infer_response`` -> metrics and prediction record.
One way through it, :meth:`ModelServer.dispatch`, called synchronously by the HTTP core with a
reply callback: probes, metadata and errors are answered at once; a validated inference request
goes to the batcher at the end of the loop iteration (with every other request parsed with it)
with a completion callback: alone (nothing else pending, batcher idle) it runs there and then,
otherwise it is answered right after its batch runs (no task or future per request).
:meth:`ModelServer.handle` is its awaitable form for in-process callers. Every
:class:`~driftline.serving.errors.ServingError` becomes ``{"error": message}`` with its status
in :meth:`ModelServer.dispatch`, the only mapper.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from importlib import metadata
from typing import Final

import numpy as np
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from driftline.serving.batching import Batcher, Done
from driftline.serving.errors import (
    InferenceFailed,
    InvalidInput,
    MethodNotAllowed,
    ModelNotFound,
    ModelNotReady,
    ServingError,
)
from driftline.serving.http import HttpServer, Request, Respond, Response, json_error
from driftline.serving.metrics import ServerMetrics
from driftline.serving.protocol import (
    HEADER_LENGTH,
    Array,
    InferRequest,
    Policy,
    encode_infer_response,
    model_metadata,
    parse_infer_request,
)
from driftline.serving.recorder import Entry, RecordShipper, http_post
from driftline.serving.runtime import ModelLoadError, ModelRuntime, OnnxRuntime, SessionConfig
from driftline.serving.settings import ServerSettings

log = logging.getLogger(__name__)

SERVER_NAME: Final = "driftline"
EXTENSIONS: Final = ("binary_tensor_data",)
"""Protocol extensions advertised by ``GET /v2`` (Triton's binary tensor extension)."""

ROUTES: Final = (
    ("GET", "/v2", "server_metadata"),
    ("GET", "/v2/health/live", "live"),
    ("GET", "/v2/health/ready", "ready"),
    ("GET", "/v2/models/{name}", "model_metadata"),
    ("GET", "/v2/models/{name}/versions/{version}", "model_metadata"),
    ("GET", "/v2/models/{name}/ready", "model_ready"),
    ("GET", "/v2/models/{name}/versions/{version}/ready", "model_ready"),
    ("POST", "/v2/models/{name}/infer", "infer"),
    ("POST", "/v2/models/{name}/versions/{version}/infer", "infer"),
    ("GET", "/metrics", "metrics"),
)
"""The whole URL table: (method, path pattern, endpoint). ``{x}`` matches one path segment."""


@dataclass(frozen=True, slots=True)
class Match:
    """A routed request: the endpoint and the path parameters."""

    endpoint: str
    params: Mapping[str, str]


def match_route(method: str, path: str) -> Match:
    """Route ``method`` + ``path`` through :data:`ROUTES` (pure).

    Raises:
        ModelNotFound: no pattern matches the path (404, the protocol's error for unknown paths).
        MethodNotAllowed: a pattern matches the path but not for ``method``.
    """
    segments = path.split("/")
    allowed: list[str] = []
    for verb, pattern, endpoint in ROUTES:
        parts = pattern.split("/")
        if len(parts) != len(segments):
            continue
        params: dict[str, str] = {}
        for want, got in zip(parts, segments, strict=True):
            if want.startswith("{"):
                if not got:
                    break
                params[want[1:-1]] = got
            elif want != got:
                break
        else:
            if verb == method:
                return Match(endpoint, params)
            allowed.append(verb)
    if allowed:
        raise MethodNotAllowed(f"{method} is not allowed on {path} (allowed: {', '.join(allowed)})")
    raise ModelNotFound(f"no such endpoint: {path}")


_OUTCOME: Final = {
    HTTPStatus.BAD_REQUEST: "invalid",
    HTTPStatus.NOT_FOUND: "not_found",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "too_large",
    HTTPStatus.SERVICE_UNAVAILABLE: "not_ready",
}


def _server_version() -> str:
    try:
        return metadata.version("driftline")
    except metadata.PackageNotFoundError:  # running from a source tree without an install
        return "0"


class ModelServer:
    """One served model: the HTTP handler (:meth:`handle`) and its model lifecycle."""

    def __init__(
        self,
        runtime: ModelRuntime,
        metrics: ServerMetrics,
        registry: CollectorRegistry,
        *,
        name: str,
        version: str,
        policy: Policy,
        max_batch_size: int,
        max_delay_s: float,
        shipper: RecordShipper | None = None,
    ) -> None:
        self._runtime = runtime
        self._metrics = metrics
        self._registry = registry
        self._name = name
        self._version = version
        self._policy = policy
        self._max_batch_size = max_batch_size
        self._max_delay_s = max_delay_s
        self._shipper = shipper
        self._batcher: Batcher | None = None
        self._pending: Callable[[], int] = lambda: 2
        self._fresh: list[tuple[Batcher, InferRequest, Done]] = []
        self._not_ready_reason = "the model is loading"
        self._inflight = 0
        self._ids = 0
        self._boot = f"{os.getpid():x}{int(time.time()) & 0xFFFFFF:06x}"
        self._server_meta = orjson.dumps(
            {"name": SERVER_NAME, "version": _server_version(), "extensions": list(EXTENSIONS)}
        )
        self._model_meta = b""
        # the served model's own paths, resolved without pattern matching (the hot path)
        self._exact: dict[tuple[str, str], Match] = {}
        for base, params in (
            (f"/v2/models/{name}", {"name": name}),
            (f"/v2/models/{name}/versions/{version}", {"name": name, "version": version}),
        ):
            self._exact[("POST", base + "/infer")] = Match("infer", params)
            self._exact[("GET", base)] = Match("model_metadata", params)
            self._exact[("GET", base + "/ready")] = Match("model_ready", params)
        metrics.watch(lambda: self.queued_rows, lambda: self._inflight)

    def watch_pending(self, pending: Callable[[], int]) -> None:
        """Read how many requests the HTTP server holds (:attr:`HttpServer.pending`).

        With exactly one (this one), an idle batcher runs it at once instead of queueing it.
        Without a probe every request goes through the queue.
        """
        self._pending = pending

    @property
    def ready(self) -> bool:
        """Whether the model is loaded, verified and warmed up."""
        return self._batcher is not None

    @property
    def queued_rows(self) -> int:
        """Rows waiting for a model run."""
        return self._batcher.queued_rows if self._batcher is not None else 0

    # ------------------------------------------------------------------------------ lifecycle
    async def load(self) -> bool:
        """Load, verify and warm up the model, then start batching.

        Returns False (after one log line) on failure, leaving the server up but not ready.
        """
        try:
            await self._runtime.load()
        except ModelLoadError as exc:
            self._not_ready_reason = f"the model failed to load: {exc}"
            log.error("model %s version %s is not ready: %s", self._name, self._version, exc)
            return False
        signature = self._runtime.signature
        self._model_meta = orjson.dumps(model_metadata(self._name, self._version, signature))
        batcher = Batcher(
            self._runtime,
            max_batch_size=self._max_batch_size,
            max_delay_s=self._max_delay_s,
            batchable=signature.batchable,
            on_batch=self._metrics.batch_rows.observe,
        )
        batcher.start()
        self._batcher = batcher
        self._metrics.model_ready.set(1)
        log.info(
            "model %s version %s is ready (batchable: %s)",
            self._name,
            self._version,
            signature.batchable,
        )
        return True

    async def close(self) -> None:
        """Finish queued runs, stop batching and release the model (after HTTP shut down)."""
        batcher, self._batcher = self._batcher, None
        self._not_ready_reason = "the server is shutting down"
        self._metrics.model_ready.set(0)
        if batcher is not None:
            await batcher.close()
        await self._runtime.unload()

    # ------------------------------------------------------------------------------ handling
    def dispatch(self, request: Request, reply: Respond) -> bool:
        """Take one HTTP request and answer it through ``reply``, now or when its batch ran.

        The one request path (the HTTP core's callback path, ``HttpServer(start=...)``): probes,
        metadata and errors are answered before this returns; an inference request is validated
        here, then handed to the batcher with a completion callback that encodes the answer,
        counts it, records it and replies (no task or future per request). The hand-over waits
        for the end of this loop iteration's reads (one ``call_soon`` for all requests parsed
        together), so that the batcher can tell a lone request, which runs at once, from a
        burst, which forms a batch. ``reply`` is called exactly once. With :meth:`handle` (its
        awaitable form), the only place a :class:`ServingError` becomes a response.

        Returns:
            True: every request is taken (the HTTP core's contract for its callback path).
        """
        try:
            route = self._exact.get((request.method, request.path))
            if route is None:
                route = match_route(request.method, request.path)
            if route.endpoint == "infer":
                self._infer(request, route.params, reply)
            else:
                reply(self._get(route))
        except ServingError as exc:
            reply(json_error(exc.status, exc.message))
        return True

    def _hand_over(self) -> None:
        """Pass the requests validated in this loop iteration to the batcher.

        Alone (the HTTP server holds just this one request) it runs at once; otherwise they
        queue and the worker runs them as one batch.
        """
        fresh, self._fresh = self._fresh, []
        alone = len(fresh) == 1 and self._pending() <= 1
        for batcher, req, done in fresh:
            batcher.dispatch(req.inputs, req.rows, done, alone=alone)

    async def handle(self, request: Request) -> Response:
        """Answer one HTTP request (the awaitable form of :meth:`dispatch`, same answers)."""
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

        def reply(response: Response) -> None:
            if not future.done():  # the awaiting caller may have been cancelled
                future.set_result(response)

        self.dispatch(request, reply)
        return await future

    def _check_model(self, params: Mapping[str, str]) -> None:
        name = params.get("name")
        if name != self._name:
            raise ModelNotFound(f"model {name!r} is not served here (serving {self._name!r})")
        version = params.get("version")
        if version is not None and version != self._version:
            raise ModelNotFound(
                f"model {self._name!r} has no version {version!r} (serving {self._version!r})"
            )

    def _get(self, route: Match) -> Response:
        endpoint = route.endpoint
        if endpoint == "live":
            return Response(200, b'{"live":true}')
        if endpoint == "ready":
            if not self.ready:
                raise ModelNotReady(f"server is not ready: {self._not_ready_reason}")
            return Response(200, b'{"ready":true}')
        if endpoint == "server_metadata":
            return Response(200, self._server_meta)
        if endpoint == "metrics":
            return Response(200, generate_latest(self._registry), CONTENT_TYPE_LATEST)
        self._check_model(route.params)
        if endpoint == "model_ready":
            if not self.ready:
                raise ModelNotReady(f"model {self._name!r} is not ready: {self._not_ready_reason}")
            return Response(200, orjson.dumps({"name": self._name, "ready": True}))
        if not self.ready:  # model_metadata needs the loaded signature
            raise ModelNotReady(f"model {self._name!r} is not ready: {self._not_ready_reason}")
        return Response(200, self._model_meta)

    def _parse(self, request: Request) -> InferRequest:
        """The request's body parsed and validated against the model (raises InvalidInput)."""
        headers = request.headers
        header_length = _header_length(headers) if HEADER_LENGTH in headers else None
        encoding = headers.get("content-encoding")
        if encoding is not None and encoding.lower() != "identity":
            raise InvalidInput(f"Content-Encoding {encoding.lower()!r} is not supported")
        return parse_infer_request(
            request.body, self._runtime.signature, self._policy, header_length=header_length
        )

    def _respond(self, req: InferRequest, outputs: dict[str, Array], started: float) -> Response:
        """Encode the answer, then count it and hand its record to the shipper."""
        signature = self._runtime.signature
        specs = (
            signature.outputs
            if req.outputs is None
            else tuple(s for n in req.outputs for s in signature.outputs if s.name == n)
        )
        body, json_length = encode_infer_response(
            self._name,
            self._version,
            req.id,
            [(s, outputs[s.name]) for s in specs],
            req.binary_outputs,
        )
        latency = time.perf_counter() - started
        self._metrics.observe_ok(latency)
        if self._shipper is not None:
            self._record(req.id, req.rows, req.inputs, outputs, latency, signature.batchable)
        if json_length is None:
            return Response(200, body)
        return Response(
            200,
            body,
            "application/octet-stream",
            (("inference-header-content-length", str(json_length)),),
        )

    def _infer(self, request: Request, params: Mapping[str, str], reply: Respond) -> None:
        """Validate, then queue for :meth:`_hand_over`; the completion encodes and replies."""
        started = time.perf_counter()
        try:
            self._check_model(params)
            batcher = self._batcher
            if batcher is None:
                raise ModelNotReady(f"model {self._name!r} is not ready: {self._not_ready_reason}")
            req = self._parse(request)
        except ServingError as exc:
            self._metrics.count(_OUTCOME.get(exc.status, "error"))
            raise
        self._inflight += 1

        def done(result: dict[str, Array] | InferenceFailed) -> None:
            self._inflight -= 1
            if isinstance(result, InferenceFailed):
                self._metrics.count("error")
                reply(json_error(result.status, result.message))
                return
            try:
                response = self._respond(req, result, started)
            except Exception:  # the boundary of a deferred answer: the HTTP core cannot map it
                log.exception("encoding the answer to %s failed", request.path)
                self._metrics.count("error")
                response = json_error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
            reply(response)

        self._fresh.append((batcher, req, done))
        if len(self._fresh) == 1:
            asyncio.get_running_loop().call_soon(self._hand_over)

    def _record(
        self,
        request_id: str | None,
        rows: int,
        inputs: dict[str, Array],
        outputs: dict[str, Array],
        latency_s: float,
        batchable: bool,
    ) -> None:
        assert self._shipper is not None
        if request_id is None:
            self._ids += 1
            request_id = f"{self._boot}-{self._ids}"
        if not batchable:  # records are row-aligned: give unbatched tensors a rows axis of 1
            inputs = {n: a[np.newaxis] for n, a in inputs.items()}
            outputs = {n: a[np.newaxis] for n, a in outputs.items()}
        self._shipper.add(Entry(request_id, rows, time.time(), latency_s * 1000.0, inputs, outputs))


def _header_length(headers: Mapping[str, str]) -> int | None:
    raw = headers.get(HEADER_LENGTH)
    if raw is None:
        return None
    if not raw.isdigit():
        raise InvalidInput("Inference-Header-Content-Length must be a non-negative integer")
    return int(raw)


# ---------------------------------------------------------------------------------- the process
@dataclass(frozen=True)
class Wiring:
    """What :func:`build` assembles: the app, its record shipper and the shipper's client closer."""

    app: ModelServer
    shipper: RecordShipper | None
    close_client: Callable[[], Awaitable[None]] | None


def build(settings: ServerSettings, registry: CollectorRegistry) -> Wiring:
    """Wire a :class:`ModelServer` (and its record shipper) from settings over ``registry``."""
    metrics = ServerMetrics(registry, settings.name, settings.version)
    runtime = OnnxRuntime(
        settings.model,
        SessionConfig(
            intra_op_threads=settings.intra_op_threads,
            inter_op_threads=settings.inter_op_threads,
            graph_optimization=settings.graph_optimization,
            offload=settings.offload,
        ),
    )
    shipper = None
    close_client = None
    if settings.monitor_url is not None:
        post, close_client = http_post(settings.monitor_url)
        shipper = RecordShipper(
            post,
            metrics,
            model=settings.name,
            version=settings.version,
            variant=settings.variant,
            max_rows=settings.records_queue_rows,
            flush_rows=settings.records_flush_rows,
            flush_interval_s=settings.records_flush_ms / 1000.0,
        )
    app = ModelServer(
        runtime,
        metrics,
        registry,
        name=settings.name,
        version=settings.version,
        policy=Policy(
            max_rows=settings.max_request_rows,
            allow_non_finite=settings.non_finite == "allow",
        ),
        max_batch_size=settings.max_batch_size,
        max_delay_s=settings.max_delay_ms / 1000.0,
        shipper=shipper,
    )
    return Wiring(app, shipper, close_client)


async def _load_and_freeze(app: ModelServer) -> None:
    """Load the model, then move every object alive after start-up out of the collector's reach.

    Why: the process holds some 50k long-lived objects (numpy, onnxruntime, prometheus, pydantic);
    each full garbage collection traversed all of them, a 20-45 ms stall of the event loop that
    every in-flight request paid (it was the p99 at concurrency 64, bench/results/
    serving-profile.md). Frozen, they are never traversed again; collections then only see
    objects made per request (a fraction of a millisecond).
    """
    if await app.load():
        gc.collect()
        gc.freeze()


async def run(settings: ServerSettings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully.

    Order: bind and answer probes at once (live; not ready) -> load and warm the model (ready) ->
    on SIGTERM stop accepting, finish in-flight requests, finish queued runs, flush records, exit.
    """
    registry = CollectorRegistry()
    wiring = build(settings, registry)
    app, shipper = wiring.app, wiring.shipper
    http = HttpServer(app.handle, max_body_bytes=settings.max_body_bytes, start=app.dispatch)
    app.watch_pending(lambda: http.pending)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await http.start(settings.host, settings.port)
    log.info(
        "listening on http://%s:%d (model %s version %s)",
        settings.host,
        http.port,
        settings.name,
        settings.version,
    )
    shipper_task = loop.create_task(shipper.run()) if shipper is not None else None
    load_task = loop.create_task(_load_and_freeze(app))
    await stop.wait()
    log.info("shutting down: finishing in-flight requests")
    load_task.cancel()
    await http.shutdown(settings.shutdown_timeout_s)
    await app.close()
    if shipper is not None and shipper_task is not None:
        await shipper.close()
        await shipper_task
    if wiring.close_client is not None:
        await wiring.close_client()
    log.info("stopped")
