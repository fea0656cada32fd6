"""The router's children: its Deployment, the public Service, and the route-table ConfigMap.

Pure. The route table is the format ``driftline route`` reads (README, "Route table"): per variant
its model version, weight (or mirror percent), the variant Service as endpoint, the monitor URL
for feedback, and the model name requests are rewritten to. Its ``version`` is derived from the
content (a hash), so rendering stays deterministic and any change yields a new version.
"""

from __future__ import annotations

import hashlib

from driftline.operator import names
from driftline.operator.manifests import JsonObject, JsonValue, Manifest, canonical
from driftline.operator.plan import Topology, VariantPlan
from driftline.operator.render import common

ROUTES_VOLUME = "routes"


def _entry(topology: Topology, variant: VariantPlan) -> JsonObject:
    host = names.service_host(names.variant_name(topology.name, variant.role), topology.namespace)
    entry: JsonObject = {
        "model_version": variant.model.name,
        "model_name": variant.model.family,
        "endpoints": [f"{host}:{names.PORT_HTTP}"],
    }
    if topology.monitor_enabled:
        entry["monitor"] = f"http://{host}:{names.PORT_MONITOR}"
    if variant.role == "shadow":
        entry["mirror_percent"] = variant.mirror_percent
    else:
        entry["weight"] = variant.weight
    return entry


def route_table(topology: Topology) -> JsonObject:
    """The route table for the router (a JSON object; ``version`` derived from the content)."""
    table: JsonObject = {}
    for variant in topology.variants:
        table[variant.role] = _entry(topology, variant)
    if topology.sticky_header:
        table["sticky_header"] = topology.sticky_header
    digest = hashlib.sha256(canonical(table).encode()).hexdigest()
    table["version"] = int(digest[:12], 16)  # < 2**48: exact in JSON and in a float64 metric
    return table


def config_map(topology: Topology) -> Manifest:
    """The ConfigMap holding the route table the router watches."""
    table = route_table(topology)
    meta = common.metadata(topology, names.route_table_name(topology.name))
    meta["annotations"] = {names.ANNOTATION_ROUTE_VERSION: str(table["version"])}
    text = canonical(table)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {names.ROUTE_TABLE_KEY: text},
    }


def deployment(topology: Topology, default_image: str) -> Manifest:
    """The router's apps/v1 Deployment (``driftline route``, table mounted from the ConfigMap)."""
    selector = names.router_selector(topology.name)
    image = topology.pod.image or default_image
    env = {
        "DRIFTLINE_ROUTE_TABLE": f"{names.ROUTE_TABLE_DIR}/{names.ROUTE_TABLE_KEY}",
        "DRIFTLINE_ROUTE_HOST": "0.0.0.0",
        "DRIFTLINE_ROUTE_PORT": str(names.PORT_HTTP),
    }
    container: JsonObject = {
        "name": "router",
        "image": image,
        "args": ["route"],
        "env": common.env(env),
        "ports": [{"name": names.PORT_NAME_HTTP, "containerPort": names.PORT_HTTP}],
        "livenessProbe": common.tcp_probe(names.PORT_NAME_HTTP, 10),
        "readinessProbe": common.tcp_probe(names.PORT_NAME_HTTP, 5),
        "resources": common.resources(topology.router_resources, common.ROUTER_RESOURCES),
        "securityContext": common.container_security(),
        "volumeMounts": [
            {"name": ROUTES_VOLUME, "mountPath": names.ROUTE_TABLE_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    volumes: list[JsonValue] = [
        {"name": ROUTES_VOLUME, "configMap": {"name": names.route_table_name(topology.name)}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
    ]
    pod_labels = {**names.child_labels(topology.name), **selector}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(topology, names.router_name(topology.name), selector),
        "spec": {
            "replicas": topology.router_replicas,
            "selector": {"matchLabels": dict(selector)},
            "revisionHistoryLimit": 3,
            "template": {
                "metadata": {"labels": dict(sorted(pod_labels.items()))},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": common.pod_security(),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def public_service(topology: Topology) -> Manifest:
    """The Service clients call (``<dep>``): it selects the router pods."""
    selector = names.router_selector(topology.name)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": common.metadata(topology, names.public_service_name(topology.name)),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(selector),
            "ports": [
                {
                    "name": names.PORT_NAME_HTTP,
                    "port": names.PORT_HTTP,
                    "targetPort": names.PORT_NAME_HTTP,
                }
            ],
        },
    }
