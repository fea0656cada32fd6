"""Server CPU per request over real sockets, A/B between source trees, in one interleaved run.

Why: on the shared 2-core box wall-clock figures move with everyone else's load, but the server
process's own CPU time per request (and how often it sleeps per request) moves much less. This
starts ``driftline serve`` from one or more source trees (``--tree LABEL=PATH``: PATH's
``serving/`` and ``operator/`` go first on ``PYTHONPATH``; default: this tree), pinned to the
server core, with records shipped to the benchmark's sink on the load core, and drives it with
the same wrk runner as ``run.py``. Rounds alternate the trees, so slow drifts of the box load hit
every tree alike.

Reported per tree, level and round: req/s, p50, p99 (wall, from wrk), the server's CPU µs per
request (sum over its threads, ``/proc/PID/task/*/schedstat``), its voluntary context switches
per request (how often the loop went to sleep), and mean rows per model run (from ``/metrics``).
``--hello`` adds a hello-world app on our HTTP core (``peers/stack_hello.py driftline``): the
loopback + wake-up floor. ``--no-records`` runs without ``--monitor-url``.

Usage: ``python bench/serving/ab.py --tree old=/tmp/old --tree new=. --levels 1,64 --rounds 3``.
Writes ``bench/.work/serving/ab.json`` (never ``bench/results/``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/: the shared wrk runner
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import OURS, WORK, Spec, _batch_runs, free_port, start, stop, wait_ready

from wrkload.wrk import wrk

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of ``pid`` so far, in nanoseconds (schedstat's first field)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):  # a thread that ended meanwhile
            continue
    return total


def switches(pid: int) -> int:
    """Voluntary context switches of every thread of ``pid`` so far (sleeps)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total


def server_spec(label: str, tree: Path, sink_url: str | None, hello: bool) -> Spec:
    """The command for one tree (the served model or the hello-world app)."""
    port = free_port()
    path = os.pathsep.join([str(tree / "serving"), str(tree / "operator"), str(HERE / "peers")])
    if hello:
        cmd = [str(OURS), str(HERE / "peers" / "stack_hello.py"), "driftline", str(port)]
        return Spec(label, "", cmd, f"http://127.0.0.1:{port}/", "/", env={"PYTHONPATH": path})
    cmd = [str(OURS), "-m", "driftline.operator", "serve", "--model", str(WORK / "model.onnx")]
    cmd += ["--name", "model", "--port", str(port), "--log-level", "warning"]
    if sink_url is not None:
        cmd += ["--monitor-url", sink_url]
    return Spec(
        label,
        "",
        cmd,
        f"http://127.0.0.1:{port}/v2/models/model/infer",
        "/v2/health/ready",
        env={"PYTHONPATH": path},
    )


def measure(
    spec: Spec, body: Path, args: argparse.Namespace, hello: bool
) -> list[dict[str, object]]:
    """One server start: warm up, then every level; the server is stopped by its pid."""
    proc = start(spec, args.server_core, WORK / f"ab-{spec.name}.log")
    out: list[dict[str, object]] = []
    try:
        base = spec.infer_path.split("/v2/")[0].rstrip("/")
        wait_ready(base, spec.ready_path, proc)
        wrk(spec.infer_path, body, 8, args.warmup, args.load_core)
        for c in args.levels:
            runs0 = None if hello else _batch_runs(base)
            cpu0, sw0 = cpu_ns(proc.pid), switches(proc.pid)
            level = wrk(spec.infer_path, body, c, args.duration, args.load_core)
            cpu1, sw1 = cpu_ns(proc.pid), switches(proc.pid)
            n = max(1.0, level.requests_per_s * max(1, round(args.duration)))
            row: dict[str, object] = {
                "tree": spec.name,
                "c": c,
                "req_s": round(level.requests_per_s),
                "p50_ms": level.p50_ms,
                "p99_ms": level.p99_ms,
                "cpu_us_per_req": round((cpu1 - cpu0) / 1000 / n, 1),
                "sleeps_per_req": round((sw1 - sw0) / n, 3),
                "non_2xx": level.non_2xx,
            }
            if runs0 is not None:
                runs, rows = (a - b for a, b in zip(_batch_runs(base), runs0, strict=True))
                row["rows_per_run"] = round(rows / runs, 1) if runs else 0.0
            print("  " + "  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
            out.append(row)
    finally:
        stop(proc)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", action="append", default=[], help="LABEL=PATH (repeatable)")
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=[1, 64])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    parser.add_argument("--hello", action="store_true", help="also the hello-world floor")
    parser.add_argument("--no-records", action="store_true", help="no --monitor-url")
    args = parser.parse_args()
    trees = [(t.split("=", 1)[0], Path(t.split("=", 1)[1]).resolve()) for t in args.tree]
    trees = trees or [("this", ROOT)]
    if not (WORK / "model.onnx").exists():
        raise SystemExit("run bench/serving/run.py --quick once first (it builds the model)")
    body = WORK / "request.json"
    hello_body = WORK / "hello.json"
    hello_body.write_text('{"inputs":[]}')
    sink_port = free_port()
    sink = start(
        Spec("sink", "", [str(OURS), str(HERE / "peers" / "sink.py"), str(sink_port)], "", "/"),
        args.load_core,
        WORK / "ab-sink.log",
    )
    rows: list[dict[str, object]] = []
    try:
        wait_ready(f"http://127.0.0.1:{sink_port}", "/", sink)
        sink_url = None if args.no_records else f"http://127.0.0.1:{sink_port}"
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}  load {os.getloadavg()}", flush=True)
            if args.hello:
                rows += measure(
                    server_spec("hello", trees[0][1], None, True), hello_body, args, True
                )
            for label, tree in trees:
                rows += measure(server_spec(label, tree, sink_url, False), body, args, False)
        print("sink:", httpx.get(f"http://127.0.0.1:{sink_port}/", timeout=5).json())
    finally:
        stop(sink)
    out = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows}
    (WORK / "ab.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
