"""The RBAC rules cover every kind the operator touches.

We test these aspects:
- every resource in k8s.RESOURCES is allowed the verbs the applier uses;
- status subresources of our kinds are patchable; peering objects are patchable.
"""

from __future__ import annotations

from driftline.operator import names
from driftline.operator.k8s import RESOURCES
from driftline.operator.rbac import RULES


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
