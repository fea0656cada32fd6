"""Ships prediction records to the monitor sidecar without ever blocking or failing inference.

Who uses it: the model server's app calls :meth:`RecordShipper.add` after answering each inference
(a list append, nothing else); a background task (:meth:`RecordShipper.run`) turns queued entries
into one :class:`~driftline.serving.records.RecordBatch` frame and POSTs it to
``{monitor_url}{RECORDS_PATH}``. The format is defined once, in :mod:`driftline.serving.records`.

Guarantees: :meth:`~RecordShipper.add` never waits and never raises; when more than
``max_rows`` rows are waiting (the monitor is slow or down), new rows are dropped and counted
(``queue_full``); a POST that fails drops its rows and counts them (``send_failed``). One POST is
in flight at a time, so a stuck monitor costs at most ``max_rows`` rows of memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from driftline.serving.metrics import ServerMetrics
from driftline.serving.protocol import Array
from driftline.serving.records import MEDIA_TYPE, RECORDS_PATH, RecordBatch, encode

log = logging.getLogger(__name__)

Post = Callable[[bytes], Awaitable[None]]
"""Delivers one encoded frame; raises on failure (the shipper counts the rows as dropped)."""


@dataclass(slots=True)
class Entry:
    """One answered request: its rows' inputs and outputs and when/how fast it was answered."""

    request_id: str
    rows: int
    timestamp: float
    latency_ms: float
    inputs: dict[str, Array]
    outputs: dict[str, Array]


def build_batch(model: str, version: str, variant: str, entries: Sequence[Entry]) -> RecordBatch:
    """Concatenate entries row-wise into one :class:`RecordBatch` (pure).

    Entries must share input and output names and trailing shapes (they come from one model) and
    every array's first dimension must be the entry's ``rows``; a request with ``rows`` rows
    contributes its id, timestamp and latency ``rows`` times.
    """
    counts = [e.rows for e in entries]
    ids = tuple(e.request_id for e in entries for _ in range(e.rows))
    timestamps = np.repeat(np.array([e.timestamp for e in entries], dtype=np.float64), counts)
    latencies = np.repeat(np.array([e.latency_ms for e in entries], dtype=np.float64), counts)

    def stack(pick: Callable[[Entry], dict[str, Array]]) -> dict[str, Array]:
        return {name: np.concatenate([pick(e)[name] for e in entries]) for name in pick(entries[0])}

    return RecordBatch(
        model=model,
        version=version,
        variant=variant,
        request_ids=ids,
        timestamps=timestamps,
        latencies_ms=latencies,
        inputs=stack(lambda e: e.inputs),
        outputs=stack(lambda e: e.outputs),
    )


FRAME_ROWS = 512
"""Rows per frame, at most (a larger single request makes a larger frame). Encoding a frame blocks
the event loop for about 1 us per row; 512 rows keep that stall near half a millisecond, where
one 4,096-row frame stalled every in-flight request for ~5 ms (bench/results/serving-profile.md)."""


def frames_of(entries: Sequence[Entry], max_rows: int) -> list[tuple[list[Entry], int]]:
    """Split entries, in order, into groups of at most ``max_rows`` rows (pure).

    An entry is never split: one with more rows than ``max_rows`` is a group of its own.
    Returns ``(entries, rows)`` per group.
    """
    groups: list[tuple[list[Entry], int]] = []
    chunk: list[Entry] = []
    rows = 0
    for entry in entries:
        if chunk and rows + entry.rows > max_rows:
            groups.append((chunk, rows))
            chunk, rows = [], 0
        chunk.append(entry)
        rows += entry.rows
    if chunk:
        groups.append((chunk, rows))
    return groups


class RecordShipper:
    """Bounded queue of record entries plus the task that sends them in frames."""

    def __init__(
        self,
        post: Post,
        metrics: ServerMetrics,
        *,
        model: str,
        version: str,
        variant: str,
        max_rows: int,
        flush_rows: int,
        flush_interval_s: float,
    ) -> None:
        self._post = post
        self._metrics = metrics
        self._model, self._version, self._variant = model, version, variant
        self._max_rows = max_rows
        self._flush_rows = flush_rows
        self._interval = flush_interval_s
        self._entries: list[Entry] = []
        self._rows = 0
        self._due = asyncio.Event()
        self._closing = False
        self._last_error_log = 0.0

    @property
    def queued_rows(self) -> int:
        """Rows waiting to be sent."""
        return self._rows

    def add(self, entry: Entry) -> None:
        """Queue one answered request's rows; drops (and counts) them when the queue is full."""
        if self._rows + entry.rows > self._max_rows or self._closing:
            self._metrics.records_dropped_queue_full.inc(entry.rows)
            return
        self._entries.append(entry)
        self._rows += entry.rows
        if self._rows >= self._flush_rows:
            self._due.set()

    async def _send(self) -> None:
        entries, self._entries, self._rows = self._entries, [], 0
        self._due.clear()
        for i, (chunk, rows) in enumerate(frames_of(entries, FRAME_ROWS)):
            if i:
                await asyncio.sleep(0)  # let requests run between frames, whatever post does
            try:
                frame = encode(build_batch(self._model, self._version, self._variant, chunk))
                await self._post(frame)
            except Exception as exc:  # delivery is best-effort by contract: count, log, go on
                self._metrics.records_dropped_send_failed.inc(rows)
                now = time.monotonic()
                if now - self._last_error_log > 30.0:
                    self._last_error_log = now
                    log.warning("dropped %d prediction record rows: %s", rows, exc)
                continue
            self._metrics.records_sent.inc(rows)

    async def run(self) -> None:
        """Send a frame whenever ``flush_rows`` rows are queued or the interval passed.

        Returns after :meth:`close`.
        """
        while not self._closing:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._due.wait(), self._interval)
            await self._send()

    async def close(self) -> None:
        """Stop accepting rows and send what is queued (one last frame)."""
        self._closing = True
        self._due.set()
        await self._send()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 response; returns ``(status, keep_alive)``, the body is discarded."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    keep_alive = head[0].startswith("HTTP/1.1") and headers.get("connection") != "close"
    return status, keep_alive


def http_post(
    monitor_url: str, timeout_s: float = 2.0
) -> tuple[Post, Callable[[], Awaitable[None]]]:
    """A :data:`Post` to ``{monitor_url}{RECORDS_PATH}`` over one keep-alive connection.

    A tiny HTTP/1.1 client on asyncio streams (the monitor listens on localhost; httpx costs more
    per POST than the encoding of a frame). A connection the monitor closed while idle is replaced
    once per POST; any failure or non-2xx answer raises, so the shipper counts the rows as dropped.
    ``https`` URLs go through httpx.
    """
    parsed = urlsplit(monitor_url)
    if parsed.scheme == "https" or parsed.hostname is None:
        return _httpx_post(monitor_url, timeout_s)
    host, port = parsed.hostname, parsed.port or 80
    path = parsed.path.rstrip("/") + RECORDS_PATH
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: {MEDIA_TYPE}\r\n"
        "content-length: "
    ).encode("latin-1")
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    def drop() -> None:
        nonlocal conn
        if conn is not None:
            conn[1].close()
            conn = None

    async def post(frame: bytes) -> None:
        nonlocal conn
        for attempt in (1, 2):
            fresh = conn is None
            if conn is None:
                conn = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
            reader, writer = conn
            try:
                writer.write(head + b"%d\r\n\r\n" % len(frame) + frame)
                await writer.drain()
                status, keep_alive = await asyncio.wait_for(_read_response(reader), timeout_s)
            except (
                OSError,
                EOFError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ValueError,
                IndexError,
                TimeoutError,
            ):
                drop()
                if attempt == 1 and not fresh:
                    continue  # an idle keep-alive connection the monitor closed: once more
                raise
            if not keep_alive:
                drop()
            if status >= 300:
                raise RuntimeError(f"monitor answered {status}")
            return

    async def close() -> None:
        drop()

    return post, close


def _httpx_post(monitor_url: str, timeout_s: float) -> tuple[Post, Callable[[], Awaitable[None]]]:
    import httpx

    client = httpx.AsyncClient(timeout=timeout_s)
    url = monitor_url.rstrip("/") + RECORDS_PATH

    async def post(frame: bytes) -> None:
        response = await client.post(url, content=frame, headers={"content-type": MEDIA_TYPE})
        if response.status_code >= 300:
            raise RuntimeError(f"monitor answered {response.status_code}: {response.text[:200]}")

    return post, client.aclose
