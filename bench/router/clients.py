"""Which upstream client should the router use? Ours vs aiohttp vs httpx, in one run.

A tiny upstream (the serving core answering a fixed OIP-sized JSON body) runs in its own process
on the server core; each client runs in this process on the load core, on uvloop, and sends
POSTs with a single-row OIP body over keep-alive connections: ``--requests`` at concurrency 1 and
64 (asyncio tasks sharing one client). Reported: requests/s and client CPU microseconds per
request (this process's CPU time / requests), the router's real cost.

Usage: ``python bench/router/clients.py [--requests 20000]``; writes
``bench/results/router-clients.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RESULTS = ROOT / "bench" / "results"
BODY = json.dumps(
    {
        "inputs": [
            {
                "name": "input",
                "shape": [1, 7],
                "datatype": "FP32",
                "data": [12.0, 70.5, 2.0, 30.0, 41.0, 1.0, 0.0],
            }
        ]
    }
).encode()
UPSTREAM = """
import asyncio, sys
from driftline.serving.http import HttpServer, Response, run_event_loop
ANSWER = (b'{"model_name":"churn","model_version":"1","outputs":[{"name":"label",'
          b'"datatype":"INT64","shape":[1],"data":[0]},{"name":"probabilities",'
          b'"datatype":"FP32","shape":[1,2],"data":[0.7,0.3]}]}')
async def handle(request):
    return Response(200, ANSWER)
async def main():
    server = HttpServer(handle)
    await server.start("127.0.0.1", int(sys.argv[1]))
    await asyncio.Event().wait()
run_event_loop(main())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


Send = Callable[[], Awaitable[int]]


async def measure(send: Send, requests: int, concurrency: int) -> dict[str, float]:
    for _ in range(200):
        await send()
    per_task = requests // concurrency

    async def worker() -> None:
        for _ in range(per_task):
            status = await send()
            assert status == 200

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    done = per_task * concurrency
    return {"requests_per_s": round(done / wall), "cpu_us_per_request": round(1e6 * cpu / done, 1)}


async def ours(port: int) -> tuple[Send, Callable[[], Awaitable[None]]]:
    from driftline.serving.router.health import HealthPolicy
    from driftline.serving.router.table import Endpoint
    from driftline.serving.router.upstream import EndpointPool

    pool = EndpointPool(
        Endpoint(host="127.0.0.1", port=port),
        connect_timeout_s=1.0,
        max_idle=128,
        policy=HealthPolicy(),
    )
    head = (
        b"POST /v2/models/churn/infer HTTP/1.1\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n" % len(BODY)
    )

    async def send() -> int:
        return (await pool.request(head, BODY, 5.0)).status

    async def close() -> None:
        pool.close()

    return send, close


async def with_aiohttp(port: int) -> tuple[Send, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=128))
    url = f"http://127.0.0.1:{port}/v2/models/churn/infer"

    async def send() -> int:
        async with session.post(
            url, data=BODY, headers={"content-type": "application/json"}
        ) as response:
            await response.read()
            return response.status

    return send, session.close


async def with_httpx(port: int) -> tuple[Send, Callable[[], Awaitable[None]]]:
    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=128))
    url = f"http://127.0.0.1:{port}/v2/models/churn/infer"

    async def send() -> int:
        return (
            await client.post(url, content=BODY, headers={"content-type": "application/json"})
        ).status_code

    return send, client.aclose


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    args = parser.parse_args()
    port = free_port()
    upstream = subprocess.Popen(
        ["taskset", "-c", str(args.server_core), sys.executable, "-c", UPSTREAM, str(port)]
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)  # polling interval of a wait with a deadline
        os.sched_setaffinity(0, {args.load_core})
        import uvloop

        results: dict[str, dict[str, dict[str, float]]] = {}

        async def run_all() -> None:
            for name, factory in (
                ("ours (httptools)", ours),
                ("aiohttp", with_aiohttp),
                ("httpx", with_httpx),
            ):
                send, close = await factory(port)
                results[name] = {}
                for c in (1, 64):
                    n = args.requests if name != "httpx" else args.requests // 4
                    results[name][f"c={c}"] = await measure(send, n, c)
                await close()

        uvloop.run(run_all())
    finally:
        os.kill(upstream.pid, signal.SIGTERM)
        upstream.wait(10)
    lines = [
        "# Router upstream client: ours vs aiohttp vs httpx",
        "",
        "| client | c=1 req/s | c=1 CPU us/req | c=64 req/s | c=64 CPU us/req |",
        "|---|---|---|---|---|",
    ]
    for name, levels in results.items():
        one, many = levels["c=1"], levels["c=64"]
        lines.append(
            f"| {name} | {one['requests_per_s']} | {one['cpu_us_per_request']} | "
            f"{many['requests_per_s']} | {many['cpu_us_per_request']} |"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "router-clients.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "router-clients.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
