"""The rollout end-to-end harness: kopf against the API emulator, real processes for the pods.

Parts (each stopped by the test that started it; every process by its pid):

- ``OperatorThread``: ``runner.run`` (kopf, unmodified) in its own thread and event loop, against
  the emulator, with a ``threading.Event`` stop flag, so a test can stop it mid-rollout and start
  a new one. Its ``resolve`` seam points the analysis at the processes below.
- ``Pool``: the "pods": a ``driftline serve`` + ``driftline monitor`` pair per pod template, started
  with the env the operator rendered into the child Deployment (host, ports, model file and
  profile path overridden: there is no container or init container here). The profile is the
  one the operator stored in the Model's ConfigMap, when the pod template mounts it (the
  kubelet's ConfigMap volume); else the one the fixture built. Pairs are
  keyed by the rendered env, so a changed template (a promotion) gets a new pair, as new pods.
- ``Kubelet``: a thread that plays kubelet, Deployment controller, endpoints controller and the
  ConfigMap volume: it starts pairs for the variant Deployments the operator writes, reports the
  apps/v1 status (``observedGeneration``, ``replicas``, ``updatedReplicas``, ``readyReplicas``:
  a changed template is a rolling update, its old pod serving and counted until the new one
  answers ``/v2/health/ready`` with 200), records every moment the router sent stable traffic
  to a stable Deployment in the middle of such a roll (``half_updated``), starts the router
  once the route-table ConfigMap exists and pushes every new table to it (admin ``PUT
  /table``), with each variant Service
  replaced by the ready pair's URL. A variant with no ready pod gets an address nothing listens
  on: a ClusterIP Service without endpoints refuses connections too.
- ``LoadLoop``: OIP requests (``tritonclient.http``, the real client) with rows of the
  quickstart's ``traffic.csv`` through the router; bounded in count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import kubernetes
import numpy as np
from kube_env import KMockThread
from prometheus_client import CollectorRegistry

from driftline.operator import analysis, names, runner
from driftline.operator.analysis_http import Endpoints
from driftline.operator.k8s import KubeClient, RetryPolicy
from driftline.operator.metrics import Metrics
from driftline.operator.render import monitoring
from driftline.operator.settings import OperatorSettings

log = logging.getLogger(__name__)

NS = "default"
APPS = "apps/v1/deployments"
DRIFTLINE = (sys.executable, "-m", "driftline.operator")
MONITOR_MIN_SAMPLES = 20
"""Rows the monitor needs before it judges a window (default 500; sized for a short test)."""


def _load_procs() -> ModuleType:
    name = "driftline_router_test_procs"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "router" / "procs.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


procs = _load_procs()


# ------------------------------------------------------------------------------------ operator
class OperatorThread:
    """The operator (``runner.run``) in its own thread and event loop."""

    def __init__(self, resolve: Callable[[analysis.Target], Endpoints], resync_s: float = 0.25):
        self.settings = OperatorSettings(standalone=True, metrics_port=0, resync_interval=resync_s)
        self.resolve = resolve
        self.stop_flag = threading.Event()
        self.ready_flag = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="operator", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # surfaced by stop()
            self.error = e

    async def _main(self) -> None:
        client = KubeClient(
            kubernetes.client.ApiClient(), retry=RetryPolicy(attempts=5, base_delay=0.01)
        )
        try:
            await runner.run(
                self.settings,
                metrics=Metrics(CollectorRegistry()),
                cluster=client,
                stop_flag=self.stop_flag,
                ready_flag=self.ready_flag,
                resolve=self.resolve,
            )
        finally:
            client.close()

    def start(self) -> OperatorThread:
        self._thread.start()
        if not self.ready_flag.wait(timeout=20):
            self.stop()
            raise AssertionError(f"the operator did not get ready: {self.error!r}")
        return self

    def stop(self) -> None:
        self.stop_flag.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the operator thread did not stop"
        assert self.error is None, f"the operator failed: {self.error!r}"


# ---------------------------------------------------------------------------------------- pods
@dataclass
class ModelFiles:
    """What a pod of a Model needs on disk: the artifact and the monitor's reference profile."""

    path: Path
    profile: Path


def _spawn(name: str, argv: list[str], env: dict[str, str], port: int, logdir: Path) -> Any:
    log_path = logdir / f"{name}.log"
    with log_path.open("wb") as out:
        popen = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )
    return procs.Proc(name, popen, port, log_path)


@dataclass
class Pair:
    """One pod: a model server and its monitor sidecar."""

    key: str
    model: str
    server: Any
    monitor: Any
    profile_from_volume: bool
    """Whether the monitor loads the profile the operator put in the Model's ConfigMap."""
    ready: bool = False

    def poll_ready(self, client: httpx.Client) -> bool:
        """Whether the server answers ready (checked once, then remembered while both live)."""
        for proc in (self.server, self.monitor):
            if proc.popen.poll() is not None:
                raise AssertionError(
                    f"{proc.name} exited {proc.popen.returncode}:\n{proc.output()}"
                )
        if not self.ready:
            try:
                server = client.get(self.server.url + "/v2/health/ready", timeout=0.5)
                monitor = client.get(self.monitor.url + "/healthz", timeout=0.5)
                self.ready = server.status_code == 200 and monitor.status_code == 200
            except httpx.HTTPError:
                return False
        return self.ready


class Pool:
    """Pods by pod template, shared by the tests of a module (a pod of the same template is the
    same pod: restarting it per test would only cost time). Stopped by pid at module end."""

    def __init__(self, logdir: Path, models: dict[str, ModelFiles]):
        self.logdir = logdir
        self.models = models
        self.pairs: dict[str, Pair] = {}
        self._lock = threading.Lock()

    def ensure(
        self,
        model: str,
        server_env: dict[str, str],
        monitor_env: dict[str, str],
        profile: str | None = None,
    ) -> Pair:
        """The pair for this template, started (not waited for) when new.

        ``profile`` is the text of the profile volume (the Model's ConfigMap) when the template
        mounts one; without it the monitor loads the profile built by the fixture.
        """
        key = hashlib.sha256(
            json.dumps([model, server_env, monitor_env, profile], sort_keys=True).encode()
        ).hexdigest()[:12]
        with self._lock:
            pair = self.pairs.get(key)
            if pair is not None:
                return pair
            files = self.models[model]
            profile_path = files.profile
            if profile is not None:
                profile_path = self.logdir / f"{model}-{key}-profile.json"
                profile_path.write_text(profile)
            sport, mport = procs.free_port(), procs.free_port()
            monitor = _spawn(
                f"{model}-{key}-monitor",
                [*DRIFTLINE, "monitor"],
                {
                    **monitor_env,
                    "DRIFTLINE_MONITOR_HOST": "127.0.0.1",
                    "DRIFTLINE_MONITOR_PORT": str(mport),
                    "DRIFTLINE_MONITOR_PROFILE": str(profile_path),
                    "DRIFTLINE_MONITOR_MIN_SAMPLES": str(MONITOR_MIN_SAMPLES),
                },
                mport,
                self.logdir,
            )
            server = _spawn(
                f"{model}-{key}-server",
                [*DRIFTLINE, "serve"],
                {
                    **server_env,
                    "DRIFTLINE_SERVE_MODEL": str(files.path),
                    "DRIFTLINE_SERVE_HOST": "127.0.0.1",
                    "DRIFTLINE_SERVE_PORT": str(sport),
                    "DRIFTLINE_SERVE_MONITOR_URL": monitor.url,
                    "DRIFTLINE_SERVE_SHUTDOWN_TIMEOUT_S": "2",
                },
                sport,
                self.logdir,
            )
            pair = self.pairs[key] = Pair(key, model, server, monitor, profile is not None)
            return pair

    def stop_all(self) -> None:
        """SIGTERM every process by pid at once (they shut down in parallel), then wait for each
        (``Proc.stop`` sends SIGKILL to one that lingers)."""
        with self._lock:
            every = [p for pair in self.pairs.values() for p in (pair.server, pair.monitor)]
            for proc in every:
                if proc.popen.poll() is None:
                    os.kill(proc.popen.pid, signal.SIGTERM)
            for proc in every:
                proc.stop()


def profile_volume(k8s: KMockThread, template: dict[str, Any]) -> str | bool | None:
    """The profile a pod of ``template`` mounts: its text; None without such a volume; False
    while the ConfigMap does not exist yet (the pod cannot start)."""
    for volume in template["spec"].get("volumes", []):
        if volume.get("name") == monitoring.PROFILE_VOLUME and "configMap" in volume:
            cm = k8s.objects("v1/configmaps", NS).get(volume["configMap"]["name"])
            if cm is None:
                return False
            return str(cm["data"][names.PROFILE_KEY])
    return None


def container_env(template: dict[str, Any], container: str) -> dict[str, str]:
    for c in template["spec"].get("containers", []):
        if c["name"] == container:
            return {e["name"]: str(e.get("value", "")) for e in c.get("env", [])}
    return {}


class Kubelet:
    """Plays kubelet, endpoints controller and ConfigMap volume for one Deployment (a thread)."""

    def __init__(self, k8s: KMockThread, pool: Pool, deployment: str, logdir: Path):
        self.k8s = k8s
        self.pool = pool
        self.deployment = deployment
        self.logdir = logdir
        self.router: Any = None
        self.tables: list[dict[str, Any]] = []
        """Every route table the operator wrote, in order (as written, before translation)."""
        self.pushed: list[dict[str, Any]] = []
        self.variants: dict[str, Pair] = {}
        """Variant Deployment name -> the pair serving it (the old one while it rolls)."""
        self.half_updated: list[str] = []
        """Each moment the router's table gave stable traffic while ``<dep>-stable`` rolled."""
        self.stable_rolls = 0
        """Template changes of ``<dep>-stable`` seen (rolling updates started)."""
        self._templates: dict[str, str] = {}
        self.error: BaseException | None = None
        self._dead = f"127.0.0.1:{procs.free_port()}"
        self._stop = threading.Event()
        self._http = httpx.Client(timeout=2.0)
        self._apps = kubernetes.client.AppsV1Api()
        self._thread = threading.Thread(target=self._run, name="kubelet", daemon=True)

    # -------------------------------------------------------------------------------- loop
    def start(self) -> Kubelet:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the kubelet thread did not stop"
        if self.router is not None:
            self.router.stop()
        self._http.close()

    def check(self) -> None:
        """Raise what went wrong in the thread (called by the test's waits)."""
        if self.error is not None:
            raise AssertionError(f"the test kubelet failed: {self.error!r}") from self.error

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except BaseException as e:
                self.error = e
                return
            self._stop.wait(0.05)  # the kubelet's sync period

    def tick(self) -> None:
        deployments = self.k8s.objects(APPS, NS)
        router_name = names.router_name(self.deployment)
        rolling: set[str] = set()
        for name, obj in deployments.items():
            if name == router_name:
                continue
            template = obj["spec"]["template"]
            model = template["metadata"]["labels"][names.LABEL_MODEL]
            profile = profile_volume(self.k8s, template)
            if profile is False:
                continue  # its volume's ConfigMap is not there yet: the pod waits
            pair = self.pool.ensure(
                model,
                container_env(template, "server"),
                container_env(template, "monitor"),
                profile if isinstance(profile, str) else None,
            )
            if self._templates.get(name) not in (None, pair.key):
                self.stable_rolls += name == names.variant_name(self.deployment, "stable")
            self._templates[name] = pair.key
            if pair.poll_ready(self._http) or name not in self.variants:
                self.variants[name] = pair
            # else: a rolling update; the old pod serves until the new one is ready.
            if self.variants[name] is not pair:
                rolling.add(name)
            self._report_status(name, obj, self.variants[name] is pair and pair.ready)
        for gone in set(self.variants) - set(deployments):
            del self.variants[gone]
        cm = self.k8s.objects("v1/configmaps", NS).get(names.route_table_name(self.deployment))
        if cm is None:
            return
        table = json.loads(cm["data"][names.ROUTE_TABLE_KEY])
        if not self.tables or self.tables[-1] != table:
            self.tables.append(table)
        pushed = self.translate(table)
        if self.router is None:
            if pushed["stable"]["endpoints"] == [self._dead]:
                return  # a router cannot start without a ready stable pod
            path = self.logdir / f"{self.deployment}-routes.json"
            path.write_text(json.dumps(pushed))
            self.router = procs.start_router(self.logdir, path, admin=True)
            self.pushed.append(pushed)
        elif pushed != self.pushed[-1]:
            admin = f"http://127.0.0.1:{self.router.extra['admin']}/table"
            answer = self._http.put(admin, content=json.dumps(pushed))
            assert answer.status_code == 200, answer.text
            self.pushed.append(pushed)
        stable = names.variant_name(self.deployment, "stable")
        weight = self.pushed[-1]["stable"].get("weight", 0) if self.pushed else 0
        if stable in rolling and weight > 0:
            serving = self.variants[stable].model
            self.half_updated.append(
                f"table v{table.get('version')}: stable weight {weight} "
                f"({table['stable'].get('model_version')}) while {stable} rolls, {serving} serving"
            )
        router = deployments.get(router_name)
        if router is not None:
            self._report_status(router_name, router, True)

    def _report_status(self, name: str, obj: dict[str, Any], rolled_out: bool) -> None:
        """The Deployment controller's status: rolled out, or mid-roll (an old pod still
        counted and serving, the new one created, not ready), or new and not ready yet."""
        want = int(obj["spec"].get("replicas", 1))
        generation = int(obj["metadata"].get("generation", 1))
        if rolled_out:
            status = {"replicas": want, "updatedReplicas": want, "readyReplicas": want}
        elif name in self.variants and self.variants[name].ready:  # old pod serves
            status = {"replicas": want + 1, "updatedReplicas": want, "readyReplicas": 1}
        else:
            status = {"replicas": want, "updatedReplicas": want, "readyReplicas": 0}
        status["observedGeneration"] = generation
        if {k: (obj.get("status") or {}).get(k) for k in status} != status:
            self._apps.patch_namespaced_deployment_status(name, NS, {"status": status})

    def translate(self, table: dict[str, Any]) -> dict[str, Any]:
        """The operator's table with each variant Service replaced by its ready pod's address."""
        out = dict(table)
        for role in ("stable", "canary", "shadow"):
            entry = table.get(role)
            if not isinstance(entry, dict):
                continue
            entry = dict(entry)
            host = entry["endpoints"][0].split(":")[0].removeprefix("http://")
            pair = self.variants.get(host.split(".")[0])
            ready = pair is not None and pair.ready
            entry["endpoints"] = [pair.server.url if ready and pair else self._dead]
            if "monitor" in entry:
                if ready and pair:
                    entry["monitor"] = pair.monitor.url
                else:
                    entry.pop("monitor")
            out[role] = entry
        return out

    # -------------------------------------------------------------------------- the seam
    def resolve(self, target: analysis.Target) -> Endpoints:
        """Where the operator's analysis reads a variant: this router and the variant's monitor."""
        routers = (self.router.url,) if self.router is not None else ()
        name = names.variant_name(target.deployment, target.role)
        pair = self.variants.get(name)
        if pair is None or pair.model != target.model:
            pair = next(
                (p for p in self.variants.values() if p.model == target.model and p.ready), None
            )
        monitors = (pair.monitor.url,) if pair is not None and pair.ready else ()
        return Endpoints(routers=routers, monitors=monitors)


# ---------------------------------------------------------------------------------------- load
def traffic_rows(path: Path) -> np.ndarray:
    """The feature columns of a quickstart CSV (the label column dropped), float32."""
    with path.open() as fh:
        reader = csv.reader(fh)
        header = next(reader)
        keep = [i for i, h in enumerate(header) if h != "label"]
        rows = [[float(row[i]) for i in keep] for row in reader]
    return np.asarray(rows, dtype=np.float32)


@dataclass
class LoadLoop:
    """OIP requests through the router from ``threads`` threads; bounded in count and time."""

    url: str
    rows: np.ndarray
    model: str = "churn"
    threads: int = 2
    max_requests: int = 40_000
    max_seconds: float = 140.0
    ok: int = 0
    failed: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[str] = field(default_factory=list)

    def start(self) -> LoadLoop:
        for i in range(self.threads):
            worker = threading.Thread(target=self._run, args=(i,), name=f"load-{i}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def _run(self, index: int) -> None:
        import tritonclient.http as triton
        from tritonclient.utils import InferenceServerException

        client = triton.InferenceServerClient(url=self.url.removeprefix("http://"))
        deadline = time.monotonic() + self.max_seconds
        i = index
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                with self._lock:
                    if self.ok + self.failed >= self.max_requests:
                        return
                row = self.rows[i % len(self.rows)].reshape(1, -1)
                i += self.threads
                inputs = triton.InferInput("input", list(row.shape), "FP32")
                inputs.set_data_from_numpy(row, binary_data=False)
                try:
                    client.infer(self.model, [inputs])
                    with self._lock:
                        self.ok += 1
                except InferenceServerException as e:
                    with self._lock:
                        self.failed += 1
                        if len(self.errors) < 20:
                            self.errors.append(str(e)[:200])
        finally:
            client.close()

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)
            assert not worker.is_alive(), "a load thread did not stop"


# --------------------------------------------------------------------------------------- waits
def wait_for(
    what: str, condition: Callable[[], Any], timeout_s: float, *checks: Callable[[], None]
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        for check in checks:
            check()
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        time.sleep(0.02)  # polling interval of a condition with a deadline


@contextlib.contextmanager
def stopping(*parts: Any) -> Iterator[None]:
    try:
        yield
    finally:
        for part in reversed(parts):
            with contextlib.suppress(ProcessLookupError):
                part.stop()
