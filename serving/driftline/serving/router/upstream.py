"""Keep-alive HTTP/1.1 client pools to the upstream model servers, with passive health.

Who uses it: the proxy (:mod:`driftline.serving.router.proxy`) sends every forwarded and mirrored
request through an :class:`EndpointPool` (one per upstream ``host:port``, shared by every variant
and every table that names it) chosen by :meth:`VariantUpstreams.choose`.

Why a client of our own: the router's cost per request is its whole overhead budget (the
benchmark's target is <= 1 ms added at p50 on a loaded 2-core box). Measured in
``bench/router/clients.py``: an ``asyncio.Protocol`` over httptools' response parser, writing
each request in one ``transport.write`` and reusing idle connections, costs a fraction of aiohttp's
client per request, and httpx is slower still. It does exactly what the router needs: one request
at a time per connection (no pipelining), ``Content-Length`` and chunked responses, keep-alive.

Error contract, which decides retries:

- :class:`ConnectFailed`: no byte of the request left this process (refused, unreachable,
  connect timeout). Safe to retry anywhere; ejects the endpoint (:mod:`.health`).
- :class:`UpstreamTimeout`: the request was sent and no complete answer came in time.
- :class:`UpstreamFailed`: the request was sent and the connection broke or the answer was not
  HTTP. Not retried: inference has side effects downstream (prediction records, feedback joins).

A pooled connection that the server closed while idle (keep-alive timeout) is detected either
before use (``connection_lost`` already ran) or by an EOF before any response byte; the request is
then re-sent once on a fresh connection to the same endpoint, as every keep-alive client must.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, cast

import httptools

from driftline.serving.router.health import (
    HEALTHY,
    EndpointHealth,
    HealthPolicy,
    available,
    on_connect_failure,
    on_success,
)
from driftline.serving.router.table import Endpoint

HOP_BY_HOP: Final = frozenset(
    [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    ]
)
"""Headers that describe one connection, never forwarded in either direction (RFC 9110 7.6.1)."""
_HOP_BY_HOP_BYTES: Final = frozenset(name.encode("latin-1") for name in HOP_BY_HOP)


class UpstreamError(Exception):
    """Base of the client's errors."""


class ConnectFailed(UpstreamError):
    """No connection could be made; nothing was sent, so the request may go elsewhere."""


class UpstreamFailed(UpstreamError):
    """The request was sent but no valid answer came back (connection broken, not HTTP)."""


class UpstreamTimeout(UpstreamFailed):
    """The request was sent but the whole answer did not arrive within the timeout."""


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """One upstream answer.

    Attributes:
        status: the HTTP status code.
        content_type: the ``Content-Type`` value ("" when absent).
        raw_headers: the other end-to-end headers as received (``name: value`` CRLF lines,
            hop-by-hop ones and ``Content-Type`` left out): passed on without decoding.
        body: the whole body.
    """

    status: int
    content_type: str
    raw_headers: bytes
    body: bytes

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """The end-to-end headers decoded: names lower-cased, in arrival order."""
        lines = self.raw_headers.decode("latin-1").split("\r\n")
        pairs = (line.partition(":") for line in lines if line)
        return tuple((name.strip().lower(), value.strip()) for name, _, value in pairs)


SWEEP_S: Final = 0.02
"""How often in-flight requests' deadlines are checked: timeouts fire up to this much late."""

Ejected = Callable[["EndpointPool"], None]
Done = Callable[["UpstreamResponse | UpstreamError"], None]
"""Receives the outcome of :meth:`EndpointPool.send`: the answer, or the error (never raised)."""

log = logging.getLogger(__name__)


class _Connection(asyncio.Protocol):
    """One client connection: one request in flight at a time, answered through a callback."""

    def __init__(self, pool: EndpointPool) -> None:
        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._done: Done | None = None
        self._data = b""
        self._timeout_s = 0.0
        self._fresh = False
        self.deadline = 0.0
        """Loop time by which the answer must be complete (checked by the pool's sweep)."""
        self._headers: list[bytes] = []
        self._content_type = ""
        self._body: list[bytes] = []
        self._got_bytes = False
        self.closed = False
        self.keep_alive = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self._transport = cast("asyncio.Transport", transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._done is None:
            return
        if self._got_bytes:
            self._finish(UpstreamFailed("upstream closed the connection mid-answer"))
        elif self._fresh:
            self._finish(UpstreamFailed("upstream closed a new connection without answering"))
        else:  # a reused connection the server had closed while idle: re-send once, fresh
            done, data, timeout_s = self._done, self._data, self._timeout_s
            self._clear()
            self._pool.resend(self, data, timeout_s, done)

    def data_received(self, data: bytes) -> None:
        if self._done is None:  # nothing asked: an unsolicited answer makes the connection unusable
            self.close()
            return
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamFailed(f"upstream answer is not valid HTTP: {exc}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.lower()
        if key == b"content-type":
            self._content_type = value.decode("latin-1")
        elif key not in _HOP_BY_HOP_BYTES:
            self._headers.append(b"%s: %s\r\n" % (name, value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self._parser.should_keep_alive()
        body = self._body
        self._finish(
            UpstreamResponse(
                self._parser.get_status_code(),
                self._content_type,
                b"".join(self._headers),
                body[0] if len(body) == 1 else b"".join(body),
            )
        )

    # use
    def start(self, data: bytes, timeout_s: float, done: Done, *, fresh: bool) -> None:
        """Write one whole request; ``done`` gets its answer or error later (never now)."""
        self._done = done
        self._data = data
        self._timeout_s = timeout_s
        self._fresh = fresh
        self._headers = []
        self._content_type = ""
        self._body = []
        self._got_bytes = False
        transport = self._transport
        assert transport is not None  # start() is called on connected, open connections only
        pool = self._pool
        self.deadline = pool.loop.time() + timeout_s
        pool.busy(self)
        transport.write(data)

    def _clear(self) -> None:
        self._done = None
        self._data = b""

    def _finish(self, result: UpstreamResponse | UpstreamError) -> None:
        done = self._done
        if done is None:
            return
        self._clear()
        self._pool.release(self)
        try:
            done(result)
        except Exception:  # a callback must not break the connection's protocol callbacks
            log.exception("upstream answer callback failed")

    def _fail(self, error: UpstreamError) -> None:
        self.close()
        self._finish(error)

    def timed_out(self) -> None:
        """The pool's sweep found the deadline passed: fail the request, close."""
        self._fail(UpstreamTimeout("upstream did not answer in time"))

    @property
    def usable(self) -> bool:
        """Open, and not closed by the server while it sat idle (as far as we know yet)."""
        transport = self._transport
        return not self.closed and transport is not None and not transport.is_closing()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.closed = True
        if self._transport is not None:
            self._transport.close()


class EndpointPool:
    """Idle keep-alive connections to one endpoint, and that endpoint's passive health."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        connect_timeout_s: float,
        max_idle: int,
        policy: HealthPolicy,
        on_ejected: Ejected | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.health: EndpointHealth = HEALTHY
        self.inflight = 0
        self.retired = False
        self._connect_timeout_s = connect_timeout_s
        self._max_idle = max_idle
        self._policy = policy
        self._on_ejected = on_ejected
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._connecting: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
        self.host_header = f"host: {host}:{endpoint.port}\r\n".encode("latin-1")

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (the pool is used from one loop's thread only)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def available(self, now: float) -> bool:
        """Whether the endpoint is not ejected at monotonic time ``now``."""
        return available(self.health, now)

    async def _connect(self) -> _Connection:
        loop = self.loop
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(self), self.endpoint.host, self.endpoint.port
                ),
                self._connect_timeout_s,
            )
        except (OSError, TimeoutError) as exc:
            self.health, ejected = on_connect_failure(self.health, loop.time(), self._policy)
            if ejected and self._on_ejected is not None:
                self._on_ejected(self)
            raise ConnectFailed(f"cannot connect to {self.endpoint}: {exc or 'timeout'}") from exc
        self.health = on_success(self.health)
        return protocol

    def _take_idle(self) -> _Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.usable:
                return conn
        return None

    def frame(self, head: bytes, body: bytes) -> bytes:
        """The whole request: ``head`` with this endpoint's ``Host`` after the request line."""
        line_end = head.index(b"\r\n") + 2
        return b"".join((head[:line_end], self.host_header, head[line_end:], b"\r\n", body))

    def send(self, head: bytes, body: bytes, timeout_s: float, done: Done) -> None:
        """Send one request; ``done`` receives the whole answer or the error, later (never now).

        No task, future or coroutine when an idle connection is there (the common case); a
        connect (no idle connection, or a stale one) runs in a task.

        Args:
            head: the request line and headers, each line ending in CRLF, *without* ``Host``
                and without the blank line that ends the head (both are added here).
            body: the request body.
            timeout_s: how long to wait for the whole answer once sent.
            done: gets an :class:`UpstreamResponse`, or :class:`ConnectFailed` (nothing was
                sent: safe to retry elsewhere), :class:`UpstreamTimeout` (sent, no complete
                answer in time), :class:`UpstreamFailed` (sent, the connection broke or the
                answer was not HTTP).
        """
        data = self.frame(head, body)
        self.inflight += 1
        conn = self._take_idle()
        if conn is None:
            self._spawn(data, timeout_s, done)
        else:
            conn.start(data, timeout_s, done, fresh=False)

    def _spawn(self, data: bytes, timeout_s: float, done: Done) -> None:
        task = self.loop.create_task(self._connect_and_start(data, timeout_s, done))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect_and_start(self, data: bytes, timeout_s: float, done: Done) -> None:
        try:
            conn = await self._connect()
        except ConnectFailed as exc:
            self.inflight -= 1
            done(exc)
            return
        conn.start(data, timeout_s, done, fresh=True)

    def busy(self, conn: _Connection) -> None:
        """Track a connection with a request in flight; its deadline is swept (no timer each)."""
        self._busy.add(conn)
        if self._sweep is None:
            self._sweep = self.loop.call_later(SWEEP_S, self._expire)

    def _expire(self) -> None:
        """Fail requests past their deadline; sweep again while any is in flight.

        Why a sweep and not a timer per request: arming and cancelling a loop timer costs
        about as much as the rest of the pool's work for a request; a deadline checked every
        :data:`SWEEP_S` costs a float compare, and a timeout fires at most that much late.
        """
        self._sweep = None
        now = self.loop.time()
        for conn in [c for c in self._busy if c.deadline <= now]:
            conn.timed_out()
        if self._busy:
            self._sweep = self.loop.call_later(SWEEP_S, self._expire)

    def resend(self, conn: _Connection, data: bytes, timeout_s: float, done: Done) -> None:
        """Re-send on a fresh connection what a stale reused ``conn`` could not carry."""
        self._busy.discard(conn)
        self._spawn(data, timeout_s, done)

    def release(self, conn: _Connection) -> None:
        """Take back a connection whose request is over: keep it idle or close it."""
        self.inflight -= 1
        self._busy.discard(conn)
        if (
            conn.keep_alive
            and not conn.closed
            and not self.retired
            and len(self._idle) < self._max_idle
        ):
            self._idle.append(conn)
        else:
            conn.close()

    async def request(self, head: bytes, body: bytes, timeout_s: float) -> UpstreamResponse:
        """Send one request and return the whole answer (:meth:`send` for coroutines).

        Raises:
            ConnectFailed: nothing was sent (safe to retry elsewhere).
            UpstreamTimeout: sent, no complete answer in time.
            UpstreamFailed: sent, the connection broke or the answer was not HTTP.
        """
        answer: asyncio.Future[UpstreamResponse | UpstreamError] = self.loop.create_future()

        def done(result: UpstreamResponse | UpstreamError) -> None:
            if not answer.done():
                answer.set_result(result)

        self.send(head, body, timeout_s, done)
        result = await answer
        if isinstance(result, UpstreamError):
            raise result
        return result

    def close(self, *, abort_busy: bool = False) -> None:
        """Retire the pool: close idle connections; in-flight ones close when they finish.

        Args:
            abort_busy: also close connections with a request in flight now (their callers
                get :class:`UpstreamFailed`); for shutting down.
        """
        self.retired = True
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        if abort_busy:
            for conn in list(self._busy):
                conn.close()
            if self._sweep is not None:
                self._sweep.cancel()
                self._sweep = None


class VariantUpstreams:
    """The pools of one variant's endpoints, chosen round-robin among the available ones."""

    def __init__(self, pools: list[EndpointPool]) -> None:
        if not pools:
            raise ValueError("a variant needs at least one endpoint")
        self.pools = pools
        self._next = 0

    def healthy_count(self, now: float) -> int:
        """How many endpoints are not ejected at ``now``."""
        return sum(1 for pool in self.pools if pool.available(now))

    def any_available(self, now: float) -> bool:
        """Whether at least one endpoint is not ejected at ``now``."""
        return any(pool.available(now) for pool in self.pools)

    def choose(self, now: float, exclude: EndpointPool | None = None) -> EndpointPool | None:
        """The next available pool in rotation (skipping ``exclude``), or None when none is."""
        pools = self.pools
        count = len(pools)
        start = self._next
        for step in range(count):
            pool = pools[(start + step) % count]
            if pool is not exclude and pool.available(now):
                self._next = (start + step + 1) % count
                return pool
        return None
