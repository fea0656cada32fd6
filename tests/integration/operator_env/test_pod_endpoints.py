"""Per-pod analysis in a cluster: every ready pod's monitor and every router pod is read and merged.

Pods live in the API emulator (IPs and Ready conditions); each pod's router stats or monitor
verdict is a fake HTTP endpoint on 127.0.0.1 (the resolver's ``address`` seam maps a pod IP and
port to it). We test these aspects:
- ``pod_endpoints`` lists the variant's and the router's ready pods only (not ready, terminating,
  pending and other deployments' pods are left out), and ``HttpProvider`` sums their counts:
  requests from two routers, monitor rows from two pods, the worst pod's drift score;
- a pod that is not ready is never contacted;
- when pods cannot be listed (403: RBAC), it falls back to the Services, with no exception;
- ``runner.run`` still takes a synchronous resolver (covered by the operator integration tests).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import kmock
import kubernetes
import pytest
from kube_env import KMockThread, register_resources

from driftline.operator import names
from driftline.operator.analysis import Target
from driftline.operator.analysis_http import HttpProvider
from driftline.operator.k8s import KubeClient, RetryPolicy
from driftline.operator.runner import pod_endpoints, service_endpoints

pytestmark = pytest.mark.integration

PODS = "v1/pods"
TARGET = Target("team-a", "churn", "canary", "churn-v2")


def pod(name: str, ip: str, labels: dict[str, str], *, ready: bool = True, **extra: Any) -> dict:
    meta: dict[str, Any] = {"name": name, "namespace": "team-a", "labels": labels}
    meta.update(extra.pop("meta", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "status": {
            "phase": extra.pop("phase", "Running"),
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def with_pods(h: Any) -> None:
    register_resources(h)
    h.resources[PODS] = kmock.ResourceInfo(
        kind="Pod", singular="pod", namespaced=True, verbs={"get", "list", "watch"}
    )
    canary = names.variant_selector("churn", "canary")
    router = names.router_selector("churn")
    for body in (
        pod("c-1", "10.0.0.1", canary),
        pod("c-2", "10.0.0.2", canary),
        pod("c-3", "10.0.0.3", canary, ready=False),
        pod("c-4", "10.0.0.4", canary, meta={"deletionTimestamp": "2026-01-01T00:00:00Z"}),
        pod("c-5", "10.0.0.5", canary, phase="Pending"),
        pod("s-1", "10.0.9.1", names.variant_selector("churn", "stable")),
        pod("o-1", "10.0.8.1", names.variant_selector("other", "canary")),
        pod("r-1", "10.1.0.1", router),
        pod("r-2", "10.1.0.2", router),
    ):
        h.seed(PODS, body)


class _Fake(BaseHTTPRequestHandler):
    docs: ClassVar[dict[int, dict[str, Any]]] = {}
    hits: ClassVar[dict[int, int]] = {}

    def do_GET(self) -> None:
        port = self.server.server_address[1]
        _Fake.hits[port] = _Fake.hits.get(port, 0) + 1
        body = json.dumps(_Fake.docs[port]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def router_doc(requests: int, errors: int) -> dict[str, Any]:
    return {
        "variants": {
            "canary": {
                "model_version": "churn-v2",
                "requests": requests,
                "errors": errors,
                "latency_ms": {"p50": 4.0, "p99": 9.0},
            }
        }
    }


def monitor_doc(rows: int, share: float) -> dict[str, Any]:
    return {
        "variants": {"canary": {"version": "churn-v2", "verdict": {"rows": rows, "share": share}}}
    }


DOCS = {
    ("10.1.0.1", names.PORT_HTTP): router_doc(300, 3),
    ("10.1.0.2", names.PORT_HTTP): router_doc(100, 1),
    ("10.0.0.1", names.PORT_MONITOR): monitor_doc(250, 0.1),
    ("10.0.0.2", names.PORT_MONITOR): monitor_doc(150, 0.3),
    ("10.0.0.3", names.PORT_MONITOR): monitor_doc(999, 0.9),  # not ready: must not be read
}


@pytest.fixture
def fakes() -> Iterator[dict[tuple[str, int], int]]:
    """One HTTP server on 127.0.0.1 per pod endpoint; (pod IP, port) -> local port."""
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []
    ports: dict[tuple[str, int], int] = {}
    try:
        for key, doc in DOCS.items():
            server = ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            servers.append((server, thread))
            ports[key] = server.server_address[1]
            _Fake.docs[ports[key]] = doc
        yield ports
    finally:
        for server, thread in servers:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        _Fake.docs.clear()
        _Fake.hits.clear()


@pytest.fixture
def k8s() -> Iterator[KMockThread]:
    server = KMockThread(with_pods).start()
    yield server
    server.stop()


@pytest.fixture
def client(kubeconfig: Path) -> Iterator[KubeClient]:
    c = KubeClient(kubernetes.client.ApiClient(), retry=RetryPolicy(attempts=3, base_delay=0.01))
    yield c
    c.close()


async def test_every_ready_pod_is_read_and_merged(
    client: KubeClient, fakes: dict[tuple[str, int], int]
) -> None:
    resolve = pod_endpoints(client, lambda ip, port: f"http://127.0.0.1:{fakes.get((ip, port), 9)}")
    endpoints = await resolve(TARGET)
    assert len(endpoints.routers) == 2 and len(endpoints.monitors) == 2
    async with httpx.AsyncClient(timeout=5.0) as http:
        m = await HttpProvider(http, resolve, window_s=30).measure(TARGET)
    assert (m.requests, m.errors) == (400, 4)  # both router replicas, summed
    assert m.drift_samples == 400  # both ready monitors' rows, summed
    assert m.drift_score == pytest.approx(0.3)  # the worst pod
    assert _Fake.hits.get(fakes[("10.0.0.3", names.PORT_MONITOR)], 0) == 0


async def test_pods_that_cannot_be_listed_fall_back_to_services(
    k8s: KMockThread, client: KubeClient
) -> None:
    k8s.inject("get", PODS, 403)
    endpoints = await pod_endpoints(client)(TARGET)
    assert endpoints == service_endpoints(TARGET)
