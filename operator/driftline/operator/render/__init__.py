"""The renderer: a desired ``Topology`` -> the Kubernetes manifests that realise it (pure).

Deterministic: the same topology and owner give byte-identical manifests (no clock, no uuid, no
environment), so re-running a reconcile changes nothing and golden files pin the output
(``tests/unit/render/golden``). Modules: ``serving`` (variant Deployment + Service), ``router``
(router Deployment, public Service, route-table ConfigMap, the router's ServiceAccount, Role and
RoleBinding), ``scaling`` (HPA, PDB), ``common``.
Owner references are set here, so every child is garbage-collected with its Deployment.
"""

from __future__ import annotations

from driftline.operator import names
from driftline.operator.manifests import Manifest, OwnerReference
from driftline.operator.plan import Topology
from driftline.operator.render import router, scaling, serving

CHILD_KINDS: tuple[tuple[str, str], ...] = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
)
"""Every kind the renderer emits: what the pruner lists to find children no longer desired."""


def manifests(topology: Topology, owner: OwnerReference, image: str) -> list[Manifest]:
    """Every child of one Deployment, in apply order (variants first, then the router).

    Args:
        topology: the desired topology from ``driftline.operator.plan.desired``.
        owner: the owner reference of the Driftline Deployment (set on every child).
        image: the serving image when the spec does not set ``pod.image``.

    Returns:
        Manifests: per variant a Deployment, Service, optional HPA and a PDB; then the route-table
        ConfigMap, the router's ServiceAccount, Role and RoleBinding (it reads that ConfigMap
        through the API), the router Deployment, its PDB and the public Service.
    """
    out: list[Manifest] = []
    for variant in topology.variants:
        out.append(serving.deployment(topology, variant, image))
        out.append(serving.service(topology, variant))
        autoscaler = scaling.hpa(topology, variant)
        if autoscaler is not None:
            out.append(autoscaler)
        out.append(
            scaling.pdb(
                topology,
                names.variant_name(topology.name, variant.role),
                names.variant_selector(topology.name, variant.role),
            )
        )
    out.append(router.config_map(topology))
    out.append(router.service_account(topology))
    out.append(router.role(topology))
    out.append(router.role_binding(topology))
    out.append(router.deployment(topology, image))
    out.append(
        scaling.pdb(
            topology, names.router_name(topology.name), names.router_selector(topology.name)
        )
    )
    out.append(router.public_service(topology))
    for manifest in out:
        manifest["metadata"]["ownerReferences"] = [owner]
    return out
