"""Per-variant children: the serving Deployment (fetch init + server + monitor) and its Service.

Pure. The pod runs three containers from the one Driftline image:

- ``fetch`` (init): ``driftline fetch URI --sha256 HEX --dest /models`` downloads and verifies the
  artifact into an ``emptyDir``; a wrong digest fails the pod before anything serves it.
- ``server``: ``driftline serve`` (settings through ``DRIFTLINE_SERVE_*``), Open Inference
  Protocol v2 on port 8080; liveness ``/v2/health/live``, readiness ``/v2/health/ready``.
- ``monitor``: ``driftline monitor`` (``DRIFTLINE_MONITOR_*``) on port 9100; the server posts
  prediction records to it over localhost. It loads the Model's reference profile from the
  Model's ConfigMap, mounted read-only; its tests come from the DriftMonitor watching the
  Deployment (``render.monitoring``). A Model without a profile runs without a monitor.
"""

from __future__ import annotations

from driftline.operator import names
from driftline.operator.manifests import JsonObject, JsonValue, Manifest
from driftline.operator.plan import Topology, VariantPlan
from driftline.operator.render import common, monitoring

MODEL_VOLUME = "models"
TMP_VOLUME = "tmp"


def model_file(uri: str) -> str:
    """Where the fetched model lands: ``/models/<last segment of the URI>`` (the fetcher's rule)."""
    tail = uri.split("?", 1)[0].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return f"{names.MODEL_DIR}/{tail or 'model.onnx'}"


def _server_env(topology: Topology, variant: VariantPlan) -> dict[str, str]:
    values = {
        "DRIFTLINE_SERVE_MODEL": model_file(variant.model.uri),
        "DRIFTLINE_SERVE_NAME": variant.model.family,
        # The Model's name is the version everything reports (records, route table, analysis),
        # so a measurement is always attributed to the Model object a rollout names.
        "DRIFTLINE_SERVE_VERSION": variant.model.name,
        "DRIFTLINE_SERVE_VARIANT": variant.role,
        "DRIFTLINE_SERVE_HOST": "0.0.0.0",
        "DRIFTLINE_SERVE_PORT": str(names.PORT_HTTP),
        "DRIFTLINE_SERVE_MAX_BATCH_SIZE": str(topology.batching.max_batch_size),
        "DRIFTLINE_SERVE_MAX_DELAY_MS": f"{topology.batching.max_delay_ms:g}",
    }
    if monitoring.has_monitor(topology, variant):
        values["DRIFTLINE_SERVE_MONITOR_URL"] = f"http://127.0.0.1:{names.PORT_MONITOR}"
    return values


def _image(topology: Topology, default_image: str) -> str:
    return topology.pod.image or default_image


def _containers(topology: Topology, variant: VariantPlan, image: str) -> list[JsonValue]:
    mounts: list[JsonValue] = [
        {"name": MODEL_VOLUME, "mountPath": names.MODEL_DIR, "readOnly": True},
        {"name": TMP_VOLUME, "mountPath": "/tmp"},
    ]
    server: JsonObject = {
        "name": "server",
        "image": image,
        "args": ["serve"],
        "env": common.env(_server_env(topology, variant)),
        "ports": [{"name": names.PORT_NAME_HTTP, "containerPort": names.PORT_HTTP}],
        "livenessProbe": common.http_probe("/v2/health/live", names.PORT_NAME_HTTP, 10, 3),
        "readinessProbe": common.http_probe("/v2/health/ready", names.PORT_NAME_HTTP, 5, 2),
        "startupProbe": common.http_probe("/v2/health/live", names.PORT_NAME_HTTP, 2, 60),
        "resources": common.resources(topology.resources, common.SERVER_RESOURCES),
        "securityContext": common.container_security(),
        "volumeMounts": mounts,
    }
    out: list[JsonValue] = [server]
    if monitoring.has_monitor(topology, variant):
        out.append(
            {
                "name": "monitor",
                "image": image,
                "args": ["monitor"],
                "env": common.env(monitoring.monitor_env(topology, variant)),
                "ports": [{"name": names.PORT_NAME_MONITOR, "containerPort": names.PORT_MONITOR}],
                "livenessProbe": common.tcp_probe(names.PORT_NAME_MONITOR, 10),
                "readinessProbe": common.tcp_probe(names.PORT_NAME_MONITOR, 5),
                "resources": common.MONITOR_RESOURCES,
                "securityContext": common.container_security(),
                "volumeMounts": [
                    {"name": TMP_VOLUME, "mountPath": "/tmp"},
                    {
                        "name": monitoring.PROFILE_VOLUME,
                        "mountPath": names.PROFILE_DIR,
                        "readOnly": True,
                    },
                ],
            }
        )
    return out


def _fetch(variant: VariantPlan, image: str) -> JsonObject:
    return {
        "name": "fetch",
        "image": image,
        "args": [
            "fetch",
            variant.model.uri,
            "--sha256",
            variant.model.sha256,
            "--dest",
            names.MODEL_DIR,
        ],
        "resources": common.FETCH_RESOURCES,
        "securityContext": common.container_security(),
        "volumeMounts": [
            {"name": MODEL_VOLUME, "mountPath": names.MODEL_DIR},
            {"name": TMP_VOLUME, "mountPath": "/tmp"},
        ],
    }


def deployment(topology: Topology, variant: VariantPlan, default_image: str) -> Manifest:
    """The apps/v1 Deployment running one variant's pods."""
    name = names.variant_name(topology.name, variant.role)
    selector = names.variant_selector(topology.name, variant.role)
    image = _image(topology, default_image)
    pod_labels = {**topology.pod.labels, **names.child_labels(topology.name), **selector}
    pod_labels[names.LABEL_MODEL] = variant.model.name
    volumes: list[JsonValue] = [
        {"name": MODEL_VOLUME, "emptyDir": {}},
        {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    if monitoring.has_monitor(topology, variant):
        volumes.append(monitoring.profile_volume(variant))
    pod_spec: JsonObject = {
        "automountServiceAccountToken": False,
        "securityContext": common.pod_security(),
        "initContainers": [_fetch(variant, image)],
        "containers": _containers(topology, variant, image),
        "volumes": volumes,
        "terminationGracePeriodSeconds": 30,
    }
    if topology.pod.service_account_name:
        pod_spec["serviceAccountName"] = topology.pod.service_account_name
        pod_spec["automountServiceAccountToken"] = True  # e.g. workload identity for the store
    if topology.pod.node_selector:
        pod_spec["nodeSelector"] = dict(sorted(topology.pod.node_selector.items()))
    if topology.pod.tolerations:
        pod_spec["tolerations"] = [t.to_wire() for t in topology.pod.tolerations]
    spec: JsonObject = {
        "selector": {"matchLabels": dict(selector)},
        "revisionHistoryLimit": 3,
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "template": {
            "metadata": {
                "labels": dict(sorted(pod_labels.items())),
                "annotations": dict(sorted(topology.pod.annotations.items())),
            },
            "spec": pod_spec,
        },
    }
    if variant.autoscaling is None:
        spec["replicas"] = variant.replicas
    extra = {**selector, names.LABEL_MODEL: variant.model.name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(topology, name, extra),
        "spec": spec,
    }


def service(topology: Topology, variant: VariantPlan) -> Manifest:
    """The ClusterIP Service of one variant: what the route table points the router at."""
    name = names.variant_name(topology.name, variant.role)
    selector = names.variant_selector(topology.name, variant.role)
    ports: list[JsonValue] = [
        {"name": names.PORT_NAME_HTTP, "port": names.PORT_HTTP, "targetPort": names.PORT_NAME_HTTP}
    ]
    if monitoring.has_monitor(topology, variant):
        ports.append(
            {
                "name": names.PORT_NAME_MONITOR,
                "port": names.PORT_MONITOR,
                "targetPort": names.PORT_NAME_MONITOR,
            }
        )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": common.metadata(topology, name, selector),
        "spec": {"type": "ClusterIP", "selector": dict(selector), "ports": ports},
    }
