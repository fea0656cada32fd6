# ruff: noqa: E501
"""Control-plane timings of the operator against the Kubernetes API emulator, in one run.

Three processes' worth of parts: the operator runs in a process of its own
(``operator_proc.py``: kopf + Driftline's handlers + the real ``KubeClient``), so its CPU time and
peak RSS are its own; this process hosts the API emulator (``KubernetesEmulatorPlus`` from
tests/integration/operator_env, over HTTP on 127.0.0.1, in a thread), a fake router-stats endpoint
the analysis reads (the shape of ``analysis_http.RouterStatsDoc``), and a stand-in for the
Deployment controller that marks child Deployments ready (there is no kubelet here). The
benchmark's own writes carry the User-Agent ``driftline-bench`` and are not counted as the
operator's API requests; its reads go straight to the emulator's memory (no HTTP).

Scenarios (each group with a fresh emulator and operator process):

- ``rollout`` (operator resync 15 s, the default): a good rollout with 3 steps, ``pause`` =
  ``interval`` = 2 s, ``drain`` 0 s: spec.model changed -> each step's weight in status ->
  promoted (``stableModel`` is the new Model and no canary: ``Promoting`` ended on the stand-in
  controller's rolled-out status of ``<dep>-stable``). Overhead = total - the configured holds; per step too;
- ``breach`` (same operator): a rollout holds at weight 20 % (pause 10 min, interval 5 s,
  failureLimit 0); after a passing tick, at a spread of phases within the interval, the fake stats
  flip to a 10 % error rate; measured flip -> ``status.canaryWeight`` 0 and flip -> the
  route-table ConfigMap giving the canary no traffic. Target: <= interval + 2 s;
- ``create`` (operator resync ``--scale-resync``, 15 s by default: the operator's own default;
  pod readiness reaches the owner through the child-Deployment watch, not the resync): a
  Deployment (Model already Ready) -> every child present, and -> ``Healthy`` after the stand-in
  marked the pods ready; p50 / p90 over ``--creates``;
- ``scale`` (same operator): ``--deployments`` Deployments created at once -> all children ->
  all ``Healthy``; API requests by kind, per Deployment; operator CPU seconds; then a steady-state
  window (everything Healthy, nothing changing): requests and operator CPU per second.

No peer runs here: Argo Rollouts and Flagger are Go controllers that need a real API server (and
their own CRDs and controllers); the emulator does not run them. So the figures are absolute,
reported against the issue's targets, not as ratios.

Usage: ``python bench/operator/control_plane.py [--creates 20] [--deployments 200]
[--only rollout,breach,create,scale] [--profile DIR] [--operator-src DIR]``; writes ``bench/results/operator.json``
and ``.md`` (with ``--only``, nothing is written).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration" / "operator_env"))

import kubernetes  # noqa: E402
from aiohttp import web  # noqa: E402
from kube_env import KMockThread, write_kubeconfig  # noqa: E402
from kube_objects import (  # noqa: E402
    APPS,
    NS,
    create,
    deployment_body,
    mark_ready,
    model_body,
    patch_spec,
    write_model,
)

from driftline.operator import names  # noqa: E402

CONFIGMAPS = "v1/configmaps"
BENCH_AGENT = "driftline-bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
OPERATOR_SRC = ""
"""A source tree whose ``operator/`` and ``serving/`` the operator process imports (``--operator-src``)."""


# ------------------------------------------------------------------------------------ helpers
async def wait_for(fn: Callable[[], Any], timeout: float, what: str, every: float = 0.01) -> float:
    start = time.perf_counter()
    while True:
        if fn():
            return time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"{what} not within {timeout} s")
        await asyncio.sleep(every)  # polling interval of a condition with a deadline


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_mem_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def quantiles(xs: list[float]) -> dict[str, float]:
    out = {"p50": statistics.median(xs), "max": max(xs), "min": min(xs), "n": len(xs)}
    if len(xs) >= 2:
        out["p90"] = statistics.quantiles(xs, n=10, method="inclusive")[-1]
    return out


class Cluster:
    """The emulator (in a thread of this process) and the benchmark's view of it."""

    def __init__(self, tmp: Path) -> None:
        self.k8s = KMockThread().start()
        self.kubeconfig = write_kubeconfig(tmp / "kubeconfig", self.k8s.url)
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(
            config_file=str(self.kubeconfig), client_configuration=config
        )
        self.client = kubernetes.client.ApiClient(configuration=config)
        self.client.user_agent = BENCH_AGENT
        self.custom = kubernetes.client.CustomObjectsApi(self.client)
        self.apps = kubernetes.client.AppsV1Api(self.client)

    def stop(self) -> None:
        self.client.close()
        self.k8s.stop()

    def emulator_cpu_s(self) -> float:
        """CPU seconds of the emulator's thread (its event loop: every API request it served)."""
        return self.k8s.call(time.thread_time)

    def objects(self, resource: str) -> dict[str, dict[str, Any]]:
        return self.k8s.objects(resource, NS)

    def get(self, resource: str, name: str) -> dict[str, Any]:
        return self.objects(resource).get(name) or {}

    def status(self, name: str) -> dict[str, Any]:
        return self.get(names.DEPLOYMENT.resource, name).get("status") or {}

    def requests(self) -> collections.Counter[str]:
        """Requests served so far, not the benchmark's own (``KMockThread.request_counts``)."""
        return self.k8s.request_counts(skip_agent=BENCH_AGENT)

    def create_deployment(self, name: str, spec: dict[str, Any]) -> None:
        create(names.DEPLOYMENT.plural, deployment_body(name=name, **spec), self.custom)

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        patch_spec(names.DEPLOYMENT.plural, name, spec, self.custom)

    def mark_ready(self) -> int:
        """The Deployment controller's stand-in: every child Deployment's pods are ready."""
        return len(mark_ready(self.k8s, self.apps))

    def canary_routed(self, name: str) -> bool:
        """Whether the route-table ConfigMap gives the canary any traffic."""
        cm = self.get(CONFIGMAPS, names.route_table_name(name))
        table = json.loads((cm.get("data") or {}).get(names.ROUTE_TABLE_KEY) or "{}")
        return int((table.get("canary") or {}).get("weight") or 0) > 0


class FakeRouterStats:
    """``GET /<deployment>/stats``: the router stats document, per Deployment; errors settable."""

    def __init__(self) -> None:
        self.error_rate: dict[str, float] = {}
        self.hits: collections.Counter[str] = collections.Counter()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _stats(self, request: web.Request) -> web.Response:
        dep = request.match_info["dep"]
        self.hits[dep] += 1
        n = 1000
        errors = int(n * self.error_rate.get(dep, 0.0))
        lat = {"p50": 2.0, "p99": 6.0}
        doc = {
            "window_s": float(request.query.get("window", "30")),
            "variants": {
                "stable": {"requests": n, "errors": 0, "latency_ms": lat},
                "canary": {"requests": n, "errors": errors, "latency_ms": lat},
            },
            "shadow": [],
        }
        return web.json_response(doc)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{dep}/stats", self._stats)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class Operator:
    """The operator process: started, measured (CPU, RSS) and stopped by its pid."""

    def __init__(
        self, cluster: Cluster, stats_url: str, resync: float, profile: Path | None
    ) -> None:
        with socket.socket() as sock:  # a free port for its /metrics
            sock.bind(("127.0.0.1", 0))
            self.metrics_port = sock.getsockname()[1]
        cmd = [
            sys.executable,
            str(HERE / "operator_proc.py"),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--analysis-url",
            stats_url,
            "--resync",
            str(resync),
            "--metrics-port",
            str(self.metrics_port),
        ]
        if profile is not None:
            cmd += ["--profile", str(profile)]
        env = dict(os.environ)
        if OPERATOR_SRC:  # another checkout's operator (e.g. main before a change), same benchmark
            env["PYTHONPATH"] = os.pathsep.join(
                str(Path(OPERATOR_SRC) / p) for p in ("operator", "serving")
            )
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
        self.pid = self.proc.pid

    def cpu_s(self) -> float:
        return proc_cpu_s(self.pid)

    def reconciles(self) -> int:
        """Deployment reconciles so far (``driftline_reconcile_duration_seconds_count``)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
        m = re.search(
            r'^driftline_reconcile_duration_seconds_count\{kind="Deployment"\} (\S+)$', text, re.M
        )
        return int(float(m.group(1))) if m else 0

    def rss_mib(self) -> dict[str, float]:
        return {"peak": proc_mem_mib(self.pid, "VmHWM"), "now": proc_mem_mib(self.pid, "VmRSS")}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@contextlib.asynccontextmanager
async def environment(
    tmp: Path, resync: float, profile: Path | None
) -> AsyncIterator[tuple[Cluster, FakeRouterStats, Operator]]:
    cluster = Cluster(tmp)
    stats = FakeRouterStats()
    await stats.start()
    op = Operator(cluster, stats.url, resync, profile)
    try:
        for model, weight in (("tiny-v1", 1.0), ("tiny-v2", 2.0)):
            path = tmp / f"{model}.onnx"
            body = model_body(model, path, write_model(path, weight), model.split("-")[1])
            create(names.MODEL.plural, body, cluster.custom)
        await wait_for(
            lambda: all(
                (cluster.get(names.MODEL.resource, m).get("status") or {}).get("phase") == "Ready"
                for m in ("tiny-v1", "tiny-v2")
            ),
            60,
            "models ready",
            every=0.05,
        )
        yield cluster, stats, op
    finally:
        op.stop()
        await stats.stop()
        cluster.stop()


@contextlib.contextmanager
def ready_stand_in(cluster: Cluster) -> Iterator[None]:
    """Mark child Deployments ready in the background (every 50 ms) while the block runs."""
    stop = False

    async def loop() -> None:
        while not stop:
            await asyncio.to_thread(cluster.mark_ready)
            await asyncio.sleep(0.05)  # the stand-in controller's own resync period

    task = asyncio.get_running_loop().create_task(loop())
    try:
        yield
    finally:
        stop = True
        task.cancel()


def healthy(cluster: Cluster, wanted: list[str]) -> bool:
    deps = cluster.objects(names.DEPLOYMENT.resource)
    return all(((deps.get(n) or {}).get("status") or {}).get("phase") == "Healthy" for n in wanted)


async def healthy_deployment(cluster: Cluster, name: str, spec: dict[str, Any]) -> None:
    cluster.create_deployment(name, spec)
    await wait_for(lambda: healthy(cluster, [name]), 60, f"{name} healthy")


# ------------------------------------------------------------------------------------ rollout
ROLLOUT_PAUSE_S, ROLLOUT_INTERVAL_S = 2.0, 2.0
ROLLOUT_WEIGHTS = (10, 50, 100)


async def rollout_once(cluster: Cluster, name: str) -> dict[str, Any]:
    spec = {
        "model": "tiny-v1",
        "replicas": 1,
        "rollout": {
            "steps": [{"weight": w, "pause": f"{ROLLOUT_PAUSE_S:g}s"} for w in ROLLOUT_WEIGHTS],
            "analysis": {"interval": f"{ROLLOUT_INTERVAL_S:g}s", "minSamples": 50},
            # Promoting: the stable rolls at once (no traffic drain to wait for), and the
            # promotion ends once the stand-in controller reports it rolled out.
            "drain": "0s",
        },
    }
    await healthy_deployment(cluster, name, spec)
    seen: dict[int, float] = {}
    t0 = time.perf_counter()
    cluster.patch_spec(name, {"model": "tiny-v2"})

    def progress() -> bool:
        st = cluster.status(name)
        w = int(st.get("canaryWeight") or 0)
        if st.get("canaryModel") == "tiny-v2" and w in ROLLOUT_WEIGHTS and w not in seen:
            seen[w] = time.perf_counter() - t0
        return st.get("stableModel") == "tiny-v2" and not st.get("canaryModel")

    total = await wait_for(progress, 120, f"{name} promoted", every=0.005)
    marks = [seen.get(w) for w in ROLLOUT_WEIGHTS]
    if any(m is None for m in marks):
        raise RuntimeError(f"{name}: a step was not observed: {seen}")
    hold = max(ROLLOUT_PAUSE_S, ROLLOUT_INTERVAL_S)
    ends = [*marks[1:], total]
    steps = [end - start for start, end in zip(marks, ends, strict=True)]  # type: ignore[operator]
    return {
        "total_s": total,
        "start_s": marks[0],
        "steps_s": steps,
        "step_overhead_s": [s - hold for s in steps],
        "overhead_s": total - hold * len(ROLLOUT_WEIGHTS),
    }


async def rollout_bench(cluster: Cluster, op: Operator, runs: int) -> dict[str, Any]:
    cpu0 = op.cpu_s()
    results = [await rollout_once(cluster, f"roll{i}") for i in range(runs)]
    return {
        "runs": results,
        "steps": [{"weight": w, "pause_s": ROLLOUT_PAUSE_S} for w in ROLLOUT_WEIGHTS],
        "interval_s": ROLLOUT_INTERVAL_S,
        "configured_holds_s": max(ROLLOUT_PAUSE_S, ROLLOUT_INTERVAL_S) * len(ROLLOUT_WEIGHTS),
        "total_s": quantiles([r["total_s"] for r in results]),
        "overhead_s": quantiles([r["overhead_s"] for r in results]),
        "start_s": quantiles([r["start_s"] for r in results]),
        "step_overhead_s": quantiles([o for r in results for o in r["step_overhead_s"]]),
        "operator_cpu_s": op.cpu_s() - cpu0,
    }


# ------------------------------------------------------------------------------------ breach
BREACH_INTERVAL_S = 5.0


async def breach_once(
    cluster: Cluster, stats: FakeRouterStats, name: str, phase: float
) -> dict[str, Any]:
    spec = {
        "model": "tiny-v1",
        "replicas": 1,
        "rollout": {
            "steps": [{"weight": 20, "pause": "10m"}, {"weight": 100}],
            "analysis": {
                "interval": f"{BREACH_INTERVAL_S:g}s",
                "minSamples": 50,
                "maxErrorRate": 0.01,
                "failureLimit": 0,
            },
        },
    }
    await healthy_deployment(cluster, name, spec)
    cluster.patch_spec(name, {"model": "tiny-v2"})
    await wait_for(
        lambda: cluster.status(name).get("canaryWeight") == 20 and cluster.canary_routed(name),
        60,
        f"{name} at 20%",
    )
    await wait_for(
        lambda: (cluster.status(name).get("analysis") or {}).get("outcome") == "pass",
        60,
        f"{name} first passing tick",
    )
    await asyncio.sleep(
        phase * BREACH_INTERVAL_S
    )  # where in the interval the breach lands (a spread, not a wait-for)
    stats.error_rate[name] = 0.10
    to_status = await wait_for(
        lambda: int(cluster.status(name).get("canaryWeight") or 0) == 0,
        120,
        f"{name} weight 0",
        every=0.005,
    )
    to_routes = to_status + await wait_for(
        lambda: not cluster.canary_routed(name), 60, f"{name} routes", every=0.005
    )
    st = cluster.status(name)
    return {
        "phase_in_interval": phase,
        "to_status_weight0_s": to_status,
        "to_route_table_s": to_routes,
        "reason": (st.get("rollout") or {}).get("reason"),
        "phase": st.get("phase"),
    }


async def breach_bench(
    cluster: Cluster, stats: FakeRouterStats, op: Operator, runs: int
) -> dict[str, Any]:
    results = [await breach_once(cluster, stats, f"breach{i}", (i / runs)) for i in range(runs)]
    return {
        "runs": results,
        "interval_s": BREACH_INTERVAL_S,
        "failure_limit": 0,
        "target_s": BREACH_INTERVAL_S + 2,
        "to_route_table_s": quantiles([r["to_route_table_s"] for r in results]),
        "to_status_weight0_s": quantiles([r["to_status_weight0_s"] for r in results]),
        "met": all(r["to_route_table_s"] <= BREACH_INTERVAL_S + 2 for r in results),
    }


# ------------------------------------------------------------------------------------ create / scale
async def create_bench(cluster: Cluster, creates: int) -> dict[str, Any]:
    children, ready = [], []
    for i in range(creates):
        name = f"c{i}"
        t0 = time.perf_counter()
        cluster.create_deployment(name, {"model": "tiny-v1", "replicas": 1})
        await wait_for(
            lambda n=name: (
                {f"{n}-stable", f"{n}-router"} <= set(cluster.objects(APPS))
                and n in cluster.objects("v1/services")
            ),
            60,
            "children",
            every=0.005,
        )
        children.append(time.perf_counter() - t0)
        await asyncio.to_thread(cluster.mark_ready)
        await wait_for(lambda n=name: healthy(cluster, [n]), 60, "healthy", every=0.005)
        ready.append(time.perf_counter() - t0)
    return {"runs": creates, "children_s": quantiles(children), "healthy_s": quantiles(ready)}


async def unchanged_reconciles(cluster: Cluster, op: Operator, window_s: float) -> dict[str, Any]:
    """The cost of a reconcile that changes nothing: every Deployment Healthy, a quiet window."""
    await asyncio.sleep(1.0)  # let reconciles in flight finish: the window starts quiet
    r0, c0, n0 = cluster.requests(), op.cpu_s(), op.reconciles()
    await asyncio.sleep(window_s)  # a measurement window, not a wait-for
    r1, c1, n1 = cluster.requests(), op.cpu_s(), op.reconciles()
    n = max(n1 - n0, 1)
    reqs = r1 - r0
    return {
        "window_s": window_s,
        "reconciles": n1 - n0,
        "api_requests_per_reconcile": sum(reqs.values()) / n,
        "writes_per_reconcile": sum(v for k, v in reqs.items() if not k.startswith("GET")) / n,
        "requests_by_kind_per_reconcile": per(reqs, n),
        "operator_cpu_ms_per_reconcile": (c1 - c0) * 1000 / n,
    }


def per(counter: collections.Counter[str], n: float) -> dict[str, float]:
    return {k: round(v / n, 2) for k, v in sorted(counter.items(), key=lambda kv: -kv[1])}


async def scale_bench(
    cluster: Cluster, op: Operator, count: int, steady_s: float
) -> dict[str, Any]:
    before, cpu0, ecpu0 = cluster.requests(), op.cpu_s(), cluster.emulator_cpu_s()
    rec0 = op.reconciles()
    wanted = [f"s{i}" for i in range(count)]
    t0 = time.perf_counter()
    for n in wanted:
        cluster.create_deployment(n, {"model": "tiny-v1", "replicas": 1})
    await wait_for(
        lambda: {f"{n}-router" for n in wanted} <= set(cluster.objects(APPS)),  # one read per poll
        900,
        "children",
        every=0.1,
    )
    t_children = time.perf_counter() - t0
    await asyncio.to_thread(cluster.mark_ready)
    await wait_for(lambda: healthy(cluster, wanted), 900, "all healthy", every=0.1)
    t_healthy = time.perf_counter() - t0
    after, cpu1, ecpu1 = cluster.requests(), op.cpu_s(), cluster.emulator_cpu_s()
    rec1 = op.reconciles()
    reqs = after - before
    # Steady state: everything Healthy, nothing changes; what does the operator spend per second?
    t1 = time.perf_counter()
    await asyncio.sleep(steady_s)  # a measurement window, not a wait-for
    window = time.perf_counter() - t1
    steady, cpu2, rec2 = cluster.requests() - after, op.cpu_s(), op.reconciles()
    return {
        "deployments": count,
        "all_children_s": t_children,
        "all_healthy_s": t_healthy,
        "api_requests": sum(reqs.values()),
        "api_requests_per_deployment": sum(reqs.values()) / count,
        "requests_by_kind_per_deployment": per(reqs, count),
        "operator_cpu_s": cpu1 - cpu0,
        "reconciles": rec1 - rec0,
        "api_requests_per_reconcile": sum(reqs.values()) / max(rec1 - rec0, 1),
        "operator_cpu_ms_per_reconcile": (cpu1 - cpu0) * 1000 / max(rec1 - rec0, 1),
        "emulator_cpu_s": ecpu1 - ecpu0,
        "operator_rss_mib": op.rss_mib(),
        "steady": {
            "window_s": window,
            "api_requests_per_s": sum(steady.values()) / window,
            "requests_by_kind_per_s": per(steady, window),
            "operator_cpu_per_s": (cpu2 - cpu1) / window,
            "reconciles_per_s": (rec2 - rec1) / window,
            "api_requests_per_reconcile": sum(steady.values()) / max(rec2 - rec1, 1),
            "operator_cpu_ms_per_reconcile": (cpu2 - cpu1) * 1000 / max(rec2 - rec1, 1),
        },
    }


# ------------------------------------------------------------------------------------ main
async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    only = set(args.only.split(",")) if args.only else {"rollout", "breach", "create", "scale"}
    profile_dir = Path(args.profile) if args.profile else None
    out: dict[str, Any] = {}
    if only & {"rollout", "breach"}:
        prof = profile_dir / "rollout.prof" if profile_dir else None
        (tmp / "a").mkdir()
        async with environment(tmp / "a", args.rollout_resync, prof) as (cluster, stats, op):
            with ready_stand_in(cluster):
                if "rollout" in only:
                    out["rollout"] = await rollout_bench(cluster, op, args.rollouts)
                    out["rollout"]["operator_resync_s"] = args.rollout_resync
                    print(json.dumps(out["rollout"], indent=1), flush=True)
                if "breach" in only:
                    out["breach"] = await breach_bench(cluster, stats, op, args.breaches)
                    out["breach"]["operator_resync_s"] = args.rollout_resync
                    print(json.dumps(out["breach"], indent=1), flush=True)
    if only & {"create", "scale"}:
        prof = profile_dir / "scale.prof" if profile_dir else None
        (tmp / "b").mkdir()
        async with environment(tmp / "b", args.scale_resync, prof) as (cluster, _, op):
            if "create" in only:
                out["create"] = await create_bench(cluster, args.creates)
                out["create"]["operator_resync_s"] = args.scale_resync
                out["unchanged"] = await unchanged_reconciles(cluster, op, 6.0)
                print(json.dumps(out["unchanged"], indent=1), flush=True)
                print(json.dumps(out["create"], indent=1), flush=True)
            if "scale" in only:
                out["scale"] = await scale_bench(cluster, op, args.deployments, args.steady)
                out["scale"]["operator_resync_s"] = args.scale_resync
                print(json.dumps(out["scale"], indent=1), flush=True)
    return out


def ms(q: dict[str, float], key: str) -> str:
    return f"{q[key] * 1000:.0f} ms"


def markdown(res: dict[str, Any], command: str, label: str) -> str:
    r, b, c, s, u = res["rollout"], res["breach"], res["create"], res["scale"], res["unchanged"]
    st = s["steady"]
    top = list(s["requests_by_kind_per_deployment"].items())[:8]
    lines = [
        "# Operator control plane against the API emulator",
        "",
        f"Command: `{command}`. {label}",
        "",
        "The operator runs in its own process (CPU and RSS below are its own); the API emulator, a fake",
        "router-stats endpoint and a stand-in Deployment controller run in the benchmark process.",
        "",
        "| measurement | value |",
        "|---|---|",
        f"| good rollout, 3 steps ({', '.join(str(x['weight']) + '%' for x in r['steps'])}), pause {r['steps'][0]['pause_s']:g} s, interval {r['interval_s']:g} s -> promoted (p50 / max of {r['total_s']['n']}) | "
        f"{r['total_s']['p50']:.2f} s / {r['total_s']['max']:.2f} s (configured holds {r['configured_holds_s']:g} s) |",
        f"| overhead beyond the configured holds (p50 / max) | {r['overhead_s']['p50']:.2f} s / {r['overhead_s']['max']:.2f} s |",
        f"| per step: overhead beyond its hold (p50 / max of {r['step_overhead_s']['n']}) | {ms(r['step_overhead_s'], 'p50')} / {ms(r['step_overhead_s'], 'max')} |",
        f"| spec.model changed -> canary at step 1 (p50 / max) | {ms(r['start_s'], 'p50')} / {ms(r['start_s'], 'max')} |",
        f"| breach (10 % errors) -> status canaryWeight 0 (p50 / max of {b['to_status_weight0_s']['n']}), interval {b['interval_s']:g} s, failureLimit 0 | "
        f"{b['to_status_weight0_s']['p50']:.2f} s / {b['to_status_weight0_s']['max']:.2f} s |",
        f"| breach -> route-table ConfigMap gives the canary no traffic (p50 / max) | {b['to_route_table_s']['p50']:.2f} s / {b['to_route_table_s']['max']:.2f} s "
        f"(target <= {b['target_s']:g} s: {'met' if b['met'] else 'MISSED'}) |",
        f"| create -> all children present (p50 / p90 of {c['runs']}) | {ms(c['children_s'], 'p50')} / {ms(c['children_s'], 'p90')} |",
        f"| create -> Healthy, pods marked ready at once (p50 / p90) | {ms(c['healthy_s'], 'p50')} / {ms(c['healthy_s'], 'p90')} "
        f"(readiness seen by the child-Deployment watch; resync {c['operator_resync_s']:g} s) |",
        f"| reconcile of an unchanged Healthy Deployment ({u['reconciles']} in {u['window_s']:g} s, {c['runs']} Deployments): API requests (writes) / operator CPU | "
        f"{u['api_requests_per_reconcile']:.1f} ({u['writes_per_reconcile']:.1f}) / {u['operator_cpu_ms_per_reconcile']:.1f} ms |",
        f"| {s['deployments']} Deployments created at once -> all children present | {s['all_children_s']:.1f} s |",
        f"| {s['deployments']} Deployments -> all Healthy (resync {s['operator_resync_s']:g} s) | {s['all_healthy_s']:.1f} s |",
        f"| operator CPU for those {s['deployments']} (emulator CPU, serving its requests) | {s['operator_cpu_s']:.1f} s ({s['emulator_cpu_s']:.1f} s) |",
        f"| API requests for those {s['deployments']} (per Deployment) | {s['api_requests']} ({s['api_requests_per_deployment']:.1f}) |",
        f"| operator RSS after them (peak) | {s['operator_rss_mib']['now']:.0f} MiB ({s['operator_rss_mib']['peak']:.0f} MiB) |",
        f"| reconciles for those {s['deployments']}: API requests / operator CPU per reconcile | {s['reconciles']}: {s['api_requests_per_reconcile']:.1f} / {s['operator_cpu_ms_per_reconcile']:.1f} ms |",
        f"| steady state, {s['deployments']} Healthy Deployments: reconciles per s, API requests per s, operator CPU | {st['reconciles_per_s']:.1f}, {st['api_requests_per_s']:.0f}, {st['operator_cpu_per_s'] * 100:.0f} % of a core |",
        f"| steady state: API requests / operator CPU per reconcile (nothing changes) | {st['api_requests_per_reconcile']:.1f} / {st['operator_cpu_ms_per_reconcile']:.1f} ms |",
        "",
        "API requests per Deployment while reaching Healthy (top kinds): "
        + "; ".join(f"`{k}` {v:g}" for k, v in top),
        "",
        "No peer ran: Argo Rollouts and Flagger need a real API server; see the module docstring.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--creates", type=int, default=20)
    parser.add_argument("--deployments", type=int, default=200)
    parser.add_argument("--rollouts", type=int, default=3)
    parser.add_argument("--breaches", type=int, default=3)
    parser.add_argument("--steady", type=float, default=10.0, help="steady-state window, seconds")
    parser.add_argument("--rollout-resync", type=float, default=15.0)
    parser.add_argument(
        "--scale-resync",
        type=float,
        default=15.0,
        help="the operator's resync in create/scale (its default; readiness comes by the child watch)",
    )
    parser.add_argument(
        "--only", default="", help="comma list of scenarios; results are not written"
    )
    parser.add_argument("--profile", default="", help="directory for the operator's cProfile stats")
    parser.add_argument(
        "--label", default="", help="a note on the conditions, written into the Markdown"
    )
    parser.add_argument(
        "--operator-src", default="", help="run another checkout's operator (before/after)"
    )
    args = parser.parse_args()
    global OPERATOR_SRC
    OPERATOR_SRC = args.operator_src
    with tempfile.TemporaryDirectory() as tmp:
        res = asyncio.run(run(args, Path(tmp)))
    if args.only:
        return
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    command = f"python bench/operator/control_plane.py --creates {args.creates} --deployments {args.deployments} --rollouts {args.rollouts} --breaches {args.breaches}"
    res["label"] = args.label
    (out / "operator.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / "operator.md").write_text(markdown(res, command, args.label))
    print(markdown(res, command, args.label))


if __name__ == "__main__":
    main()
