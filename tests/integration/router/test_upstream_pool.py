"""The upstream client pool over real sockets on 127.0.0.1, in-process.

We test: keep-alive reuse of one connection; a pooled connection the server closed while idle is
re-sent once on a fresh connection (the keep-alive race); a refused connect raises ConnectFailed
and ejects the endpoint; an answer that does not come in time raises UpstreamTimeout; a chunked
answer is read whole; an answer that is not HTTP raises UpstreamFailed.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from driftline.serving.router.health import HealthPolicy
from driftline.serving.router.table import Endpoint
from driftline.serving.router.upstream import (
    ConnectFailed,
    EndpointPool,
    UpstreamFailed,
    UpstreamTimeout,
)

pytestmark = pytest.mark.integration

HEAD = b"GET /v2/health/ready HTTP/1.1\r\ncontent-length: 0\r\n"
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter, dict[str, int]], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bool:
    try:
        await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return False
    return True


@pytest.fixture
async def upstream() -> AsyncIterator[Callable[[Behaviour], Awaitable[tuple[int, dict[str, int]]]]]:
    servers: list[asyncio.Server] = []

    async def start(behaviour: Behaviour) -> tuple[int, dict[str, int]]:
        counts = {"connections": 0, "requests": 0}

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            counts["connections"] += 1
            try:
                await behaviour(reader, writer, counts)
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return server.sockets[0].getsockname()[1], counts

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def _pool(port: int, **kwargs: float) -> EndpointPool:
    return EndpointPool(
        Endpoint(host="127.0.0.1", port=port),
        connect_timeout_s=1.0,
        max_idle=4,
        policy=HealthPolicy(base_ejection_s=kwargs.get("ejection", 5.0)),
    )


async def _keep_alive(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counts: dict[str, int]
) -> None:
    while await _read_request(reader):
        counts["requests"] += 1
        writer.write(OK)
        await writer.drain()


async def test_reusing_one_keep_alive_connection(upstream) -> None:  # type: ignore[no-untyped-def]
    port, counts = await upstream(_keep_alive)
    pool = _pool(port)
    for _ in range(5):
        answer = await pool.request(HEAD, b"", 2.0)
        assert (answer.status, answer.body, answer.content_type) == (200, b"{}", "application/json")
    assert counts == {"connections": 1, "requests": 5}
    pool.close()


async def test_a_connection_closed_while_idle_is_resent_on_a_fresh_one(upstream) -> None:  # type: ignore[no-untyped-def]
    closed = asyncio.Event()

    async def once_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counts: dict[str, int]
    ) -> None:
        if await _read_request(reader):
            counts["requests"] += 1
            writer.write(OK)  # claims keep-alive, then closes: the idle-timeout race
            await writer.drain()
            # wait for the next request's bytes (or EOF) before closing, so the client has
            # already reused the connection when it breaks
            await reader.read(1)
        closed.set()

    port, counts = await upstream(once_then_close)
    pool = _pool(port)
    assert (await pool.request(HEAD, b"", 2.0)).status == 200
    assert (await pool.request(HEAD, b"", 2.0)).status == 200
    assert counts["connections"] >= 2 and counts["requests"] == 2
    pool.close()


async def test_a_refused_connect_fails_before_sending_and_ejects() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ejected: list[EndpointPool] = []
    pool = EndpointPool(
        Endpoint(host="127.0.0.1", port=port),
        connect_timeout_s=1.0,
        max_idle=4,
        policy=HealthPolicy(base_ejection_s=30),
        on_ejected=ejected.append,
    )
    with pytest.raises(ConnectFailed):
        await pool.request(HEAD, b"", 2.0)
    assert ejected == [pool]
    assert not pool.available(asyncio.get_running_loop().time())


async def test_a_slow_answer_times_out(upstream) -> None:  # type: ignore[no-untyped-def]
    async def never(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counts: dict[str, int]
    ) -> None:
        await _read_request(reader)
        await reader.read(1)  # hold the connection open, never answer

    port, _ = await upstream(never)
    pool = _pool(port)
    with pytest.raises(UpstreamTimeout):
        await pool.request(HEAD, b"", 0.2)
    pool.close()


async def test_a_chunked_answer_is_read_whole(upstream) -> None:  # type: ignore[no-untyped-def]
    async def chunked(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counts: dict[str, int]
    ) -> None:
        await _read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-a: 1\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        await writer.drain()
        await reader.read(1)

    port, _ = await upstream(chunked)
    pool = _pool(port)
    answer = await pool.request(HEAD, b"", 2.0)
    assert answer.body == b"abcde"
    assert answer.headers == (("x-a", "1"),)  # hop-by-hop transfer-encoding dropped
    pool.close()


async def test_an_answer_that_is_not_http_fails(upstream) -> None:  # type: ignore[no-untyped-def]
    async def garbage(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counts: dict[str, int]
    ) -> None:
        await _read_request(reader)
        writer.write(b"SSH-2.0-nope\r\n\r\n")
        await writer.drain()
        await reader.read(1)

    port, _ = await upstream(garbage)
    pool = _pool(port)
    with pytest.raises(UpstreamFailed):
        await pool.request(HEAD, b"", 2.0)
    pool.close()
