"""The router benchmark: our model server direct vs through ``driftline route``, in one run.

Scenarios (same model in every server process: the quickstart's gradient-boosting churn model,
``model-v2.onnx``; same single-row OIP v2 request; same load tool and levels as the server
benchmark: wrk from Debian with a Lua body, one thread, concurrency 1, 8, 64):

- ``direct``: wrk -> ``driftline serve`` (stable).
- ``split``: wrk -> ``driftline route`` -> stable 90 / canary 10 (two server processes).
- ``mirror``: as ``split`` plus a shadow server receiving a copy of 100% of the requests; the
  router compares a sample of the answer pairs (``SHADOW_COMPARE_PER_S`` per second).
- ``mirror-apart``: the shadow server on the load core instead.
- ``mirror-idle``: the shadow server on the servers' core at nice 19: it only gets spare CPU
  (as a shadow with pods of its own would not take the live servers' CPU); copies it cannot
  take are shed by the in-flight bound.

Placement on the 2-core machine (``--server-core``, ``--load-core``): every model server is
pinned to the server core; wrk and the router share the load core. So the model servers get the
same one core in every scenario, and the router's cost shows up as what it takes from the load
core and as added latency.

Targets (issue 5): throughput through the router >= 70 % of direct at c=64; added p50 <= 1 ms at
c=1; with 100 % mirroring the client-facing p99 rises <= 20 % (mirror vs split, same level).

Usage: ``make bench-router`` or ``python bench/router/run.py --duration 10 --warmup 3``.
Writes ``bench/results/router.json`` and ``bench/results/router.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/: the shared wrk runner
from wrkload.wrk import Level, wrk

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = ROOT / "bench" / ".work" / "router"
RESULTS = ROOT / "bench" / "results"
PY = str(ROOT / ".venv" / "bin" / "python")
READY_DEADLINE_S = 60.0
INFER = "/v2/models/churn/infer"


@dataclass
class Scenario:
    name: str
    description: str
    levels: list[Level] = field(default_factory=list)
    router_stats: dict[str, object] = field(default_factory=dict)
    router_cpu_s: float | None = None
    error: str | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(
    cmd: list[str], core: int, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            ["taskset", "-c", str(core), *cmd], stdout=out, stderr=subprocess.STDOUT, env=env
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM by pid, SIGKILL after 20 s."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(20)


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_DEADLINE_S
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"exited {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)  # polling interval of a wait with a deadline
    raise RuntimeError(f"{url} not ready within {READY_DEADLINE_S}s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server(
    model: Path, version: str, variant: str, core: int, log: Path, nice: int = 0
) -> tuple[str, object]:
    port = free_port()
    proc = start(
        [
            *(["nice", "-n", str(nice)] if nice else []),
            PY,
            "-m",
            "driftline.operator",
            "serve",
            "--model",
            str(model),
            "--name",
            "churn",
            "--version",
            version,
            "--variant",
            variant,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        core,
        log,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/v2/health/ready", proc, log)
    return url, proc


def check(url: str, body: Path) -> None:
    answer = httpx.post(url, content=body.read_bytes(), timeout=10)
    if answer.status_code != 200:
        raise RuntimeError(f"check request to {url} answered {answer.status_code}: {answer.text}")


def median_level(levels: list[Level]) -> Level:
    """The run with the median throughput of repeated runs at one level (not a mix of runs)."""
    ordered = sorted(levels, key=lambda lv: lv.requests_per_s)
    return ordered[len(ordered) // 2]


def run(args: argparse.Namespace) -> dict[str, object]:
    WORK.mkdir(parents=True, exist_ok=True)
    artifacts = WORK / "artifacts"
    if not (artifacts / "model-v2.onnx").exists():
        subprocess.run(
            [
                PY,
                str(ROOT / "examples" / "quickstart" / "train.py"),
                "--out",
                str(artifacts),
                "--manifests",
                str(WORK / "no-manifests"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    model = artifacts / "model-v2.onnx"
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
    procs: list[subprocess.Popen[bytes]] = []
    runs: dict[str, dict[int, list[Level]]] = {}
    scenarios = [
        Scenario("direct", "wrk -> driftline serve (stable)"),
        Scenario("split", "wrk -> driftline route -> stable 90 / canary 10"),
        Scenario("mirror", "as split, plus 100% of requests mirrored to a shadow and compared"),
        Scenario(
            "mirror-apart",
            "as mirror, with the shadow server on the load core instead of the servers' core",
        ),
        Scenario(
            "mirror-idle",
            "as mirror, with the shadow server on the servers' core at nice 19: it gets only "
            "spare CPU, and the copies it cannot take are shed by the in-flight bound",
        ),
    ]
    routers: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
    try:
        urls = {}
        named: dict[str, subprocess.Popen[bytes]] = {}
        placements = (
            ("stable", "1", args.server_core, 0),
            ("canary", "2", args.server_core, 0),
            ("shadow", "3", args.server_core, 0),
            ("shadow-apart", "3", args.load_core, 0),
            ("shadow-idle", "3", args.server_core, 19),
        )
        for variant, version, core, nice in placements:
            role = variant.split("-")[0]
            url, proc = server(model, version, role, core, WORK / f"{variant}.log", nice)
            urls[variant] = url
            procs.append(proc)  # type: ignore[arg-type]
            named[variant] = proc  # type: ignore[assignment]
        split_table = {
            "version": 1,
            "stable": {"model_version": "1", "weight": 90, "endpoints": [urls["stable"]]},
            "canary": {"model_version": "2", "weight": 10, "endpoints": [urls["canary"]]},
        }
        mirror_table = {
            **split_table,
            "version": 2,
            "shadow": {"model_version": "3", "mirror_percent": 100, "endpoints": [urls["shadow"]]},
        }
        apart_table = {
            **mirror_table,
            "shadow": {
                "model_version": "3",
                "mirror_percent": 100,
                "endpoints": [urls["shadow-apart"]],
            },
        }
        idle_table = {
            **mirror_table,
            "shadow": {
                "model_version": "3",
                "mirror_percent": 100,
                "endpoints": [urls["shadow-idle"]],
            },
        }
        for name, table in (
            ("split", split_table),
            ("mirror", mirror_table),
            ("mirror-apart", apart_table),
            ("mirror-idle", idle_table),
        ):
            path = WORK / f"table-{name}.yaml"
            path.write_text(yaml.safe_dump(table))
            port = free_port()
            log = WORK / f"router-{name}.log"
            proc = start(
                [
                    PY,
                    "-m",
                    "driftline.operator",
                    "route",
                    "--table",
                    str(path),
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                args.router_core,
                log,
            )
            procs.append(proc)
            wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", proc, log)
            routers[name] = (f"http://127.0.0.1:{port}", proc)
            named[f"router-{name}"] = proc
        targets_url = {
            "direct": urls["stable"] + INFER,
            "split": routers["split"][0] + INFER,
            "mirror": routers["mirror"][0] + INFER,
            "mirror-apart": routers["mirror-apart"][0] + INFER,
            "mirror-idle": routers["mirror-idle"][0] + INFER,
        }
        for url in targets_url.values():
            check(url, body)
            wrk(url, body, 8, args.warmup, args.load_core)
        cpu0 = {name: cpu_seconds(proc.pid) for name, (_, proc) in routers.items()}
        # Interleaved: every round runs each scenario at each level back to back, so a change in
        # background load hits all scenarios alike; the median round is reported.
        for _ in range(args.rounds):
            for c in args.levels:
                for s in scenarios:
                    before = {n: cpu_seconds(p.pid) for n, p in named.items()}
                    level = wrk(targets_url[s.name], body, c, args.duration, args.load_core)
                    done = level.requests_per_s * int(args.duration)
                    if done:
                        level.cpu_us_per_request = {
                            n: round(1e6 * (cpu_seconds(p.pid) - before[n]) / done, 1)
                            for n, p in named.items()
                        }
                    runs.setdefault(s.name, {}).setdefault(c, []).append(level)
        for s in scenarios:
            s.levels = [median_level(runs[s.name][c]) for c in args.levels]
            if s.name in routers:
                base, proc = routers[s.name]
                s.router_cpu_s = round(cpu_seconds(proc.pid) - cpu0[s.name], 2)
                s.router_stats = httpx.get(base + "/stats?window=600", timeout=5).json()
    finally:
        for proc in procs:
            stop(proc)
    return {
        "benchmark": "router",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_end": os.getloadavg(),
        },
        "placement": {
            "servers": f"core {args.server_core}",
            "router": f"core {args.router_core}",
            "wrk": f"core {args.load_core}",
        },
        "model": "quickstart churn model-v2.onnx (gradient boosting), single-row request, "
        "same model in every server",
        "load": f"wrk -t1, {int(args.duration)}s per level after a {int(args.warmup)}s warm-up, "
        f"{args.rounds} interleaved rounds, median round reported",
        "scenarios": [asdict(s) for s in scenarios],
        "all_runs": {
            name: {c: [asdict(lv) for lv in lvs] for c, lvs in by.items()}
            for name, by in runs.items()
        },
        "targets": targets(scenarios),
        "duration_s": int(args.duration),
    }


def targets(scenarios: list[Scenario]) -> dict[str, object]:
    by = {s.name: {lv.concurrency: lv for lv in s.levels} for s in scenarios}
    out: dict[str, object] = {}
    direct, split = by.get("direct", {}), by.get("split", {})
    if 64 in direct and 64 in split:
        ratio = split[64].requests_per_s / direct[64].requests_per_s
        out["throughput_ratio_c64"] = {
            "value": round(ratio, 3),
            "target": ">= 0.70",
            "met": ratio >= 0.70,
        }
    if 1 in direct and 1 in split:
        added = split[1].p50_ms - direct[1].p50_ms
        out["added_p50_ms_c1"] = {"value": round(added, 3), "target": "<= 1.0", "met": added <= 1.0}
    for name in ("mirror", "mirror-apart", "mirror-idle"):
        other = by.get(name, {})
        rises = {
            c: round(other[c].p99_ms / split[c].p99_ms - 1.0, 3)
            for c in sorted(set(split) & set(other))
        }
        if rises:
            out[f"p99_rise_{name}"] = {
                "value": rises,
                "target": "<= 0.20 at every level",
                "met": all(v <= 0.20 for v in rises.values()),
            }
    return out


def markdown(report: dict[str, object]) -> str:
    scenarios: list[dict[str, object]] = report["scenarios"]  # type: ignore[assignment]
    direct = {lv["concurrency"]: lv for lv in scenarios[0]["levels"]}  # type: ignore[index]
    lines = [
        "# Router benchmark",
        "",
        f"Model: {report['model']}. Load: {report['load']}. Placement: "
        f"{report['placement']}. Machine: {report['machine']}.",
        "",
        "| scenario | c | req/s | vs direct | p50 ms | p90 ms | p99 ms | non-2xx |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in scenarios:
        for lv in s["levels"]:  # type: ignore[union-attr]
            base = direct.get(lv["concurrency"])
            ratio = f"{lv['requests_per_s'] / base['requests_per_s']:.2f}" if base else ""
            lines.append(
                f"| {s['name']} | {lv['concurrency']} | {lv['requests_per_s']:.0f} | {ratio} | "
                f"{lv['p50_ms']:.2f} | {lv['p90_ms']:.2f} | {lv['p99_ms']:.2f} | {lv['non_2xx']} |"
            )
        if s.get("error"):
            lines.append(f"| {s['name']} | error: {s['error']} | | | | | | |")
    duration = float(report["duration_s"])  # type: ignore[arg-type]
    runs: dict[str, dict[object, list[dict[str, float]]]] = report["all_runs"]  # type: ignore[assignment]
    for s in scenarios:
        if s.get("router_cpu_s") is not None:
            requests = sum(
                lv["requests_per_s"] * duration for lvs in runs[s["name"]].values() for lv in lvs
            )
            if requests:
                lines.append("")
                lines.append(
                    f"Router CPU ({s['name']}): {s['router_cpu_s']} s for ~{requests:.0f} "
                    f"requests = {1e6 * float(s['router_cpu_s']) / requests:.0f} us per request."
                )
    lines += [
        "",
        "Where the CPU goes (microseconds of CPU per client request, median round; "
        "servers = stable + canary, shadow = the scenario's shadow server):",
        "",
        "| scenario | c | router | servers | shadow |",
        "|---|---|---|---|---|",
    ]
    for s in scenarios:
        for lv in s["levels"]:  # type: ignore[union-attr]
            cpu = lv.get("cpu_us_per_request") or {}
            router = cpu.get(f"router-{s['name']}", 0.0) if s["name"] != "direct" else 0.0
            servers = cpu.get("stable", 0.0) + cpu.get("canary", 0.0)
            shadow = {
                "mirror": cpu.get("shadow", 0.0),
                "mirror-apart": cpu.get("shadow-apart", 0.0),
                "mirror-idle": cpu.get("shadow-idle", 0.0),
            }
            lines.append(
                f"| {s['name']} | {lv['concurrency']} | {router:.0f} | {servers:.0f} | "
                f"{shadow.get(s['name'], 0.0):.0f} |"
            )
    lines += ["", "| target | value | goal | met |", "|---|---|---|---|"]
    for name, t in report["targets"].items():  # type: ignore[union-attr]
        lines.append(f"| {name} | {t['value']} | {t['target']} | {'yes' if t['met'] else 'NO'} |")
    for s in scenarios:
        if s["name"].startswith("mirror") and s["router_stats"]:
            for pair in s["router_stats"].get("shadow", []):  # type: ignore[union-attr]
                lines.append("")
                lines.append(
                    f"{s['name']} ({pair['primary']} -> shadow): mirrored {pair['mirrored']}, "
                    f"compared {pair['compared']}, skipped {pair.get('skipped', 0)} (over the "
                    f"comparison budget), dropped {pair['dropped']} (in-flight bound), "
                    f"timeouts {pair['shadow_timeouts']}, errors {pair['shadow_errors']}, "
                    f"class agreement {pair['class_agreement']}."
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument(
        "--levels", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 64]
    )
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    parser.add_argument("--router-core", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    report = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "router.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "router.md").write_text(markdown(report))
    print(markdown(report))
    sys.exit(0)


if __name__ == "__main__":
    main()
