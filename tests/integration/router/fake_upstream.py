"""A fake OIP model server (and monitor) for the router's process tests; run as a script.

    python fake_upstream.py --port P --version 2 [--label 1] [--delay-ms 0] [--status 200]

Answers ``/v2/health/*``, ``/v2/models/{m}`` metadata and ``/v2/models/{m}/infer`` with a
deterministic answer: one ``label`` (INT64, ``--label`` for every row) and one ``probabilities``
(FP32, ``[1 - p, p]`` per row with ``p = --score``) per input row; echoes the request ``id``.
``--status`` forces the infer answer's status (e.g. 400 or 500); ``--delay-ms`` delays every infer
answer. ``POST /v1/feedback`` is accepted (a monitor). ``GET /_seen`` returns what it saw: request
counts per path and the last request's headers, for the tests' assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections import Counter

import orjson

from driftline.serving.http import HttpServer, Request, Response, json_error, run_event_loop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", default="1")
    parser.add_argument("--label", type=int, default=0)
    parser.add_argument("--score", type=float, default=0.25)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--status", type=int, default=200)
    args = parser.parse_args()
    seen: Counter[str] = Counter()
    last: dict[str, object] = {}

    async def handle(request: Request) -> Response:
        path = request.path
        if path == "/_seen":
            return Response(200, orjson.dumps({"counts": dict(seen), "last": last}))
        seen[path] += 1
        last.clear()
        last.update(
            {"path": path, "headers": request.headers, "body": request.body.decode("latin-1")}
        )
        if path in ("/v2/health/live", "/v2/health/ready"):
            return Response(200, b'{"ready":true}')
        if path == "/v1/feedback":
            return Response(202, orjson.dumps({"accepted": True, "version": args.version}))
        if path.startswith("/v2/models/") and path.endswith("/infer"):
            if args.delay_ms:
                await asyncio.sleep(args.delay_ms / 1000.0)
            if args.status != 200:
                return json_error(args.status, f"forced status {args.status}")
            try:
                doc = orjson.loads(request.body)
                rows = int(doc["inputs"][0]["shape"][0])
            except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError):
                return json_error(400, "inputs[0].shape: missing or malformed")
            answer: dict[str, object] = {
                "model_name": path.split("/")[3],
                "model_version": args.version,
                "outputs": [
                    {
                        "name": "label",
                        "datatype": "INT64",
                        "shape": [rows],
                        "data": [args.label] * rows,
                    },
                    {
                        "name": "probabilities",
                        "datatype": "FP32",
                        "shape": [rows, 2],
                        "data": [[1 - args.score, args.score]] * rows,
                    },
                ],
            }
            if "id" in doc:
                answer["id"] = doc["id"]
            return Response(
                200, orjson.dumps(answer), headers=(("x-upstream-version", args.version),)
            )
        if path.startswith("/v2/models/"):
            name = path.split("/")[3]
            return Response(
                200,
                orjson.dumps({"name": name, "versions": [args.version], "platform": "onnx_onnxv1"}),
            )
        return json_error(404, f"no route {path}")

    async def serve() -> None:
        server = HttpServer(handle)
        await server.start("127.0.0.1", args.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await stop.wait()
        await server.shutdown(timeout_s=2.0)

    run_event_loop(serve())


if __name__ == "__main__":
    main()
