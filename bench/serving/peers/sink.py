"""A prediction-record sink for the benchmark: accepts POST /v1/records with 204, counts bytes.

Stands in for the monitor sidecar so that the server under test ships records for real (the
sink runs on the load generator's core, not the server's). Usage: ``python peers/sink.py PORT``.
"""

import asyncio
import sys

from driftline.serving.http import HttpServer, Request, Response, run_event_loop

received = {"frames": 0, "bytes": 0}


async def handle(request: Request) -> Response:
    if request.method == "POST":
        received["frames"] += 1
        received["bytes"] += len(request.body)
        return Response(204, b"", "")
    return Response(200, f'{{"frames":{received["frames"]},"bytes":{received["bytes"]}}}'.encode())


async def main() -> None:
    server = HttpServer(handle, max_body_bytes=1 << 30)
    await server.start("127.0.0.1", int(sys.argv[1]))
    await asyncio.Event().wait()


run_event_loop(main())
