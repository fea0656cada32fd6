"""The operator's test environment: a Kubernetes API emulator over real HTTP, and helpers.

- ``k8s``: ``KubernetesEmulatorPlus`` (kmock 0.8 + our extensions, ``kmock_plus.py``) served on
  127.0.0.1 from a background thread with its own event loop, so the blocking ``kubernetes`` client
  (in the test thread or in ``asyncio.to_thread``), kopf (in the test's loop) and kubectl all reach
  it. One server per test: start-up takes milliseconds.
- ``kubeconfig``: a kubeconfig file pointing kopf and the ``kubernetes`` client at that server. The
  client reads ``$KUBECONFIG`` once, at import time, so the module default is redirected too.
- ``eventually``: wait on a condition with a deadline (never a sleep standing in for a condition).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import kmock
import kubernetes
import yaml
from kmock_plus import KubernetesEmulatorPlus
from prometheus_client import CollectorRegistry

from driftline.operator import names, runner
from driftline.operator.k8s import KubeClient, RetryPolicy
from driftline.operator.metrics import Metrics
from driftline.operator.settings import OperatorSettings

T = TypeVar("T")

RW = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
BUILTINS = [  # what the operator touches, as the cluster's discovery would show it
    ("apps/v1/deployments", "Deployment", {"status"}),
    ("v1/services", "Service", {"status"}),
    ("v1/configmaps", "ConfigMap", set()),
    ("autoscaling/v2/horizontalpodautoscalers", "HorizontalPodAutoscaler", {"status"}),
    ("policy/v1/poddisruptionbudgets", "PodDisruptionBudget", {"status"}),
    ("batch/v1/jobs", "Job", {"status"}),
    ("v1/serviceaccounts", "ServiceAccount", set()),
    ("rbac.authorization.k8s.io/v1/roles", "Role", set()),
    ("rbac.authorization.k8s.io/v1/rolebindings", "RoleBinding", set()),
]
NAMESPACES = ("default", "kube-system", "team-a", "team-b")


def register_resources(h: KubernetesEmulatorPlus) -> None:
    """Declare Driftline's kinds, the built-ins it renders, Events, Namespaces and kopf peering."""
    for kind in names.KINDS:
        h.resources[kind.resource] = kmock.ResourceInfo(
            kind=kind.kind,
            singular=kind.singular,
            namespaced=True,
            subresources={"status"},
            shortnames=set(kind.short_names),
            categories={names.CATEGORY},
            verbs=RW,
        )
    for res, kind_name, sub in BUILTINS:
        h.resources[res] = kmock.ResourceInfo(
            kind=kind_name, singular=kind_name.lower(), namespaced=True, subresources=sub, verbs=RW
        )
    h.resources["v1/events"] = kmock.ResourceInfo(
        kind="Event",
        singular="event",
        namespaced=True,
        verbs={"create", "get", "list", "watch", "patch"},
    )
    h.resources["v1/namespaces"] = kmock.ResourceInfo(
        kind="Namespace", singular="namespace", namespaced=False, verbs={"get", "list", "watch"}
    )
    h.resources["kopf.dev/v1/clusterkopfpeerings"] = kmock.ResourceInfo(
        kind="ClusterKopfPeering",
        singular="clusterkopfpeering",
        namespaced=False,
        verbs={"get", "list", "watch", "patch", "create"},
    )
    h.resources["kopf.dev/v1/kopfpeerings"] = kmock.ResourceInfo(
        kind="KopfPeering",
        singular="kopfpeering",
        namespaced=True,
        verbs={"get", "list", "watch", "patch", "create"},
    )
    for ns in NAMESPACES:
        h.seed("v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})


class KMockThread:
    """Serve the emulator from a background thread with its own event loop."""

    def __init__(self, setup: Callable[[KubernetesEmulatorPlus], None] = register_resources):
        self.setup = setup
        self.url = ""
        self.handler: Any = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kmock", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # surfaced by start()
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with (
            KubernetesEmulatorPlus() as handler,
            kmock.Server(handler, host="127.0.0.1") as server,
        ):
            self.handler = handler
            self.setup(handler)
            self.url = f"http://{server.host}:{server.port}"
            self._ready.set()
            await self._stop.wait()

    def start(self) -> KMockThread:
        self._thread.start()
        if not self._ready.wait(timeout=10) or self._error is not None:
            raise RuntimeError(f"the API emulator did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "the API emulator thread did not stop"

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` inside the server's loop: safe access to its objects and request log."""
        assert self._loop is not None

        async def wrapper() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(timeout=10)

    def objects(self, resource: str, namespace: str | None = None) -> dict[str, dict[str, Any]]:
        """The live objects of one resource (``group/version/plural``), by name."""
        res = kmock.resource(resource)

        def read() -> dict[str, dict[str, Any]]:
            out: dict[str, dict[str, Any]] = {}
            for (r, ns, name), obj in self.handler._objects._objects.items():
                if r == res and not obj.deleted and (namespace is None or ns == namespace):
                    out[name] = obj.raw
            return out

        return self.call(read)

    def inject(self, method: str, resource: str, status: int, times: int = 1) -> None:
        """Answer the next ``times`` ``method`` requests on ``resource`` with HTTP ``status``.

        The stored state is untouched by those requests (KubernetesEmulatorPlus guarantees it), so a
        client's retry is exercised honestly.
        """
        res = kmock.resource(resource)

        def add() -> None:
            self.handler[method, res][:times] << status

        self.call(add)

    def requests(self, method: str, resource: str) -> int:
        """How many ``method`` requests on ``resource`` the server has received."""
        res = kmock.resource(resource)
        return self.call(lambda: len(self.handler[method, res]))

    def request_counts(self, skip_agent: str = "") -> collections.Counter[str]:
        """Requests so far, by ``METHOD group/version/plural[/sub] one/collection/watch``.

        ``one`` is a request naming an object (GET of one object, PATCH, DELETE), ``collection``
        one on the collection (a LIST, a create). Requests whose User-Agent starts with
        ``skip_agent`` (when given) are not counted: a benchmark's own.
        """

        def count() -> collections.Counter[str]:
            c: collections.Counter[str] = collections.Counter()
            for r in self.handler._requests:
                if skip_agent and str(r.headers.get("User-Agent", "")).startswith(skip_agent):
                    continue
                res = r.resource
                what = (
                    f"{res.group}/{res.version}/{res.plural}".lstrip("/")
                    if res is not None
                    else str(r.url.path)
                )
                if r.subresource:
                    what += "/" + r.subresource
                kind = (
                    "watch"
                    if r.params.get("watch") in ("true", "1")
                    else ("one" if r.name else "collection")
                )
                c[f"{str(getattr(r.method, 'value', r.method)).upper()} {what} {kind}"] += 1
            return c

        return self.call(count)


def write_kubeconfig(path: Path, url: str) -> Path:
    """Write a kubeconfig whose only context points at ``url`` (token auth, never checked)."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "kmock",
                "clusters": [{"name": "kmock", "cluster": {"server": url}}],
                "users": [{"name": "kmock", "user": {"token": "dummy"}}],
                "contexts": [
                    {
                        "name": "kmock",
                        "context": {"cluster": "kmock", "user": "kmock", "namespace": "default"},
                    }
                ],
            }
        )
    )
    return path


def eventually(
    fn: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = fn()
            if value:
                return value
        except (kubernetes.client.ApiException, KeyError, AssertionError) as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {what} (last: {last!r})")
        time.sleep(interval)  # polling interval of a condition with a deadline, not a wait-for-X


async def aeventually(
    fn: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = fn()
            if value:
                return value
        except (kubernetes.client.ApiException, KeyError, AssertionError) as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {what} (last: {last!r})")
        await asyncio.sleep(interval)  # polling interval of a condition with a deadline


@contextlib.asynccontextmanager
async def running_operator(
    settings: OperatorSettings | None = None,
) -> AsyncIterator[asyncio.Event]:
    """The operator in this test's own task (a fixture's finalizer task would be a task kopf
    waits for on stop, for its 5-second grace period)."""
    settings = settings or OperatorSettings(standalone=True, metrics_port=0, resync_interval=0.3)
    client = KubeClient(
        kubernetes.client.ApiClient(), retry=RetryPolicy(attempts=5, base_delay=0.01)
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        runner.run(
            settings,
            metrics=Metrics(CollectorRegistry()),
            cluster=client,
            stop_flag=stop,
            ready_flag=ready,
        )
    )
    try:
        yield ready
    finally:
        client.close()
        stop.set()
        await asyncio.wait_for(task, timeout=10)
