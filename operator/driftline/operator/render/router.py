"""The router's children: Deployment, public Service, route-table ConfigMap, and its identity.

The identity is a ServiceAccount with a Role and RoleBinding that let the router read the
route-table ConfigMap.

Why the router reads its table through the API (``--table-configmap``) and not from a mounted
volume: the kubelet refreshes ConfigMap volumes only on its sync period (a minute or more), while a
rollout step must be live within seconds. The Role grants get/list/watch on that one ConfigMap
(``resourceNames``), nothing else.

Pure. The route table is the format ``driftline route`` reads (README, "Route table"): per variant
its model version, weight (or mirror percent), the variant Service as endpoint, the monitor URL
for feedback, and the model name requests are rewritten to. Its ``version`` is derived from the
content (a hash), so rendering stays deterministic and any change yields a new version.
"""

from __future__ import annotations

import hashlib

from driftline.operator import names, rbac
from driftline.operator.manifests import JsonObject, JsonValue, Manifest, canonical
from driftline.operator.plan import Topology, VariantPlan
from driftline.operator.render import common

RBAC_API: str = "rbac.authorization.k8s.io/v1"


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


def service_account(topology: Topology) -> Manifest:
    """The router's ServiceAccount (its identity towards the API server)."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": common.metadata(topology, names.router_account_name(topology.name)),
    }


def role(topology: Topology) -> Manifest:
    """The Role that lets the router get/list/watch its route-table ConfigMap, and only it."""
    rules: list[JsonValue] = []
    for rule in rbac.router_rules(names.route_table_name(topology.name)):
        entry: JsonObject = {
            "apiGroups": list[JsonValue](rule["apiGroups"]),
            "resources": list[JsonValue](rule["resources"]),
            "verbs": list[JsonValue](rule["verbs"]),
        }
        if "resourceNames" in rule:
            entry["resourceNames"] = list[JsonValue](rule["resourceNames"])
        rules.append(entry)
    return {
        "apiVersion": RBAC_API,
        "kind": "Role",
        "metadata": common.metadata(topology, names.router_account_name(topology.name)),
        "rules": rules,
    }


def role_binding(topology: Topology) -> Manifest:
    """Binds the router's Role to its ServiceAccount."""
    account = names.router_account_name(topology.name)
    return {
        "apiVersion": RBAC_API,
        "kind": "RoleBinding",
        "metadata": common.metadata(topology, account),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": topology.namespace}],
    }


def table_ref(topology: Topology) -> str:
    """``NAMESPACE/NAME/KEY`` of the route table: what ``--table-configmap`` takes."""
    name = names.route_table_name(topology.name)
    return f"{topology.namespace}/{name}/{names.ROUTE_TABLE_KEY}"


def deployment(topology: Topology, default_image: str) -> Manifest:
    """The router's apps/v1 Deployment (``driftline route``, table watched through the API)."""
    selector = names.router_selector(topology.name)
    image = topology.pod.image or default_image
    env = {
        "DRIFTLINE_ROUTE_TABLE_CONFIGMAP": table_ref(topology),
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
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    volumes: list[JsonValue] = [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}]
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
                    "serviceAccountName": names.router_account_name(topology.name),
                    "automountServiceAccountToken": True,  # it reads its table via the API
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
