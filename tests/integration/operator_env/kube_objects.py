"""Driftline objects in the API emulator: what the operator tests and its benchmark both set up.

- ``write_model``: a tiny real ONNX graph on disk (y = x @ w, 3 features -> 1 output) and its
  sha256, for a Model's ``file://`` source;
- ``model_body`` / ``deployment_body``: the custom objects;
- ``create`` / ``patch_spec``: through the ``kubernetes`` client (the default one, or ``api``: the
  benchmark's, whose User-Agent keeps its own requests out of the operator's count);
- ``mark_ready``: the Deployment controller's stand-in (there is no kubelet): every child
  Deployment reports all its pods ready;
- ``status_of`` / ``condition``: status reads straight from the emulator's memory.

Plain functions, no pytest: ``bench/operator/control_plane.py`` imports this module (and
``kube_env``) from this folder, so the benchmark and the tests build the very same objects.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import kubernetes
import onnx
from kube_env import KMockThread
from onnx import TensorProto, helper

from driftline.operator import names

NS = "default"
MODELS = names.MODEL.resource
DEPLOYS = names.DEPLOYMENT.resource
APPS = "apps/v1/deployments"


def write_model(path: Path, scale: float) -> str:
    """A tiny ONNX graph y = x @ w (3 features -> 1 output) at ``path``; returns its sha256."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 1], [scale, scale, scale])
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


def model_body(name: str, path: Path, sha: str, version: str = "v1") -> dict[str, Any]:
    """A Model serving the ``write_model`` graph at ``path`` (features a, b, c)."""
    return {
        "apiVersion": names.API_VERSION,
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {
            "family": "tiny",
            "version": version,
            "source": {"uri": f"file://{path}", "sha256": sha},
            "features": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
        },
    }


def deployment_body(model: str, name: str = "tiny", **spec: Any) -> dict[str, Any]:
    """A Driftline Deployment named ``name`` serving ``model`` (more ``spec`` fields as kwargs)."""
    return {
        "apiVersion": names.API_VERSION,
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"model": model, **spec},
    }


def create(
    plural: str, body: dict[str, Any], api: kubernetes.client.CustomObjectsApi | None = None
) -> None:
    """Create one of our custom objects in ``NS``."""
    (api or kubernetes.client.CustomObjectsApi()).create_namespaced_custom_object(
        names.GROUP, names.VERSION, NS, plural, body
    )


def patch_spec(
    plural: str,
    name: str,
    spec: dict[str, Any],
    api: kubernetes.client.CustomObjectsApi | None = None,
) -> None:
    """Merge ``spec`` into one of our custom objects in ``NS``."""
    (api or kubernetes.client.CustomObjectsApi()).patch_namespaced_custom_object(
        names.GROUP, names.VERSION, NS, plural, name, {"spec": spec}
    )


def mark_ready(k8s: KMockThread, api: kubernetes.client.AppsV1Api | None = None) -> list[str]:
    """Stand in for the Deployment controller: every child Deployment reports a finished rollout.

    Returns:
        The names of the Deployments it changed (already ready ones are left alone).
    """
    apps = api or kubernetes.client.AppsV1Api()
    done = []
    for name, obj in k8s.objects(APPS, NS).items():
        status = rolled_out_status(obj)
        if {k: (obj.get("status") or {}).get(k) for k in status} != status:
            apps.patch_namespaced_deployment_status(name, NS, {"status": status})
            done.append(name)
    return done


def rolled_out_status(obj: dict[str, Any]) -> dict[str, int]:
    """An apps/v1 status after a finished rollout: latest spec seen, every pod updated, ready.

    A promotion waits for exactly this on ``<dep>-stable`` (``status.rolled_out_model``).
    """
    want = int(obj["spec"].get("replicas", 1))
    return {
        "observedGeneration": int(obj["metadata"].get("generation", 1)),
        "replicas": want,
        "updatedReplicas": want,
        "readyReplicas": want,
    }


def stable_template_model(k8s: KMockThread) -> str:
    """The Model the pod template of ``tiny-stable`` runs."""
    template = k8s.objects(APPS, NS)["tiny-stable"]["spec"]["template"]
    return str(template["metadata"]["labels"][names.LABEL_MODEL])


def status_of(k8s: KMockThread, resource: str, name: str) -> dict[str, Any]:
    """The object's status as the emulator holds it ({} when absent)."""
    status: dict[str, Any] = k8s.objects(resource, NS).get(name, {}).get("status") or {}
    return status


def condition(status: dict[str, Any], type_: str) -> tuple[str, str] | None:
    """``(status, reason)`` of one condition, or None."""
    for c in status.get("conditions", []):
        if c["type"] == type_:
            return c["status"], c["reason"]
    return None
