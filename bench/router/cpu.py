"""The router's CPU per request, by scenario, and (optionally) where it goes: a short, bounded run.

What it measures: real processes as in ``bench/router/run.py`` (model servers on the server core;
the router and wrk on the load core), one wrk level per scenario, and the router process's user
and system CPU time (from ``/proc``) over that level divided by the requests wrk completed. CPU
time, not wall-clock throughput, is the figure to compare on a loaded machine: it moves by a few
percent where throughput moves by tens.

With ``--py-spy``, each router is sampled during its level (``py-spy record --format raw``) and
the report lists the functions holding the most samples (self and total), so a change can be
traced to the stage it cut: client parse, pick, upstream write, upstream read, headers, stats,
client write; for mirroring the copy, the shadow send and read, the comparison.

With ``--baseline REV``, the same scenarios also run with a router from git revision ``REV``
(its ``serving`` and ``operator`` trees exported to ``bench/.work``, put first on
``PYTHONPATH``), alternating with the current code over ``--rounds`` rounds, against the same
model servers: an A/B in one run, so background load hits both alike.

Usage: ``.venv/bin/python bench/router/cpu.py [--duration 8] [--concurrency 64] [--py-spy]
[--baseline 4b24654 --rounds 3]``.
Writes ``bench/results/router-cpu.{json,md}`` (label: which box, which commit).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/: the shared wrk runner
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import INFER, PY, RESULTS, WORK, free_port, server, start, stop, wait_ready

from wrkload.wrk import wrk

ROOT = Path(__file__).resolve().parent.parent.parent
PY_SPY = str(ROOT / ".venv" / "bin" / "py-spy")


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def top_functions(raw: Path, limit: int) -> dict[str, list[tuple[str, float]]]:
    """Self and total sample shares per function from a py-spy raw (collapsed stacks) file."""
    self_counts: collections.Counter[str] = collections.Counter()
    total_counts: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")"
            for f in stack.split(";")
            if " (" in f
        ]
        if frames:
            self_counts[frames[-1]] += count
        for frame in set(frames):
            total_counts[frame] += count
    if not samples:
        return {"self": [], "total": []}
    return {
        "self": [(f, round(100 * c / samples, 1)) for f, c in self_counts.most_common(limit)],
        "total": [(f, round(100 * c / samples, 1)) for f, c in total_counts.most_common(limit)],
    }


def export(rev: str) -> Path:
    """The ``serving`` and ``operator`` trees of git revision ``rev``, under ``bench/.work``."""
    out = WORK / f"src-{rev}"
    if not out.exists():
        out.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "serving", "operator"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def measure(
    args: argparse.Namespace,
    name: str,
    table: dict[str, object],
    body: Path,
    src: Path | None,
    spy_this: bool,
) -> dict[str, object]:
    """Start a router (from ``src`` when given), load it with wrk, return its CPU per request."""
    path = WORK / f"cpu-table-{name}.yaml"
    path.write_text(yaml.safe_dump(table))
    port = free_port()
    log = WORK / f"cpu-router-{name}.log"
    cmd = [PY, "-m", "driftline.operator", "route", "--table", str(path)]
    env = None
    if src is not None:
        env = {**os.environ, "PYTHONPATH": f"{src / 'serving'}:{src / 'operator'}"}
    proc = start(
        [*cmd, "--port", str(port), "--log-level", "warning"], args.load_core, log, env=env
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base + "/v2/health/ready", proc, log)
        wrk(base + INFER, body, args.concurrency, args.warmup, args.load_core)
        spy = None
        raw = WORK / f"cpu-{name}.raw"
        if args.py_spy and spy_this:
            spy = subprocess.Popen(
                [
                    PY_SPY,
                    "record",
                    "--pid",
                    str(proc.pid),
                    "--format",
                    "raw",
                    "--rate",
                    "250",
                    "--nonblocking",
                    "--output",
                    str(raw),
                    "--duration",
                    str(int(args.duration)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        user0, sys0 = cpu_times(proc.pid)
        started = time.monotonic()
        level = wrk(base + INFER, body, args.concurrency, args.duration, args.load_core)
        user1, sys1 = cpu_times(proc.pid)
        wall = time.monotonic() - started
        done = level.requests_per_s * args.duration
        entry: dict[str, object] = {
            "requests_per_s": level.requests_per_s,
            "p50_ms": level.p50_ms,
            "p99_ms": level.p99_ms,
            "non_2xx": level.non_2xx,
            "user_us_per_request": round(1e6 * (user1 - user0) / done, 1) if done else None,
            "system_us_per_request": round(1e6 * (sys1 - sys0) / done, 1) if done else None,
            "cpu_us_per_request": round(1e6 * (user1 - user0 + sys1 - sys0) / done, 1)
            if done
            else None,
            "router_cpu_share": round((user1 - user0 + sys1 - sys0) / wall, 3),
        }
        if spy is not None:
            spy.wait(args.duration + 30)
            if raw.exists():
                entry["py_spy"] = top_functions(raw, args.top)
                entry["stages"] = stage_shares(raw)
        return entry
    finally:
        stop(proc)


def median(entries: list[dict[str, object]], key: str) -> float:
    """The median of one numeric field over rounds."""
    values = sorted(float(e[key]) for e in entries if e.get(key) is not None)  # type: ignore[arg-type]
    return values[len(values) // 2] if values else float("nan")


STAGES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # (stage, file suffix, function names; empty: every function of that file)
    (
        "client: read + parse",
        "serving/http.py",
        (
            "data_received",
            "on_message_begin",
            "on_url",
            "on_header",
            "on_headers_complete",
            "on_body",
            "on_message_complete",
        ),
    ),
    (
        "client: answer (render + write)",
        "serving/http.py",
        ("_write", "render_head", "_answer", "_responded", "_start_next", "_drain"),
    ),
    (
        "upstream: read + parse + release",
        "router/upstream.py",
        (
            "data_received",
            "on_header",
            "on_body",
            "on_message_complete",
            "_finish",
            "_clear",
            "release",
        ),
    ),
    (
        "upstream: pool + write",
        "router/upstream.py",
        ("send", "frame", "_take_idle", "usable", "start", "busy", "request", "_send_fresh"),
    ),
    ("stats + metrics", "router/stats.py", ()),
    ("stats + metrics", "router/metrics.py", ()),
    ("stats + metrics", "serving/metrics.py", ()),
    ("stats + metrics", "prometheus_client/", ()),
    ("shadow: compare", "router/compare.py", ()),
    ("shadow: compare", "numpy/", ()),
    ("route: pick + head + answer mapping", "router/proxy.py", ()),
    ("route: pick + head + answer mapping", "router/table.py", ()),
)
"""Where a py-spy sample's innermost frame puts it; the first match wins, the rest is "loop"."""


def stage_of(frame: str) -> str:
    """The stage of one py-spy frame (``function (path:line)``)."""
    function, _, where = frame.partition(" (")
    function = function.split(".")[-1]
    for stage, suffix, functions in STAGES:
        if suffix in where and (not functions or function in functions):
            return stage
    return "event loop, syscalls outside the above, other"


def stage_shares(raw: Path) -> list[tuple[str, float]]:
    """Share of samples per stage (innermost frame) from a py-spy raw file."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if stack and count_text.isdigit():
            counts[stage_of(stack.split(";")[-1])] += int(count_text)
    total = sum(counts.values()) or 1
    return [(stage, round(100 * n / total, 1)) for stage, n in counts.most_common()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--scenarios", default="split,mirror")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    parser.add_argument("--py-spy", action="store_true", help="sample each router while loaded")
    parser.add_argument("--label", default="", help="what this run is (box, commit)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--baseline", default="", help="git revision to compare with (A/B)")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    model = WORK / "artifacts" / "model-v2.onnx"
    if not model.exists():
        raise SystemExit(f"{model} missing: run bench/router/run.py once (it trains the model)")
    body = WORK / "request.json"
    body.write_text(
        json.dumps(
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
        )
    )
    wanted = args.scenarios.split(",")
    procs = []
    results: dict[str, list[dict[str, object]]] = {}
    try:
        urls = {}
        for variant, version in (("stable", "1"), ("canary", "2"), ("shadow", "3")):
            url, proc = server(model, version, variant, args.server_core, WORK / f"{variant}.log")
            urls[variant] = url
            procs.append(proc)
        split = {
            "version": 1,
            "stable": {"model_version": "1", "weight": 90, "endpoints": [urls["stable"]]},
            "canary": {"model_version": "2", "weight": 10, "endpoints": [urls["canary"]]},
        }
        tables = {
            "split": split,
            "mirror": {
                **split,
                "shadow": {
                    "model_version": "3",
                    "mirror_percent": 100,
                    "endpoints": [urls["shadow"]],
                },
            },
        }
        variants = [("current", None)]
        if args.baseline:
            variants.insert(0, ("baseline", export(args.baseline)))
        for round_index in range(args.rounds):
            for name in wanted:
                for code, src in variants:
                    key = f"{name} ({code})" if args.baseline else name
                    entry = measure(args, name, tables[name], body, src, round_index == 0)
                    results.setdefault(key, []).append(entry)
    finally:
        for proc in procs:
            stop(proc)
    report = {
        "benchmark": "router-cpu",
        "label": args.label,
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "load_average_at_end": os.getloadavg(),
        "scenarios": results,
    }
    lines = [
        "# Router CPU per request",
        "",
        f"{args.label} c={args.concurrency}, {args.duration:g} s per scenario, load average at "
        f"end {tuple(round(x, 2) for x in os.getloadavg())}.",
        "",
        f"Median over {args.rounds} round(s) (rounds alternate the routers).",
        "",
        "| scenario | req/s | p50 ms | p99 ms | router user us/req | system us/req | total |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entries in results.items():
        lines.append(
            f"| {name} | {median(entries, 'requests_per_s'):.0f} | "
            f"{median(entries, 'p50_ms'):.2f} | {median(entries, 'p99_ms'):.2f} | "
            f"{median(entries, 'user_us_per_request')} | "
            f"{median(entries, 'system_us_per_request')} | "
            f"{median(entries, 'cpu_us_per_request')} |"
        )
    for name, entries in results.items():
        shares = entries[0].get("stages")
        if isinstance(shares, list):
            lines += ["", f"## {name}: share of py-spy samples by stage (innermost frame)", ""]
            lines += [f"- {share}% {stage}" for stage, share in shares]
    for name, entries in results.items():
        spy = entries[0].get("py_spy")
        if isinstance(spy, dict):
            lines += ["", f"## {name}: py-spy, share of samples (self / total)", ""]
            lines += [f"- self {share}% {fn}" for fn, share in spy["self"]]
            lines += [""] + [f"- total {share}% {fn}" for fn, share in spy["total"]]
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "router-cpu.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "router-cpu.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
