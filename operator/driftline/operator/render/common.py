"""Pieces every rendered object shares: metadata, pod security, resources, the image.

Pure: deterministic dicts from plain values (no clock, no uuid, no environment).
"""

from __future__ import annotations

from driftline.operator import names
from driftline.operator.api.meta import ResourceRequirements
from driftline.operator.manifests import JsonObject, JsonValue, ObjectMeta
from driftline.operator.plan import Topology

RUN_AS: int = 65532
"""The image's numeric non-root user and group (the Dockerfile creates it)."""

SERVER_RESOURCES: JsonObject = {
    "requests": {"cpu": "250m", "memory": "256Mi"},
    "limits": {"memory": "1Gi"},
}
"""Model server resources when the spec sets none: enough for small ONNX models; no CPU limit
(throttling hurts tail latency more than it protects neighbours)."""

MONITOR_RESOURCES: JsonObject = {
    "requests": {"cpu": "50m", "memory": "128Mi"},
    "limits": {"memory": "256Mi"},
}
"""Monitor sidecar resources: windows of a few thousand rows per feature."""

FETCH_RESOURCES: JsonObject = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"memory": "256Mi"},
}
"""Fetch init container resources: it streams, so memory stays flat for any model size."""

ROUTER_RESOURCES: JsonObject = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "512Mi"},
}
"""Router resources when the spec sets none."""


def metadata(topology: Topology, name: str, extra: dict[str, str] | None = None) -> ObjectMeta:
    """Metadata of one child: its name, the Deployment's namespace, the child labels."""
    labels = names.child_labels(topology.name)
    if extra:
        labels.update(extra)
    return {"name": name, "namespace": topology.namespace, "labels": labels}


def resources(spec: ResourceRequirements | None, default: JsonObject) -> JsonObject:
    """Container resources: the spec's when given (requests/limits as written), else defaults."""
    if spec is None or (spec.requests is None and spec.limits is None):
        return default
    out: JsonObject = {}
    if spec.requests is not None:
        out["requests"] = {k: v for k, v in sorted(spec.requests.items())}
    if spec.limits is not None:
        out["limits"] = {k: v for k, v in sorted(spec.limits.items())}
    return out


def container_security() -> JsonObject:
    """Restricted Pod Security for a container: non-root, read-only root, no privileges."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security() -> JsonObject:
    """Restricted Pod Security for a pod (the ``restricted`` profile of Pod Security Admission)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def env(values: dict[str, str]) -> list[JsonValue]:
    """Environment variables in a stable order (sorted by name)."""
    return [{"name": k, "value": v} for k, v in sorted(values.items())]


def tcp_probe(port: str, period: int) -> JsonObject:
    """A TCP probe on a named port."""
    return {"tcpSocket": {"port": port}, "periodSeconds": period, "failureThreshold": 3}


def http_probe(path: str, port: str, period: int, failures: int) -> JsonObject:
    """An HTTP GET probe on a named port."""
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }
