"""The least-privilege RBAC rules the operator needs, listed once (the Helm chart renders them).

Pure data. Each rule says why it is needed; a unit test checks that every kind the operator reads
or writes (``driftline.operator.k8s.RESOURCES``) and kopf's own needs are covered.
"""

from __future__ import annotations

from typing import Final, NotRequired, TypedDict

from driftline.operator import names


class PolicyRule(TypedDict):
    """One ``rbac.authorization.k8s.io/v1`` PolicyRule."""

    apiGroups: list[str]
    resources: list[str]
    verbs: list[str]
    resourceNames: NotRequired[list[str]]


READ: Final = ["get", "list", "watch"]
WRITE: Final = ["get", "list", "watch", "create", "patch", "update", "delete"]

RULES: Final[list[PolicyRule]] = [
    # Our kinds: kopf watches them and patches metadata (its annotations) and status.
    {
        "apiGroups": [names.GROUP],
        "resources": [k.plural for k in names.KINDS],
        "verbs": ["get", "list", "watch", "patch", "update"],
    },
    {
        "apiGroups": [names.GROUP],
        "resources": [f"{k.plural}/status" for k in names.KINDS],
        "verbs": ["get", "patch", "update"],
    },
    # Children of a Deployment: created, patched and pruned.
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": WRITE},
    {"apiGroups": [""], "resources": ["services", "configmaps"], "verbs": WRITE},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": WRITE},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": WRITE},
    # The router's identity: a ServiceAccount, and a Role + RoleBinding that let it read its
    # route-table ConfigMap (ROUTER_RULES). Creating that Role needs get/list/watch on
    # configmaps here (granted above): Kubernetes forbids granting what one does not hold.
    {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": WRITE},
    {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["roles", "rolebindings"],
        "verbs": WRITE,
    },
    # Retraining Jobs (RetrainPolicy).
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": WRITE},
    # Per-pod analysis: the ready pods of each variant and router (runner.pod_endpoints).
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
    # Events for every decision (kopf posts them).
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    # kopf: namespace discovery for --namespace patterns, CRD discovery, peering.
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": READ},
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": READ,
    },
    {
        "apiGroups": ["kopf.dev"],
        "resources": ["clusterkopfpeerings", "kopfpeerings"],
        "verbs": ["get", "list", "watch", "patch"],
    },
]
"""A ClusterRole's rules (bind with a ClusterRoleBinding, or a RoleBinding per namespace)."""


def router_rules(route_table: str) -> list[PolicyRule]:
    """The rules of one router's Role: read its route-table ConfigMap, and nothing else.

    ``driftline route --table-configmap`` LISTs and WATCHes with
    ``fieldSelector=metadata.name=<route_table>``; Kubernetes authorises such a list or watch
    against ``resourceNames`` (since 1.11), so the router cannot read any other ConfigMap.
    """
    return [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [route_table],
            "verbs": list(READ),
        }
    ]
