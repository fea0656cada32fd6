# ruff: noqa: E501
"""Control-plane timings of the operator against the Kubernetes API emulator, in one run.

The operator (kopf + Driftline's handlers, in this process) runs against ``KubernetesEmulatorPlus``
(tests/integration/operator_env) over HTTP on 127.0.0.1, as the integration tests do. A stand-in
for the Deployment controller marks child Deployments ready (there is no kubelet here). Measured:

- ``create``: Deployment created (its Model already Ready) -> every child present, and -> status
  ``Healthy`` (after the stand-in marked pods ready); median and p90 over ``--creates`` runs;
- ``scale``: ``--deployments`` Deployments created at once -> all ``Healthy``: wall time, API
  requests served, and the operator process's peak RSS.

No peer runs here: Argo Rollouts and Flagger are Go controllers that need a real API server (and
their own CRDs and controllers); the emulator does not run them. So the figures are absolute,
reported as context for the issue's targets, not as ratios.

Usage: ``python bench/operator/control_plane.py [--creates 20] [--deployments 200]``; writes
``bench/results/operator.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration" / "operator_env"))

import kubernetes  # noqa: E402
import onnx  # noqa: E402
from kube_env import KMockThread, running_operator, write_kubeconfig  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

from driftline.operator import names  # noqa: E402
from driftline.operator.settings import OperatorSettings  # noqa: E402

NS = "default"
APPS = "apps/v1/deployments"


def write_model(path: Path) -> str:
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 1], [1.0, 1.0, 1.0])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        [w],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.save(proto, str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def api() -> Any:
    return kubernetes.client.CustomObjectsApi()


async def wait_for(fn: Callable[[], Any], timeout: float, what: str) -> float:
    start = time.perf_counter()
    while True:
        if fn():
            return time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            raise TimeoutError(what)
        await asyncio.sleep(0.005)  # polling interval of a condition with a deadline


def mark_ready(k8s: KMockThread) -> None:
    apps = kubernetes.client.AppsV1Api()
    for name, obj in k8s.objects(APPS, NS).items():
        want = obj["spec"].get("replicas", 1)
        if (obj.get("status") or {}).get("readyReplicas") != want:
            apps.patch_namespaced_deployment_status(name, NS, {"status": {"readyReplicas": want}})


def healthy(k8s: KMockThread, names_: list[str]) -> bool:
    deps = k8s.objects(names.DEPLOYMENT.resource, NS)
    return all((deps.get(n, {}).get("status") or {}).get("phase") == "Healthy" for n in names_)


def create_deployment(name: str) -> None:
    api().create_namespaced_custom_object(
        names.GROUP,
        names.VERSION,
        NS,
        names.DEPLOYMENT.plural,
        {
            "apiVersion": names.API_VERSION,
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {"model": "tiny-v1", "replicas": 1},
        },
    )


async def run(creates: int, count: int, tmp: Path) -> dict[str, Any]:
    k8s = KMockThread().start()
    path = write_kubeconfig(tmp / "kubeconfig", k8s.url)
    kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(path)
    kubernetes.config.load_kube_config(config_file=str(path))
    sha = write_model(tmp / "m.onnx")
    settings = OperatorSettings(standalone=True, metrics_port=0, resync_interval=0.5)
    out: dict[str, Any] = {}
    try:
        async with running_operator(settings):
            api().create_namespaced_custom_object(
                names.GROUP,
                names.VERSION,
                NS,
                names.MODEL.plural,
                {
                    "apiVersion": names.API_VERSION,
                    "kind": "Model",
                    "metadata": {"name": "tiny-v1"},
                    "spec": {
                        "family": "tiny",
                        "version": "v1",
                        "source": {"uri": f"file://{tmp / 'm.onnx'}", "sha256": sha},
                    },
                },
            )
            models = names.MODEL.resource
            await wait_for(
                lambda: (
                    (k8s.objects(models, NS)["tiny-v1"].get("status") or {}).get("phase") == "Ready"
                ),
                30,
                "model ready",
            )
            children, ready = [], []
            for i in range(creates):
                name = f"c{i}"
                t0 = time.perf_counter()
                create_deployment(name)
                await wait_for(
                    lambda n=name: (
                        {f"{n}-stable", f"{n}-router"} <= set(k8s.objects(APPS, NS))
                        and n in k8s.objects("v1/services", NS)
                    ),
                    30,
                    "children",
                )
                children.append(time.perf_counter() - t0)
                mark_ready(k8s)
                await wait_for(lambda n=name: healthy(k8s, [n]), 30, "healthy")
                ready.append(time.perf_counter() - t0)
            out["create"] = {
                "runs": creates,
                "children_s": {
                    "p50": statistics.median(children),
                    "p90": statistics.quantiles(children, n=10)[-1],
                },
                "healthy_s": {
                    "p50": statistics.median(ready),
                    "p90": statistics.quantiles(ready, n=10)[-1],
                },
                "resync_interval_s": settings.resync_interval,
            }
            before = k8s.call(lambda: len(k8s.handler._requests))
            wanted = [f"s{i}" for i in range(count)]
            t0 = time.perf_counter()
            for n in wanted:
                create_deployment(n)
            await wait_for(
                lambda: all(f"{n}-router" in k8s.objects(APPS, NS) for n in wanted), 600, "children"
            )
            t_children = time.perf_counter() - t0
            mark_ready(k8s)
            await wait_for(lambda: healthy(k8s, wanted), 600, "all healthy")
            out["scale"] = {
                "deployments": count,
                "all_children_s": t_children,
                "all_healthy_s": time.perf_counter() - t0,
                "api_requests": k8s.call(lambda: len(k8s.handler._requests)) - before,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
    finally:
        kubernetes.client.Configuration.set_default(None)
        k8s.stop()
    return out


def markdown(res: dict[str, Any], command: str) -> str:
    c, s = res["create"], res["scale"]
    return "\n".join(
        [
            "# Operator control plane against the API emulator",
            "",
            f"Command: `{command}` (2-core machine; operator and emulator in one process).",
            "",
            "| measurement | value |",
            "|---|---|",
            f"| create -> all children present (p50 / p90 of {c['runs']}) | "
            f"{c['children_s']['p50'] * 1000:.0f} ms / {c['children_s']['p90'] * 1000:.0f} ms |",
            f"| create -> Healthy, pods marked ready at once (p50 / p90) | "
            f"{c['healthy_s']['p50'] * 1000:.0f} ms / {c['healthy_s']['p90'] * 1000:.0f} ms "
            f"(bounded below by the {c['resync_interval_s']} s resync: pod readiness is seen on resync) |",
            f"| {s['deployments']} Deployments created at once -> all children present | {s['all_children_s']:.1f} s |",
            f"| {s['deployments']} Deployments -> all Healthy | {s['all_healthy_s']:.1f} s |",
            f"| API requests for those {s['deployments']} | {s['api_requests']} |",
            f"| peak RSS of the process (operator + emulator + client) | {s['peak_rss_mib']:.0f} MiB |",
            "",
            "No peer ran: Argo Rollouts and Flagger need a real API server; see the module docstring.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--creates", type=int, default=20)
    parser.add_argument("--deployments", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        res = asyncio.run(run(args.creates, args.deployments, Path(tmp)))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "operator.json").write_text(json.dumps(res, indent=2) + "\n")
    command = f"python bench/operator/control_plane.py --creates {args.creates} --deployments {args.deployments}"
    (out / "operator.md").write_text(markdown(res, command))
    print(markdown(res, command))


if __name__ == "__main__":
    main()
