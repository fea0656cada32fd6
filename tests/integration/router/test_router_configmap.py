"""``driftline route --table-configmap``: a real router process watching a ConfigMap over HTTP.

The API server is the Kubernetes emulator (kmock + our extensions, ``kube_env.KMockThread``) on
127.0.0.1; between it and the router sits a small TCP relay the test can cut, so "the watch stream
drops" is a real broken connection, not a polite end. We test: a changed ConfigMap is live within
2 s (read back from the router's /stats, polled with a deadline); a bad table is rejected whole
(counted) and the last good one stays; a deleted key keeps the table (counted); the router
survives the stream being cut and a ``410 Gone`` on re-watch (it lists again) and still applies
the next change; the flag's usage errors.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import kmock
import orjson
import pytest
from click.testing import CliRunner
from kube_env import KMockThread, write_kubeconfig

from driftline.operator.cli import driftline

from .procs import Proc, start_router

pytestmark = pytest.mark.integration

NAMESPACE, NAME, KEY = "default", "shop-routes", "routes.json"
CHANGE_DEADLINE_S = 2.0
RECOVERY_DEADLINE_S = 8.0
CONFIGMAPS = f"/api/v1/namespaces/{NAMESPACE}/configmaps"


def table(version: int, canary_weight: int = 10) -> str:
    return orjson.dumps(
        {
            "version": version,
            "stable": {
                "model_version": "1",
                "weight": 100 - canary_weight,
                "endpoints": ["127.0.0.1:9"],
            },
            "canary": {"model_version": "2", "weight": canary_weight, "endpoints": ["127.0.0.1:9"]},
        }
    ).decode()


class Relay:
    """A TCP relay on 127.0.0.1 whose connections the test can cut at once."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()
        self.accepted = 0
        self._acceptor = threading.Thread(target=self._accept, name="relay", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self.accepted += 1
                self._sockets += [client, upstream]
                for a, b in ((client, upstream), (upstream, client)):
                    thread = threading.Thread(target=self._pump, args=(a, b), daemon=True)
                    self._threads.append(thread)
                    thread.start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> int:
        """Reset every open connection; returns how many were open."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        return len(sockets) // 2

    def close(self) -> None:
        self._stopped.set()
        self._acceptor.join(timeout=5)
        self._listener.close()
        self.cut()
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.fixture
def k8s() -> Iterator[KMockThread]:
    server = KMockThread().start()
    yield server
    server.stop()


@pytest.fixture
def relay(k8s: KMockThread) -> Iterator[Relay]:
    port = int(k8s.url.rsplit(":", 1)[1])
    proxy = Relay(port)
    yield proxy
    proxy.close()


def put_table(k8s: KMockThread, text: str | None) -> None:
    """Create or merge-patch the ConfigMap over HTTP (``None`` removes the key)."""
    url = f"{k8s.url}{CONFIGMAPS}/{NAME}"
    with httpx.Client(timeout=5) as client:
        if client.get(url).status_code == 404:
            body = {"metadata": {"name": NAME}, "data": {KEY: text}}
            assert client.post(f"{k8s.url}{CONFIGMAPS}", json=body).status_code == 201
            return
        patch = orjson.dumps({"data": {KEY: text}})
        answer = client.patch(
            url, content=patch, headers={"Content-Type": "application/merge-patch+json"}
        )
        assert answer.status_code == 200, answer.text


def gone_after(k8s: KMockThread, seen: int) -> None:
    """Answer the next watch of ConfigMaps (the ``seen+1``-th) with ``410 Gone``.

    kmock slices count every matching request since the start, so the slice starts at ``seen``.
    """
    res = kmock.resource("v1/configmaps")

    def add() -> None:
        k8s.handler["watch", res][seen : seen + 1] << 410

    k8s.call(add)


def live_version(router: Proc) -> int:
    doc = httpx.get(router.url + "/stats", timeout=2).json()
    return int(doc["table"]["version"])


def wait_version(router: Proc, version: int, deadline_s: float) -> float:
    """Poll /stats until the table version is ``version``; the seconds it took."""
    started = time.monotonic()
    while True:
        seen = live_version(router)
        elapsed = time.monotonic() - started
        if seen == version:
            return elapsed
        if elapsed > deadline_s:
            raise AssertionError(
                f"table version {version} not live within {deadline_s}s (still {seen}):\n"
                + router.output()
            )
        if router.popen.poll() is not None:
            raise AssertionError(f"router exited:\n{router.output()}")
        time.sleep(0.02)  # polling interval of a condition with a deadline


def metric(router: Proc, name: str, labels: str) -> float:
    text = httpx.get(router.url + "/metrics", timeout=2).text
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{labels}}} not exported")


def wait_metric(router: Proc, name: str, labels: str, at_least: float) -> None:
    deadline = time.monotonic() + RECOVERY_DEADLINE_S
    while metric(router, name, labels) < at_least:
        assert time.monotonic() < deadline, f"{name}{{{labels}}} < {at_least}:\n{router.output()}"
        time.sleep(0.02)  # polling interval of a condition with a deadline


def test_router_follows_the_configmap_through_changes_bad_tables_and_dropped_streams(
    k8s: KMockThread, relay: Relay, tmp_path: Path
) -> None:
    put_table(k8s, table(1))
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{relay.port}")
    router = start_router(
        tmp_path,
        None,
        source=["--table-configmap", f"{NAMESPACE}/{NAME}", "--kubeconfig", str(kubeconfig)],
    )
    try:
        assert live_version(router) == 1
        # The watch is open before we change anything: a change must arrive through it.
        deadline = time.monotonic() + RECOVERY_DEADLINE_S
        while k8s.requests("watch", "v1/configmaps") < 1:
            assert time.monotonic() < deadline, router.output()
            time.sleep(0.02)  # polling interval of a condition with a deadline

        # 1. A change is live within 2 s.
        put_table(k8s, table(2, canary_weight=30))
        assert wait_version(router, 2, CHANGE_DEADLINE_S) <= CHANGE_DEADLINE_S
        doc = httpx.get(router.url + "/stats", timeout=2).json()
        assert doc["variants"]["canary"]["weight"] == 30

        # 2. A bad table is rejected whole (counted); the last good one stays; a good one after
        # it applies.
        rejected = metric(router, "driftline_router_route_table_reloads_total", _src("rejected"))
        put_table(k8s, table(3, canary_weight=130))
        wait_metric(
            router, "driftline_router_route_table_reloads_total", _src("rejected"), rejected + 1
        )
        assert live_version(router) == 2
        put_table(k8s, table(4))
        wait_version(router, 4, CHANGE_DEADLINE_S)

        # 3. The key removed: counted as missing, the table stays.
        put_table(k8s, None)
        wait_metric(
            router, "driftline_router_route_table_watch_errors_total", 'reason="missing"', 1
        )
        assert live_version(router) == 4

        # 4. The stream is cut: the router reconnects and resumes from its resourceVersion, so a
        # change made while it was disconnected still arrives.
        accepted = relay.accepted
        assert relay.cut() >= 1
        put_table(k8s, table(5))
        wait_version(router, 5, RECOVERY_DEADLINE_S)
        assert relay.accepted > accepted

        # 5. 410 Gone on the next re-watch: the router lists again and carries on.
        gone_after(k8s, k8s.requests("watch", "v1/configmaps"))
        lists = k8s.requests("list", "v1/configmaps")
        relay.cut()
        wait_metric(
            router, "driftline_router_route_table_watch_errors_total", 'reason="expired"', 1
        )
        put_table(k8s, table(6))
        wait_version(router, 6, RECOVERY_DEADLINE_S)
        assert k8s.requests("list", "v1/configmaps") > lists
        assert router.popen.poll() is None
        applied = metric(router, "driftline_router_route_table_reloads_total", _src("applied"))
        assert applied == 4  # versions 2, 4, 5, 6: each once, never re-applied on a relist
    finally:
        router.stop()


def _src(result: str) -> str:
    return f'result="{result}",source="configmap"'


def test_router_waits_for_the_configmap_then_fails_clearly(
    k8s: KMockThread, tmp_path: Path
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", k8s.url)
    runner = CliRunner()
    result = runner.invoke(
        driftline,
        ["route", "--table-configmap", f"{NAMESPACE}/absent", "--kubeconfig", str(kubeconfig)],
        env={"DRIFTLINE_ROUTE_TABLE_WAIT_S": "0.5", "DRIFTLINE_ROUTE_PORT": "0"},
    )
    assert result.exit_code != 0
    assert "ConfigMap default/absent/routes.json" in result.output
    assert "does not exist" in result.output
