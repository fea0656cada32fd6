"""Availability children: an autoscaling/v2 HPA per autoscaled variant and PodDisruptionBudgets.

Pure. Each variant has its own HPA (bounds from the plan: the canary's proportional to its weight),
so stable and canary scale independently. A PDB per variant (and one for the router) keeps
voluntary disruptions (node drains) to one pod at a time.
"""

from __future__ import annotations

from driftline.operator import names
from driftline.operator.manifests import JsonValue, Manifest
from driftline.operator.plan import Topology, VariantPlan
from driftline.operator.render import common

RPS_METRIC = "driftline_server_requests_per_second"
"""Pods metric (through a Prometheus adapter) the HPA reads for a requests-per-second target."""


def hpa(topology: Topology, variant: VariantPlan) -> Manifest | None:
    """The variant's HorizontalPodAutoscaler, or ``None`` when it has fixed replicas."""
    bounds = variant.autoscaling
    if bounds is None:
        return None
    name = names.variant_name(topology.name, variant.role)
    metrics: list[JsonValue] = []
    if bounds.cpu_utilization is not None:
        metrics.append(
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": bounds.cpu_utilization},
                },
            }
        )
    if bounds.requests_per_second is not None:
        metrics.append(
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": RPS_METRIC},
                    "target": {
                        "type": "AverageValue",
                        "averageValue": f"{bounds.requests_per_second:g}",
                    },
                },
            }
        )
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": common.metadata(
            topology, name, names.variant_selector(topology.name, variant.role)
        ),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": bounds.min_replicas,
            "maxReplicas": bounds.max_replicas,
            "metrics": metrics,
        },
    }


def pdb(topology: Topology, name: str, selector: dict[str, str]) -> Manifest:
    """A PodDisruptionBudget allowing one voluntarily disrupted pod at a time."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": common.metadata(topology, name, selector),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(selector)}},
    }
