"""The model-server benchmark: Driftline side by side with its peers, in one run.

Servers (each pinned to the server core, one at a time, same model, same single-row V2 request):

- ``driftline``: ``driftline serve`` with validation, metrics and prediction records on (records
  go to a sink on the load core);
- ``starlette-lean``: Starlette + orjson + onnxruntime on uvicorn/httptools/uvloop (~40 lines);
- ``fastapi-naive``: FastAPI + pydantic models + onnxruntime on default uvicorn;
- ``mlserver-default`` / ``mlserver-tuned``: MLServer 1.7 with its scikit-learn runtime (default
  settings; tuned = parallel workers off), joblib model, own virtualenv with uvloop 0.21;
- ``kserve``: KServe's ``kserve`` SDK ModelServer with a scikit-learn model class, joblib model.

Load: wrk (Debian) with a Lua body, one thread, pinned to the load core; concurrency levels
(default 1, 8, 64), each ``--duration`` seconds after a ``--warmup``. Reported per level: req/s,
p50, p99, non-2xx count; per server: RSS (server process tree) after the run. Also the in-process
ONNX Runtime ceiling (rows/s at batch 1 and 32, pinned to the server core) and, with ``--stacks``,
a hello-world comparison of HTTP stacks (our core, uvicorn, granian ASGI/RSGI).

Usage: ``make bench-serving`` (creates the peer virtualenvs), or
``python bench/serving/run.py --duration 15 --warmup 5``; ``--quick`` for a short look at
driftline and the lean app while working (written under ``bench/.work/``). Driftline's mean rows
per model run at each level are read from its ``/metrics`` (batch-size histogram). Where the
time goes, per stage and load-insensitive: ``bench/serving/profile.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/: the shared wrk runner
from wrkload.wrk import Level, wrk

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VENVS = ROOT / "bench" / ".venvs"
WORK = ROOT / "bench" / ".work" / "serving"
RESULTS = ROOT / "bench" / "results"
OURS = ROOT / ".venv" / "bin" / "python"
READY_DEADLINE_S = 180.0


@dataclass
class ServerResult:
    name: str
    description: str
    levels: list[Level] = field(default_factory=list)
    rss_mb: float = 0.0
    error: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MiB."""
    total = 0
    todo = [pid]
    seen: set[int] = set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            todo.extend(int(c) for c in children)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1024.0


@dataclass
class Spec:
    name: str
    description: str
    cmd: list[str]
    infer_path: str
    ready_path: str
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


def start(spec: Spec, core: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:
        return subprocess.Popen(
            ["taskset", "-c", str(core), *spec.cmd],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, **spec.env},
            cwd=spec.cwd,
            start_new_session=True,  # its own process group: MLServer forks workers
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (its pid), SIGKILL after 20 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(20)


def wait_ready(base: str, path: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_DEADLINE_S
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"exited with {proc.returncode}")
            try:
                if client.get(base + path).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)  # polling interval of a wait-with-deadline
    raise RuntimeError(f"not ready within {READY_DEADLINE_S}s")


def onnx_ceiling(model: Path, rows: np.ndarray, core: int, seconds: float) -> dict[str, float]:
    """In-process ONNX Runtime rows/s at batch 1 and 32 (one thread, pinned to ``core``)."""
    import onnxruntime as ort

    os.sched_setaffinity(0, {core})
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), options)
    out: dict[str, float] = {}
    for batch in (1, 32):
        x = rows[:batch]
        for _ in range(200):
            session.run(None, {"input": x})
        n = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            for _ in range(50):
                session.run(None, {"input": x})
            n += 50
        out[f"rows_per_s_batch_{batch}"] = n * batch / (time.perf_counter() - started)
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return out


def specs(work: Path, sink_url: str) -> list[Spec]:
    web = str(VENVS / "web" / "bin" / "python")
    mls = VENVS / "mlserver" / "bin" / "mlserver"
    ks = str(VENVS / "kserve" / "bin" / "python")
    onnx, joblib_path = str(work / "model.onnx"), str(work / "model.joblib")
    out: list[Spec] = []
    port = free_port()
    out.append(
        Spec(
            "driftline",
            "driftline serve: validation, metrics and prediction records on",
            [
                str(OURS),
                "-m",
                "driftline.operator",
                "serve",
                "--model",
                onnx,
                "--name",
                "model",
                "--port",
                str(port),
                "--monitor-url",
                sink_url,
                "--log-level",
                "warning",
            ],
            f"http://127.0.0.1:{port}/v2/models/model/infer",
            "/v2/health/ready",
        )
    )
    port = free_port()
    out.append(
        Spec(
            "starlette-lean",
            "Starlette + orjson + onnxruntime on uvicorn/httptools/uvloop (~40 lines)",
            [web, str(HERE / "peers" / "starlette_lean.py"), onnx, str(port)],
            f"http://127.0.0.1:{port}/v2/models/model/infer",
            "/v2/health/ready",
        )
    )
    port = free_port()
    out.append(
        Spec(
            "fastapi-naive",
            "FastAPI + pydantic models + onnxruntime on default uvicorn",
            [web, str(HERE / "peers" / "fastapi_naive.py"), onnx, str(port)],
            f"http://127.0.0.1:{port}/v2/models/model/infer",
            "/v2/health/ready",
        )
    )
    for variant, workers in (("default", None), ("tuned", 0)):
        port = free_port()
        folder = work / f"mlserver-{variant}"
        folder.mkdir(exist_ok=True)
        shutil.copy(joblib_path, folder / "model.joblib")
        settings: dict[str, object] = {
            "http_port": port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
        }
        if workers is not None:
            settings["parallel_workers"] = workers
        (folder / "settings.json").write_text(json.dumps(settings))
        (folder / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": "model",
                    "implementation": "mlserver_sklearn.SKLearnModel",
                    "parameters": {"uri": "./model.joblib"},
                }
            )
        )
        out.append(
            Spec(
                f"mlserver-{variant}",
                "MLServer 1.7 + mlserver-sklearn, "
                + ("default settings" if workers is None else "parallel_workers=0"),
                [str(mls), "start", str(folder)],
                f"http://127.0.0.1:{port}/v2/models/model/infer",
                "/v2/health/ready",
                cwd=folder,
            )
        )
    port = free_port()
    out.append(
        Spec(
            "kserve",
            "KServe SDK ModelServer + scikit-learn model class (joblib)",
            [
                ks,
                str(HERE / "peers" / "kserve_sklearn.py"),
                joblib_path,
                str(port),
                str(free_port()),
            ],
            f"http://127.0.0.1:{port}/v2/models/model/infer",
            "/v2/health/ready",
        )
    )
    return out


def run_server(spec: Spec, body: Path, args: argparse.Namespace, work: Path) -> ServerResult:
    result = ServerResult(spec.name, spec.description)
    proc = start(spec, args.server_core, work / f"{spec.name}.log")
    try:
        base = spec.infer_path.split("/v2/")[0]
        wait_ready(base, spec.ready_path, proc)
        check = httpx.post(
            spec.infer_path,
            content=body.read_bytes(),
            headers={"content-type": "application/json"},
            timeout=10,
        )
        if check.status_code != 200:
            raise RuntimeError(f"check request answered {check.status_code}: {check.text[:300]}")
        result.extra["sample_response"] = check.json()
        wrk(spec.infer_path, body, 8, args.warmup, args.load_core)
        for c in args.levels:
            runs_before = _batch_runs(base) if spec.name == "driftline" else None
            level = wrk(spec.infer_path, body, c, args.duration, args.load_core)
            batching = ""
            if runs_before is not None:
                runs, rows = (a - b for a, b in zip(_batch_runs(base), runs_before, strict=True))
                result.extra[f"c{c}_mean_batch_rows"] = rows / runs if runs else 0.0
                batching = f"  {rows / runs if runs else 0.0:5.1f} rows/run"
            print(
                f"  {spec.name:18s} c={c:<3d} {level.requests_per_s:10.0f} req/s  "
                f"p50 {level.p50_ms:7.3f} ms  p99 {level.p99_ms:7.3f} ms  "
                f"non-2xx {level.non_2xx}{batching}",
                flush=True,
            )
            result.levels.append(level)
        result.rss_mb = rss_mb(proc.pid)
        if spec.name == "driftline":
            metrics = httpx.get(base + "/metrics", timeout=10).text
            result.extra["metrics"] = {
                line.split(" ")[0]: float(line.split(" ")[1])
                for line in metrics.splitlines()
                if line.startswith(
                    (
                        "driftline_server_records_",
                        "driftline_server_batch_rows_sum",
                        "driftline_server_batch_rows_count",
                        "driftline_server_requests_total",
                    )
                )
            }
    except (RuntimeError, subprocess.SubprocessError, httpx.HTTPError) as exc:
        result.error = str(exc)
        print(f"  {spec.name}: FAILED: {exc}", flush=True)
    finally:
        stop(proc)
    return result


def _batch_runs(base: str) -> tuple[float, float]:
    """Driftline's model runs and rows so far, from its /metrics (batch-size histogram)."""
    text = httpx.get(base + "/metrics", timeout=10).text
    values = {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(("driftline_server_batch_rows_count", "driftline_server_batch_rows_sum"))
    }
    return (
        values.get("driftline_server_batch_rows_count", 0.0),
        values.get("driftline_server_batch_rows_sum", 0.0),
    )


def run_stacks(args: argparse.Namespace, work: Path) -> list[dict[str, object]]:
    body = work / "hello.json"
    body.write_text('{"inputs":[]}')
    out = []
    for stack, python in (
        ("driftline", OURS),
        ("uvicorn", VENVS / "web" / "bin" / "python"),
        ("granian-asgi", VENVS / "web" / "bin" / "python"),
        ("granian-rsgi", VENVS / "web" / "bin" / "python"),
    ):
        port = free_port()
        spec = Spec(
            stack,
            "",
            [str(python), str(HERE / "peers" / "stack_hello.py"), stack, str(port)],
            f"http://127.0.0.1:{port}/",
            "/",
            env={"PYTHONPATH": str(HERE / "peers")},
            cwd=HERE / "peers",
        )
        proc = start(spec, args.server_core, work / f"stack-{stack}.log")
        try:
            wait_ready(f"http://127.0.0.1:{port}", "/", proc)
            wrk(spec.infer_path, body, 64, min(args.warmup, 3), args.load_core)
            level = wrk(spec.infer_path, body, 64, args.stack_duration, args.load_core)
            print(
                f"  stack {stack:14s} c=64 {level.requests_per_s:10.0f} req/s  "
                f"p99 {level.p99_ms:.3f} ms",
                flush=True,
            )
            out.append({"stack": stack, **asdict(level)})
        except (RuntimeError, subprocess.SubprocessError, httpx.HTTPError) as exc:
            out.append({"stack": stack, "error": str(exc)})
        finally:
            stop(proc)
    return out


def _level(server: dict[str, object] | None, concurrency: int) -> dict[str, float] | None:
    if not server or server.get("error"):
        return None
    for lv in server["levels"]:  # type: ignore[attr-defined]
        if lv["concurrency"] == concurrency:
            return lv  # type: ignore[no-any-return]
    return None


def targets(by: dict[str, dict[str, object]]) -> list[str]:
    """The issue's targets, each marked met or missed, from the measured numbers (pure)."""
    ours64, ours1 = _level(by.get("driftline"), 64), _level(by.get("driftline"), 1)
    mls, lean = _level(by.get("mlserver-default"), 64), _level(by.get("starlette-lean"), 64)
    out = ["", "Targets (issue 3):", ""]

    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"

    if ours64 and mls:
        r = ours64["requests_per_s"] / mls["requests_per_s"]
        out.append(f"- c=64 throughput >= 20x MLServer default: {r:.1f}x, {mark(r >= 20)}")
    if ours64 and lean:
        r = ours64["requests_per_s"] / lean["requests_per_s"]
        out.append(f"- c=64 throughput >= 0.8x lean Starlette: {r:.2f}x, {mark(r >= 0.8)}")
    if ours64:
        out.append(f"- c=64 p99 <= 8 ms: {ours64['p99_ms']:.2f} ms, {mark(ours64['p99_ms'] <= 8)}")
    if ours1:
        out.append(f"- c=1 p50 <= 0.3 ms: {ours1['p50_ms']:.3f} ms, {mark(ours1['p50_ms'] <= 0.3)}")
    ours = by.get("driftline")
    if ours and not ours.get("error"):
        rss = float(ours["rss_mb"])  # type: ignore[arg-type]
        out.append(f"- RSS <= 200 MB: {rss:.0f} MB, {mark(rss <= 200)}")
    return out


def markdown(report: dict[str, object]) -> str:
    servers: list[dict[str, object]] = report["servers"]  # type: ignore[assignment]
    by = {s["name"]: s for s in servers}
    ours = by.get("driftline")
    levels = report["levels"]  # type: ignore[index]
    lines = [
        f"Model: {report['model']}. Load: {report['load']}. "
        f"{report['duration_s']} s per level after a {report['warmup_s']} s warm-up. "
        f"Machine: {report['machine']['cpus']} CPUs, load average before/after "  # type: ignore[index]
        f"{report['machine']['loadavg_before'][0]:.1f}/"  # type: ignore[index]
        f"{report['machine']['loadavg_after'][0]:.1f}"  # type: ignore[index]
        + (
            " (other work was running on this box: read the ratios, not the absolute figures)."
            if max(report["machine"]["loadavg_before"][0], report["machine"]["loadavg_after"][0])  # type: ignore[index]
            > report["machine"]["cpus"]  # type: ignore[index]
            else "."
        ),
        "",
        "| server | "
        + " | ".join(f"c={c} req/s | c={c} p50 ms | c={c} p99 ms" for c in levels)
        + " | RSS MB | c=64 ours/peer |",
        "|---|" + "---|" * (3 * len(levels) + 2),
    ]
    for s in servers:
        if s.get("error"):
            lines.append(f"| {s['name']} | failed: {s['error']} |")
            continue
        cells = []
        for lv in s["levels"]:  # type: ignore[union-attr]
            cells += [f"{lv['requests_per_s']:.0f}", f"{lv['p50_ms']:.2f}", f"{lv['p99_ms']:.2f}"]
        ratio = ""
        if ours and not ours.get("error") and s["name"] != "driftline":
            ours64 = ours["levels"][-1]["requests_per_s"]  # type: ignore[index]
            peer64 = s["levels"][-1]["requests_per_s"]  # type: ignore[index]
            ratio = f"{ours64 / peer64:.1f}x" if peer64 else "n/a"
        lines.append(f"| {s['name']} | " + " | ".join(cells) + f" | {s['rss_mb']:.0f} | {ratio} |")
    lines += targets(by)
    ceiling = report.get("onnxruntime_ceiling", {})
    if ceiling:
        lines += [
            "",
            "In-process ONNX Runtime ceiling (one thread, server core): "
            + ", ".join(f"{k.replace('_', ' ')} = {v:,.0f}" for k, v in ceiling.items()),
        ]
    stacks = report.get("stacks")
    if stacks:
        lines += [
            "",
            "HTTP stacks, hello-world JSON, c=64 (how the stack was chosen):",
            "",
            "| stack | req/s | p99 ms |",
            "|---|---|---|",
        ]
        for st in stacks:  # type: ignore[union-attr]
            if "error" in st:
                lines.append(f"| {st['stack']} | failed: {st['error']} | |")
            else:
                lines.append(f"| {st['stack']} | {st['requests_per_s']:.0f} | {st['p99_ms']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument(
        "--levels", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 64]
    )
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    parser.add_argument("--only", default="", help="comma-separated server names")
    parser.add_argument("--stacks", action="store_true", help="also compare HTTP stacks")
    parser.add_argument("--stack-duration", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a quick look while working: driftline and starlette-lean only, 5 s per level "
        "after 2 s, results to bench/.work/serving/quick/ (never to bench/results/)",
    )
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup = 5.0, 2.0
        args.only = args.only or "driftline,starlette-lean"
        args.out = WORK / "quick"

    WORK.mkdir(parents=True, exist_ok=True)
    model_py = HERE / "model.py"
    stale = [WORK / n for n in ("model.onnx", "model.joblib", "request.json", "rows.npy")]
    if any(not p.exists() or p.stat().st_mtime < model_py.stat().st_mtime for p in stale):
        subprocess.run([sys.executable, str(model_py), str(WORK)], check=True)
    body = WORK / "request.json"
    rows = np.load(WORK / "rows.npy")
    load_before = os.getloadavg()
    print("in-process onnxruntime ceiling ...", flush=True)
    ceiling = onnx_ceiling(WORK / "model.onnx", rows, args.server_core, 3.0)
    print(f"  {ceiling}", flush=True)

    sink_port = free_port()
    sink = start(
        Spec("sink", "", [str(OURS), str(HERE / "peers" / "sink.py"), str(sink_port)], "", "/"),
        args.load_core,
        WORK / "sink.log",
    )
    results: list[ServerResult] = []
    try:
        wait_ready(f"http://127.0.0.1:{sink_port}", "/", sink)
        wanted = set(filter(None, args.only.split(",")))
        for spec in specs(WORK, f"http://127.0.0.1:{sink_port}"):
            if wanted and spec.name not in wanted:
                continue
            print(f"{spec.name}: {spec.description}", flush=True)
            results.append(run_server(spec, body, args, WORK))
        sink_stats = httpx.get(f"http://127.0.0.1:{sink_port}/", timeout=5).json()
    finally:
        stop(sink)
    stacks = run_stacks(args, WORK) if args.stacks else None

    report: dict[str, object] = {
        "model": "scikit-learn GradientBoostingClassifier, 100 trees, depth 8, 20 features, "
        "20k rows, seed 0 (ONNX via skl2onnx for ONNX Runtime servers, joblib for "
        "scikit-learn servers)",
        "load": f"wrk 4.1 (Debian), 1 thread, single-row V2 JSON requests over loopback; server "
        f"pinned to core {args.server_core}, wrk to core {args.load_core}",
        "levels": args.levels,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "onnxruntime_ceiling": ceiling,
        "record_sink": sink_stats,
        "servers": [asdict(r) for r in results],
        "stacks": stacks,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (args.out / "serving.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
