"""The HTTP core (driftline.serving.http) over real sockets on 127.0.0.1, in-process.

We test these aspects: keep-alive and pipelining answer in order; HTTP/1.0 closes; chunked
bodies; Expect: 100-continue; the body limit on the declared length and on a streamed body (413,
connection closed); malformed requests (400, connection closed); a handler that raises (500, the
server stays up); graceful shutdown finishing an in-flight request and refusing new connections
(the callback path, ``start=``, is tested with the router: tests/integration/router/
test_http_callback_path.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from driftline.serving.http import HttpServer, Request, Response, render_head

pytestmark = pytest.mark.integration

DEADLINE_S = 5.0


async def _echo(request: Request) -> Response:
    if request.path == "/boom":
        raise RuntimeError("handler bug")
    if request.path == "/slow":
        await asyncio.sleep(0.2)
    body = orjson.dumps(
        {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "body": request.body.decode(),
        }
    )
    return Response(200, body)


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    srv = HttpServer(_echo, max_body_bytes=1024)
    await srv.start("127.0.0.1", 0)
    try:
        yield srv
    finally:
        await srv.shutdown(timeout_s=2.0)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE_S)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), DEADLINE_S)
    return status, headers, body


async def _connect(
    server: HttpServer,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def test_answering_pipelined_requests_in_order_on_one_connection(
    server: HttpServer,
) -> None:
    reader, writer = await _connect(server)
    writer.write(
        b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /b?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    paths = []
    for _ in range(3):
        status, headers, body = await _read_response(reader)
        assert status == 200
        assert "connection" not in headers
        paths.append(orjson.loads(body)["path"])
    assert paths == ["/slow", "/b", "/c"]
    writer.close()


async def test_parsing_query_and_body(server: HttpServer) -> None:
    reader, writer = await _connect(server)
    writer.write(b"POST /p?a=1&b=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
    _, _, body = await _read_response(reader)
    assert orjson.loads(body) == {"method": "POST", "path": "/p", "query": "a=1&b=2", "body": "hi"}
    writer.close()


async def test_closing_after_an_http_1_0_request(server: HttpServer) -> None:
    reader, writer = await _connect(server)
    writer.write(b"GET /x HTTP/1.0\r\n\r\n")
    status, headers, _ = await _read_response(reader)
    assert status == 200
    assert headers["connection"] == "close"
    assert await asyncio.wait_for(reader.read(), DEADLINE_S) == b""
    writer.close()


async def test_reading_a_chunked_body(server: HttpServer) -> None:
    reader, writer = await _connect(server)
    writer.write(
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    _, _, body = await _read_response(reader)
    assert orjson.loads(body)["body"] == "abcde"
    writer.close()


async def test_sending_100_continue_when_asked(server: HttpServer) -> None:
    reader, writer = await _connect(server)
    writer.write(
        b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
    )
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE_S)
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    writer.write(b"ok")
    status, _, body = await _read_response(reader)
    assert status == 200
    assert orjson.loads(body)["body"] == "ok"
    writer.close()


async def test_rejecting_a_declared_body_over_the_limit_before_reading_it(
    server: HttpServer,
) -> None:
    reader, writer = await _connect(server)
    writer.write(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
    status, headers, body = await _read_response(reader)
    assert status == 413
    assert headers["connection"] == "close"
    assert "1024 bytes" in orjson.loads(body)["error"]
    writer.close()


async def test_rejecting_a_chunked_body_growing_over_the_limit(server: HttpServer) -> None:
    reader, writer = await _connect(server)
    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
    writer.write(b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 2)
    status, _, _ = await _read_response(reader)
    assert status == 413
    writer.close()


async def test_answering_malformed_http_with_400_and_closing(server: HttpServer) -> None:
    reader, writer = await _connect(server)
    writer.write(b"THIS IS NOT HTTP\r\n\r\n")
    status, headers, body = await _read_response(reader)
    assert status == 400
    assert headers["connection"] == "close"
    assert "malformed" in orjson.loads(body)["error"]
    writer.close()


async def test_counting_pending_requests_back_to_zero(server: HttpServer) -> None:
    reader, writer = await _connect(server)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    await _read_response(reader)
    await _read_response(reader)
    assert server.pending == 0
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    writer.close()  # the client goes away with its request unanswered
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while server.pending != 0:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)  # polling interval of a wait-with-deadline


async def test_answering_a_failing_handler_with_500_and_staying_up(server: HttpServer) -> None:
    reader, writer = await _connect(server)
    writer.write(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body = await _read_response(reader)
    assert status == 500
    assert orjson.loads(body) == {"error": "internal error"}
    status, _, _ = await _read_response(reader)
    assert status == 200
    writer.close()


async def test_finishing_in_flight_requests_on_shutdown_and_refusing_new_ones() -> None:
    srv = HttpServer(_echo)
    await srv.start("127.0.0.1", 0)
    port = srv.port
    busy_r, busy_w = await asyncio.open_connection("127.0.0.1", port)
    idle_r, idle_w = await asyncio.open_connection("127.0.0.1", port)
    busy_w.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    await busy_w.drain()
    await asyncio.sleep(0)  # let the server read the request before shutdown starts
    shutdown = asyncio.create_task(srv.shutdown(timeout_s=DEADLINE_S))
    status, headers, _ = await _read_response(busy_r)
    assert status == 200
    assert headers["connection"] == "close"
    assert await asyncio.wait_for(idle_r.read(), DEADLINE_S) == b""
    await asyncio.wait_for(shutdown, DEADLINE_S)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    busy_w.close()
    idle_w.close()


@pytest.mark.parametrize(
    ("response", "keep_alive", "expected"),
    [
        (
            Response(200, b"{}"),
            True,
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n",
        ),
        (
            Response(404, b"", ""),
            False,
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        ),
        (
            Response(200, b"x", "text/plain", (("x-a", "1"),)),
            True,
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-a: 1\r\ncontent-length: 1\r\n\r\n",
        ),
    ],
)
def test_rendering_response_heads(response: Response, keep_alive: bool, expected: bytes) -> None:
    assert render_head(response, keep_alive) == expected


def test_refusing_an_unknown_status() -> None:
    with pytest.raises(ValueError, match="599"):
        render_head(Response(599), True)
