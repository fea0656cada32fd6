"""Hello-world JSON apps on each candidate HTTP stack, to choose the server's stack by measurement.

Usage: ``python peers/stack_hello.py STACK PORT`` with STACK one of ``driftline`` (our
asyncio.Protocol + httptools core on uvloop), ``uvicorn`` (uvicorn + httptools + uvloop, bare ASGI
app), ``granian-asgi`` and ``granian-rsgi`` (Rust HTTP server, one worker, one thread).
Every app reads the request body and answers the same 40-byte JSON.
"""

import sys

BODY = b'{"model_name":"model","outputs":[1,2,3]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


class RsgiApp:
    async def __rsgi__(self, scope, protocol):
        await protocol()
        protocol.response_bytes(200, [("content-type", "application/json")], BODY)


rsgi_app = RsgiApp()


def main() -> None:
    stack, port = sys.argv[1], int(sys.argv[2])
    if stack == "driftline":
        import asyncio

        from driftline.serving.http import HttpServer, Request, Response, run_event_loop

        async def handle(request: Request) -> Response:
            return Response(200, BODY)

        async def serve() -> None:
            server = HttpServer(handle)
            await server.start("127.0.0.1", port)
            await asyncio.Event().wait()

        run_event_loop(serve())
    elif stack == "uvicorn":
        import uvicorn

        uvicorn.run(
            asgi_app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            loop="uvloop",
            http="httptools",
        )
    elif stack in ("granian-asgi", "granian-rsgi"):
        from granian import Granian

        interface = stack.split("-")[1]
        target = "stack_hello:asgi_app" if interface == "asgi" else "stack_hello:rsgi_app"
        Granian(
            target,
            address="127.0.0.1",
            port=port,
            interface=interface,
            workers=1,
            runtime_threads=1,
            log_enabled=False,
        ).serve()
    else:
        raise SystemExit(f"unknown stack {stack}")


if __name__ == "__main__":
    main()
