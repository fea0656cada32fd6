"""The HTTP core's callback path (``HttpServer(start=...)``), which the router forwards through.

Real sockets on 127.0.0.1, in-process. We test: a request answered at once from inside the
callback and one answered later (from another loop callback) both arrive; pipelined requests are
answered in request order whatever order the app answers them in; a declined request goes to the
async handler and the ones behind it keep their order; a callback that raises is answered 500
and the connection goes on; an answer after the client went away is dropped without error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from driftline.serving.http import HttpServer, Request, Respond, Response

pytestmark = pytest.mark.integration

DEADLINE_S = 5.0


async def _handler(request: Request) -> Response:
    return Response(200, orjson.dumps({"async": request.path}))


class _App:
    """``/now*`` answered inside the callback, ``/later*`` on a later loop turn (``/later-slow``
    after the next request was taken), ``/boom`` raises, anything else declined."""

    def __init__(self) -> None:
        self.taken: list[str] = []
        self.late: list[tuple[str, Respond]] = []

    def start(self, request: Request, respond: Respond) -> bool:
        path = request.path
        if path == "/boom":
            raise RuntimeError("callback bug")
        if path.startswith("/now"):
            self.taken.append(path)
            respond(Response(200, orjson.dumps({"now": path})))
            return True
        if path.startswith("/later"):
            self.taken.append(path)
            loop = asyncio.get_running_loop()
            delay = 0.05 if path == "/later-slow" else 0.0
            loop.call_later(delay, respond, Response(200, orjson.dumps({"later": path})))
            return True
        return False


@pytest.fixture
async def served() -> AsyncIterator[tuple[HttpServer, _App]]:
    app = _App()
    server = HttpServer(_handler, start=app.start)
    await server.start("127.0.0.1", 0)
    try:
        yield server, app
    finally:
        await server.shutdown(timeout_s=2.0)


async def _read(reader: asyncio.StreamReader) -> tuple[int, object]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE_S)
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length")
    )
    body = await asyncio.wait_for(reader.readexactly(length), DEADLINE_S)
    return int(lines[0].split(" ")[1]), orjson.loads(body)


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


async def test_answers_now_and_later_arrive(served: tuple[HttpServer, _App]) -> None:
    server, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(_get("/now1"))
        assert await _read(reader) == (200, {"now": "/now1"})
        writer.write(_get("/later1"))
        assert await _read(reader) == (200, {"later": "/later1"})
    finally:
        writer.close()


async def test_pipelined_answers_keep_request_order(served: tuple[HttpServer, _App]) -> None:
    server, app = served
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(
            _get("/later-slow")
            + _get("/now2")
            + _get("/declined")
            + _get("/later2")
            + _get("/boom")
            + _get("/now3")
        )
        answers = [await _read(reader) for _ in range(6)]
    finally:
        writer.close()
    assert answers == [
        (200, {"later": "/later-slow"}),
        (200, {"now": "/now2"}),
        (200, {"async": "/declined"}),
        (200, {"async": "/later2"}),  # behind a declined request: the async handler's
        (200, {"async": "/boom"}),
        (200, {"async": "/now3"}),
    ]
    assert app.taken == ["/later-slow", "/now2"]


async def test_a_raising_callback_is_answered_500_and_the_connection_goes_on(
    served: tuple[HttpServer, _App],
) -> None:
    server, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(_get("/boom") + _get("/now4"))
        assert await _read(reader) == (500, {"error": "internal error"})
        assert await _read(reader) == (200, {"now": "/now4"})
    finally:
        writer.close()


async def test_an_answer_after_the_client_left_is_dropped() -> None:
    held: list[Respond] = []

    def hold(request: Request, respond: Respond) -> bool:
        held.append(respond)
        return True

    server2 = HttpServer(_handler, start=hold)
    await server2.start("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server2.port)
        writer.write(_get("/held"))
        await writer.drain()
        deadline = asyncio.get_running_loop().time() + DEADLINE_S
        while not held:  # wait for the request to be taken, bounded
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        writer.close()
        await writer.wait_closed()
        assert await reader.read() == b""
        while server2.pending:  # the server notices the close, bounded
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        held[0](Response(200, b"{}"))  # must not raise or write anywhere
    finally:
        await server2.shutdown(timeout_s=2.0)
