"""The RBAC rules cover every kind the operator touches.

We test these aspects:
- every resource in k8s.RESOURCES is allowed the verbs the applier uses;
- status subresources of our kinds are patchable; peering objects are patchable.
"""

from __future__ import annotations

from driftline.operator import names
from driftline.operator.k8s import RESOURCES
from driftline.operator.rbac import RULES, router_rules


def allowed(group: str, resource: str, verb: str) -> bool:
    return any(
        group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in RULES
    )


def test_every_managed_kind_is_covered() -> None:
    for (_, kind), res in RESOURCES.items():
        verbs = ["create"] if kind == "Event" else ["get", "list", "watch", "patch"]
        if res.group != names.GROUP and kind != "Event":
            verbs += ["create", "delete"]
        for verb in verbs:
            assert allowed(res.group, res.plural, verb), (kind, verb)


def test_status_and_peering_are_patchable() -> None:
    for kind in names.KINDS:
        assert allowed(names.GROUP, f"{kind.plural}/status", "patch")
    assert allowed("kopf.dev", "clusterkopfpeerings", "patch")


def test_the_operator_may_create_the_routers_identity_and_grant_its_rules() -> None:
    for group, resource in (
        ("", "serviceaccounts"),
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "rolebindings"),
    ):
        for verb in ("get", "list", "watch", "create", "patch", "delete"):
            assert allowed(group, resource, verb), (resource, verb)
    # Kubernetes refuses to create a Role granting what its creator does not hold (no escalate).
    for rule in router_rules("shop-routes"):
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert allowed(group, resource, verb), (resource, verb)


def test_the_router_reads_only_its_own_configmap() -> None:
    (rule,) = router_rules("shop-routes")
    assert rule == {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["shop-routes"],
        "verbs": ["get", "list", "watch"],
    }


def test_pods_are_listable_for_per_pod_analysis() -> None:
    assert allowed("", "pods", "list")
    assert not allowed("", "pods", "delete")


def test_every_resource_the_operator_watches_is_listable_and_watchable() -> None:
    """kopf LISTs and WATCHes each resource a handler is registered for (child Deployments too)."""
    from prometheus_client import CollectorRegistry

    from driftline.operator import handlers, runner
    from driftline.operator.k8s import RESOURCES
    from driftline.operator.metrics import Metrics
    from driftline.operator.settings import OperatorSettings

    ctx = handlers.Context(
        settings=OperatorSettings(standalone=True),
        metrics=Metrics(CollectorRegistry()),
        cluster=None,  # type: ignore[arg-type]  # registering needs no cluster
    )
    registry = runner.build_registry(ctx)
    plurals = {res.plural for res in RESOURCES.values()}
    watched = {
        (h.selector.group or "", h.selector.any_name or h.selector.plural or "")
        for sub in (registry._watching, registry._changing, registry._spawning)
        for h in sub.get_all_handlers()
    }
    assert ("apps", "deployments") in watched  # the child watch
    for group, plural in watched:
        assert plural in plurals, plural
        for verb in ("list", "watch"):
            assert allowed(group, plural, verb), (group, plural, verb)
