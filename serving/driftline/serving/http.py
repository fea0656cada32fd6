"""A lean HTTP/1.1 server core: ``asyncio.Protocol`` over httptools' parser, one async handler.

Who uses it: the model server (:mod:`driftline.serving.server`) and the router
(``driftline route``) build their apps as one ``Handler`` (``Request -> Awaitable[Response]``) and
run it with :func:`serve` (or :class:`HttpServer` when they need the bound port or a shutdown
hook). Nothing here knows about models, the inference protocol or metrics.

Why not a framework: on the 2-core target machine the request path *is* the cost. Measured
(``bench/serving/stacks.py``, hello-world JSON, one server core): this core serves about 2x the
requests of uvicorn + httptools with a bare ASGI app, because it skips the ASGI message dicts, the
per-request scope and the extra tasks. It does exactly what the data plane needs and no more:

- HTTP/1.1 keep-alive and pipelining (requests of one connection are answered in order),
  HTTP/1.0, ``Content-Length`` and chunked request bodies, ``Expect: 100-continue``;
- a body limit checked on the declared length *before* the body is read, and again while it
  streams in (``413`` and the connection is closed);
- malformed HTTP answered with ``400`` and the connection closed;
- a handler that raises is answered with ``500 {"error": "internal error"}`` and logged once:
  handlers are expected to map their own errors, this is the last line of defence;
- graceful shutdown: stop accepting, close idle keep-alive connections, let in-flight requests
  finish (up to a deadline), then close the rest;
- an optional callback path (``HttpServer(handler, start=...)``): every request is first offered
  to a function that takes it with a ``respond`` callback and answers whenever its own I/O
  completes, with no task or coroutine per request (the router forwards this way; the model
  server answers every request this way, a queued inference when its batch has run).

Contract for handlers: ``Request.headers`` has lower-cased names (last value wins); ``Response``
bodies are bytes; ``Content-Length`` and ``Connection`` are set here, never by the handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Final, TypeVar, cast

import httptools

log = logging.getLogger(__name__)
T = TypeVar("T")

JSON: Final = "application/json"
TEXT: Final = "text/plain; charset=utf-8"

DEFAULT_MAX_BODY_BYTES: Final = 16 * 1024 * 1024
"""Largest request body accepted by default (16 MiB); larger bodies get ``413``."""

MAX_PIPELINED: Final = 64
"""Requests one connection may queue before we stop reading from it (back-pressure)."""

_STATUS_LINES: Final = {
    s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode("latin-1") for s in HTTPStatus
}


@dataclass(slots=True)
class Request:
    """One parsed HTTP request.

    Attributes:
        method: upper-case method, e.g. ``GET``.
        path: the URL path, percent-decoding NOT applied (routes here are plain ASCII).
        query: the raw query string without ``?`` (empty when absent).
        headers: header names lower-cased; when a header repeats, the last value wins.
        body: the whole request body.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class Response:
    """One HTTP response.

    Attributes:
        status: the status code.
        body: the body bytes.
        content_type: the ``Content-Type`` header value (omitted when empty).
        headers: extra ``(name, value)`` headers; never ``Content-Length`` or ``Connection``.
        raw_headers: more headers, already rendered (``name: value`` CRLF lines, latin-1), written
            after ``headers`` as they are: a proxy passes on what it received without decoding it.
    """

    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()
    raw_headers: bytes = b""


Handler = Callable[[Request], Awaitable[Response]]
"""An app: maps a request to a response. Must not raise for bad input (answer 4xx instead)."""

Respond = Callable[[Response], None]
"""Answers the request a :data:`StartHandler` took; called exactly once per taken request."""

StartHandler = Callable[[Request, Respond], bool]
"""An app's callback path (optional, see :class:`HttpServer`): True when it took the request (it
then calls ``respond`` exactly once, now or later, from the event loop's thread), False to hand
the request to the :data:`Handler`. Must not raise for bad input."""


def json_error(status: int, message: str) -> Response:
    """A ``{"error": message}`` JSON response with ``status`` (the inference protocol's shape)."""
    import orjson

    return Response(status, orjson.dumps({"error": message}))


def render_head(response: Response, keep_alive: bool) -> bytes:
    """The status line and headers of ``response``, ending with the blank line (pure).

    Raises:
        ValueError: when ``response.status`` is not a known HTTP status.
    """
    line = _STATUS_LINES.get(response.status)
    if line is None:
        raise ValueError(f"unknown HTTP status {response.status}")
    parts = [line]
    if response.content_type:
        parts.append(b"content-type: " + response.content_type.encode("latin-1") + b"\r\n")
    for name, value in response.headers:
        parts.append(f"{name}: {value}\r\n".encode("latin-1"))
    if response.raw_headers:
        parts.append(response.raw_headers)
    parts.append(b"content-length: %d\r\n" % len(response.body))
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


@dataclass(slots=True)
class _Pending:
    request: Request
    keep_alive: bool


@dataclass
class ServerState:
    """What :class:`HttpServer` shares with its connections (not part of the public contract)."""

    handler: Handler
    max_body_bytes: int
    start: StartHandler | None = None
    connections: set[_Connection] = field(default_factory=set)
    closing: bool = False
    pending: int = 0
    """Requests parsed and not yet answered, over all connections."""
    idle: asyncio.Event = field(default_factory=asyncio.Event)


class _Connection(asyncio.Protocol):
    """One client connection: parse, queue, answer in order."""

    __slots__ = (
        "_body",
        "_busy",
        "_closed",
        "_headers",
        "_loop",
        "_parser",
        "_paused",
        "_queue",
        "_respond",
        "_starting",
        "_state",
        "_too_large",
        "_transport",
        "_url",
    )

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._queue: deque[_Pending] = deque()
        self._busy = False
        self._closed = False
        self._paused = False
        self._too_large = False
        self._starting = False
        self._respond: Respond = self._responded

    # ---------------------------------------------------------------- asyncio.Protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._state.connections.add(self)
        self._state.idle.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._state.pending -= len(self._queue)  # parsed, never to be answered
        self._queue.clear()
        self._state.connections.discard(self)
        if not self._state.connections:
            self._state.idle.set()

    def data_received(self, data: bytes) -> None:
        if self._too_large:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(HTTPStatus.BAD_REQUEST, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            if not self._too_large:
                self._fail(HTTPStatus.BAD_REQUEST, f"malformed HTTP request: {exc}")

    # ---------------------------------------------------------------- httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        declared = self._headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._state.max_body_bytes:
            self._reject_too_large()
            return
        if self._headers.get("expect", "").lower() == "100-continue" and self._transport:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        if sum(map(len, self._body)) > self._state.max_body_bytes:
            self._reject_too_large()

    def on_message_complete(self) -> None:
        if self._too_large:
            return
        url = httptools.parse_url(self._url) if self._url else None
        path = url.path.decode("latin-1") if url is not None and url.path else "/"
        query = url.query.decode("latin-1") if url is not None and url.query else ""
        method = self._parser.get_method().decode("latin-1")
        request = Request(method, path, query, self._headers, b"".join(self._body))
        keep_alive = self._parser.should_keep_alive() and not self._state.closing
        self._queue.append(_Pending(request, keep_alive))
        self._state.pending += 1
        if len(self._queue) >= MAX_PIPELINED and self._transport and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        if not self._busy:
            self._busy = True
            if self._state.start is not None:
                self._start_next()
            else:
                self._loop.create_task(self._drain())

    # ---------------------------------------------------------------- answering
    def _start_next(self) -> None:
        """Offer queued requests, in order, to the app's callback path.

        A request it takes stays at the head of the queue until :meth:`_responded` answers it;
        one it declines, and every one after it, go to :meth:`_drain`.
        """
        start = self._state.start
        assert start is not None
        while self._queue and not self._closed:
            pending = self._queue[0]
            self._starting = True
            try:
                taken = start(pending.request, self._respond)
            except Exception:  # the last-resort mapper: handlers map their own errors
                log.exception(
                    "handler failed on %s %s", pending.request.method, pending.request.path
                )
                if self._queue and self._queue[0] is pending:  # not answered yet: answer 500
                    self._queue.popleft()
                    if not self._answer(
                        pending, json_error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
                    ):
                        break
                continue
            finally:
                self._starting = False
            if not taken:
                self._loop.create_task(self._drain())  # still busy: the task owns the queue
                return
            if self._queue and self._queue[0] is pending:
                return  # answered later, through _responded
        self._busy = False
        if self._state.closing and not self._queue:
            self._close()

    def _responded(self, response: Response) -> None:
        """The ``respond`` callback of the callback path: answer the queue head, go on."""
        if self._closed or not self._queue:
            return  # the connection went away while the app was working
        if not self._answer(self._queue.popleft(), response):
            return
        if not self._starting:  # called later, from the app's I/O: continue with the queue
            self._start_next()

    async def _drain(self) -> None:
        """Answer queued requests in order through the async handler; one task at a time."""
        try:
            while self._queue and not self._closed:
                pending = self._queue.popleft()
                try:
                    response = await self._state.handler(pending.request)
                except Exception:  # the last-resort mapper: handlers map their own errors
                    log.exception(
                        "handler failed on %s %s", pending.request.method, pending.request.path
                    )
                    response = json_error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
                if not self._answer(pending, response):
                    return
        finally:
            self._busy = False
            if self._state.closing and not self._queue:
                self._close()

    def _answer(self, pending: _Pending, response: Response) -> bool:
        """Write one answer; False when the connection is now closed (no keep-alive)."""
        keep_alive = pending.keep_alive and not self._state.closing
        self._state.pending -= 1
        self._write(response, keep_alive)
        if not keep_alive:
            self._close()
            return False
        if self._paused and len(self._queue) < MAX_PIPELINED // 2 and self._transport:
            self._paused = False
            self._transport.resume_reading()
        return True

    def _write(self, response: Response, keep_alive: bool) -> None:
        if self._transport is None or self._closed:
            return
        head = render_head(response, keep_alive)
        self._transport.write(head + response.body if len(response.body) < 65536 else head)
        if len(response.body) >= 65536:
            self._transport.write(response.body)

    def _reject_too_large(self) -> None:
        self._too_large = True
        self._body = []
        self._fail(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"request body exceeds the limit of {self._state.max_body_bytes} bytes",
        )

    def _fail(self, status: HTTPStatus, message: str) -> None:
        """Answer a request we could not parse or accept, then close the connection."""
        self._state.pending -= len(self._queue)
        self._queue.clear()
        self._write(json_error(status, message), keep_alive=False)
        self._close()

    def _close(self) -> None:
        if self._transport is not None and not self._closed:
            self._closed = True
            self._transport.close()

    def close_if_idle(self) -> None:
        """Close now when no request is being answered (used by shutdown)."""
        if not self._busy and not self._queue:
            self._close()

    def abort(self) -> None:
        """Close immediately, dropping whatever is in flight (shutdown deadline passed)."""
        if self._transport is not None:
            self._closed = True
            self._transport.abort()


class HttpServer:
    """A listening server running one :data:`Handler`.

    Usage::

        server = HttpServer(handler, max_body_bytes=1 << 20)
        await server.start("127.0.0.1", 0)      # port 0: pick a free port
        print(server.port)
        ...
        await server.shutdown(timeout_s=10)     # stop accepting, finish in-flight, close
    """

    def __init__(
        self,
        handler: Handler,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        start: StartHandler | None = None,
    ) -> None:
        """Create a server for ``handler``; nothing is bound until :meth:`start`.

        Args:
            handler: the app.
            max_body_bytes: largest request body accepted (``413`` beyond).
            start: the app's optional callback path. When given,
                every request is first offered to it with a ``respond`` callback; a request it
                takes is answered when it calls ``respond`` (no task per request), one it
                declines goes to ``handler``. Answers stay in request order per connection.
        """
        if max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be positive")
        self._start = start
        self._handler = handler
        self._max_body_bytes = max_body_bytes
        self._server: asyncio.Server | None = None
        self._state: ServerState | None = None

    @property
    def pending(self) -> int:
        """Requests received (fully parsed) and not yet answered, over all connections.

        An app can read it to tell a lone request from a burst: the model server runs a lone
        request at once instead of queueing it for the batcher (it reads it in a ``call_soon``
        callback, once the loop has read every request that arrived together).
        """
        return self._state.pending if self._state is not None else 0

    @property
    def port(self) -> int:
        """The bound TCP port (after :meth:`start`)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str, port: int, *, backlog: int = 2048) -> None:
        """Bind and start accepting connections."""
        state = ServerState(self._handler, self._max_body_bytes, self._start)
        state.idle.set()
        self._state = state
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(state), host, port, backlog=backlog, reuse_address=True
        )

    async def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop accepting, close idle connections, wait for in-flight answers, close the rest.

        Args:
            timeout_s: how long in-flight requests may take before their connections are aborted.
        """
        if self._server is None or self._state is None:
            return
        state = self._state
        state.closing = True
        self._server.close()
        for conn in list(state.connections):
            conn.close_if_idle()
        try:
            await asyncio.wait_for(state.idle.wait(), timeout_s)
        except TimeoutError:
            log.warning(
                "shutdown: %d connection(s) still busy after %.1fs; aborting them",
                len(state.connections),
                timeout_s,
            )
            for conn in list(state.connections):
                conn.abort()
        await self._server.wait_closed()


def run_event_loop(main: Coroutine[object, object, T]) -> T:
    """Run ``main`` to completion on uvloop's event loop (the standard loop without uvloop).

    uvloop's libuv transports cut the per-request cost of the loop itself; everything here also
    works on the standard loop.
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a declared dependency
        return asyncio.run(main)
    return uvloop.run(main)
