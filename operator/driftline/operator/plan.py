"""The plan: (Deployment spec, referenced Models, rollout state) -> the desired serving topology.

Pure: no clock, no I/O, no Kubernetes. The handlers (and local mode) call ``desired`` on every
reconcile; the renderer turns its ``Topology`` into manifests (or processes).

Rules:

- The rollout state lives in ``DeploymentStatus`` (``stableModel``, ``canaryModel``,
  ``shadowModel``, ``canaryWeight``), written by the rollout state machine; the plan only reads it.
  Before anything was ever promoted (no ``stableModel``) the stable variant serves ``spec.model``.
- Live weights: the canary gets ``canaryWeight``, the stable variant the rest (they sum to 100). A
  shadow gets no live traffic; ``spec.rollout.shadow.percent`` of requests are mirrored to it.
- Scale: the stable variant keeps the full ``replicas`` / autoscaling bounds during a rollout (an
  abort is then instant, no scale-up needed). The canary's bounds are proportional to its weight
  and the shadow's to its mirror percent (``ceil``, at least one pod): a 10% canary of a
  2..20-pod HPA scales within 1..2. Each variant gets its own HPA, so a canary leak never inflates
  the stable fleet.
- Promotion (``Promoting`` in status): ``stableModel`` is what ``<dep>-stable`` must run (the old
  Model while the canary's 100% drains it, then the new one, or the old one again after an
  abort) at full size; the canary runs at full size whatever its weight (the state machine
  keeps the step's weight until the canary is ready at that size, then gives it 100%).
- Drain: when a rollout ends (promotion, rollback, abort, revert, supersede) the slot that carried
  the target (``<dep>-canary`` or ``<dep>-shadow``) loses its traffic but stays rendered, at
  weight 0 (mirror 0) and at the size it had, while ``status.rollout.drainSlot`` names it: requests
  in flight finish and routers still holding the previous route table reach live pods. The rollout
  state machine clears ``drainSlot`` once ``spec.rollout.drain`` has passed; the next reconcile
  renders without it and the slot is pruned. A slot a live variant uses again wins over the drain;
  a drained Model that no longer exists is simply not rendered (nothing left to drain).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from driftline.operator.api import Deployment, Model
from driftline.operator.api.deployment import Batching, PodOverrides
from driftline.operator.api.driftmonitor import DriftMonitorSpec
from driftline.operator.api.meta import ResourceRequirements
from driftline.operator.errors import DependencyNotReady

Role = Literal["stable", "canary", "shadow"]
ROLES: tuple[Role, ...] = ("stable", "canary", "shadow")
"""Every variant role, in the order the renderer emits them."""

DEFAULT_CPU_TARGET = 80
"""Average CPU utilisation (percent) an HPA aims for when the spec sets no target at all."""


@dataclass(frozen=True)
class AutoscalingBounds:
    """One variant's HorizontalPodAutoscaler bounds and targets."""

    min_replicas: int
    max_replicas: int
    cpu_utilization: int | None
    """Target average CPU utilisation in percent; ``None`` when only the RPS target is set."""
    requests_per_second: float | None
    """Target average inference requests per second per pod; ``None`` to not scale on it."""


@dataclass(frozen=True)
class ModelRef:
    """What serving pods need to know about the Model a variant serves."""

    name: str
    """The Model object's name."""
    family: str
    version: str
    uri: str
    sha256: str
    profile: str | None
    """Local mode: the reference profile file the monitor loads (from Model status), if built."""
    features: tuple[str, ...]
    profile_config_map: str | None = None
    """The ConfigMap holding the Model's reference profile (from Model status), if built."""


@dataclass(frozen=True)
class VariantPlan:
    """One variant of the desired topology."""

    role: Role
    model: ModelRef
    weight: int
    """Percent of live traffic (0 for a shadow)."""
    mirror_percent: int
    """Percent of requests mirrored to it (shadow only; 0 otherwise)."""
    replicas: int
    """Fixed pod count; ignored when ``autoscaling`` is set (the HPA owns replicas then)."""
    autoscaling: AutoscalingBounds | None
    draining: bool = False
    """True for a slot kept running with no traffic until its drain ends (weight and mirror 0)."""


@dataclass(frozen=True)
class Topology:
    """Everything the renderer needs for one Deployment: the desired serving topology."""

    name: str
    namespace: str
    variants: tuple[VariantPlan, ...]
    router_replicas: int
    router_resources: ResourceRequirements | None
    sticky_header: str | None
    batching: Batching
    resources: ResourceRequirements | None
    monitor_enabled: bool
    monitor_window: int
    pod: PodOverrides
    drift: DriftMonitorSpec | None = None
    """The DriftMonitor watching this Deployment (its settings become the sidecars' flags)."""

    def variant(self, role: Role) -> VariantPlan | None:
        """The variant playing ``role``, if any (a draining slot included)."""
        return next((v for v in self.variants if v.role == role), None)

    @property
    def weights(self) -> dict[str, int]:
        """Live traffic weight per variant role (the shadow included, at 0)."""
        return {v.role: v.weight for v in self.variants}


def model_ref(model: Model) -> ModelRef:
    """The serving-relevant facts of a parsed Model."""
    status = model.status
    return ModelRef(
        name=model.metadata.name,
        family=model.spec.family,
        version=model.spec.version,
        uri=model.spec.source.uri,
        sha256=model.spec.source.sha256,
        profile=status.profile if status is not None else None,
        features=tuple(f.name for f in model.spec.features),
        profile_config_map=status.profile_config_map if status is not None else None,
    )


def _share(total: int, percent: int) -> int:
    """``ceil(total * percent / 100)``, at least 1: a variant that exists serves from a pod."""
    return max(1, math.ceil(total * percent / 100))


def _bounds(deployment: Deployment, percent: int) -> AutoscalingBounds | None:
    auto = deployment.spec.autoscaling
    if auto is None:
        return None
    cpu = auto.target_cpu_utilization_percentage
    rps = auto.target_requests_per_second
    if cpu is None and rps is None:
        cpu = DEFAULT_CPU_TARGET
    low = _share(auto.min_replicas, percent) if percent < 100 else auto.min_replicas
    high = _share(auto.max_replicas, percent) if percent < 100 else auto.max_replicas
    return AutoscalingBounds(min(low, high), high, cpu, rps)


def _replicas(deployment: Deployment, percent: int) -> int:
    fixed = deployment.spec.replicas
    total = 1 if fixed is None else fixed
    if percent >= 100 or total == 0:
        return total
    return _share(total, percent)


def full_size(deployment: Deployment) -> int:
    """Pods a variant at 100% runs at least: the autoscaler's minimum, or the fixed replicas."""
    auto = deployment.spec.autoscaling
    if auto is not None:
        return auto.min_replicas
    return _replicas(deployment, 100)


def _lookup(models: Mapping[str, Model], name: str, role: Role) -> ModelRef:
    model = models.get(name)
    if model is None:
        raise DependencyNotReady(f"Model {name!r} (the {role} variant) was not found", delay=10)
    return model_ref(model)


def _drain_variant(
    deployment: Deployment, models: Mapping[str, Model], live: Sequence[VariantPlan]
) -> VariantPlan | None:
    """The slot ``status.rollout.drainSlot`` keeps at weight 0, unless a live variant uses it."""
    status = deployment.status
    slot = status.rollout.drain_slot if status is not None and status.rollout else None
    if slot is None or any(v.role == slot.role for v in live):
        return None
    model = models.get(slot.model)
    if model is None:
        return None  # the Model is gone: nothing left to keep running
    return VariantPlan(
        role=slot.role,
        model=model_ref(model),
        weight=0,
        mirror_percent=0,
        replicas=_replicas(deployment, slot.percent),
        autoscaling=_bounds(deployment, slot.percent),
        draining=True,
    )


def desired(
    deployment: Deployment,
    models: Mapping[str, Model],
    *,
    drain_slots: bool = True,
    drift: DriftMonitorSpec | None = None,
) -> Topology:
    """The topology a Deployment should have now, given its rollout state in status.

    Args:
        deployment: the parsed Deployment (spec plus the rollout state in its status).
        models: the parsed Models it references, by name (stable, canary and shadow models).
        drain_slots: render the slot ``status.rollout.drainSlot`` keeps at weight 0 (the
            cluster, where variants are Deployments named by role). Local mode passes False: it
            keeps a drained Model's processes by model name (``rollout.traffic(state).draining``).
        drift: the DriftMonitor watching it, if any (the monitor sidecars' settings).

    Returns:
        The desired topology.

    Raises:
        DependencyNotReady: a Model a variant needs is missing from ``models``.
    """
    spec, status = deployment.spec, deployment.status
    stable_name = (status.stable_model if status is not None else None) or spec.model
    canary_name = status.canary_model if status is not None else None
    shadow_name = status.shadow_model if status is not None else None
    canary_weight = (status.canary_weight if status is not None else 0) if canary_name else 0
    record = status.rollout if status is not None else None
    promoting = record is not None and record.stage == "Promoting"
    canary_size = 100 if promoting else canary_weight

    variants = [
        VariantPlan(
            role="stable",
            model=_lookup(models, stable_name, "stable"),
            weight=100 - canary_weight,
            mirror_percent=0,
            replicas=_replicas(deployment, 100),
            autoscaling=_bounds(deployment, 100),
        )
    ]
    if canary_name:
        variants.append(
            VariantPlan(
                role="canary",
                model=_lookup(models, canary_name, "canary"),
                weight=canary_weight,
                mirror_percent=0,
                replicas=_replicas(deployment, canary_size),
                autoscaling=_bounds(deployment, canary_size),
            )
        )
    if shadow_name:
        mirror = spec.rollout.shadow.percent if spec.rollout.shadow is not None else 100
        variants.append(
            VariantPlan(
                role="shadow",
                model=_lookup(models, shadow_name, "shadow"),
                weight=0,
                mirror_percent=mirror,
                replicas=_replicas(deployment, mirror),
                autoscaling=_bounds(deployment, mirror),
            )
        )
    drain = _drain_variant(deployment, models, variants) if drain_slots else None
    if drain is not None:
        variants.append(drain)
        variants.sort(key=lambda v: ROLES.index(v.role))
    monitor = spec.monitor
    return Topology(
        name=deployment.metadata.name,
        namespace=deployment.metadata.namespace or "default",
        variants=tuple(variants),
        router_replicas=spec.router.replicas if spec.router is not None else 1,
        router_resources=spec.router.resources if spec.router is not None else None,
        sticky_header=spec.traffic.sticky_header if spec.traffic is not None else None,
        batching=spec.batching or Batching(),
        resources=spec.resources,
        monitor_enabled=monitor.enabled if monitor is not None else True,
        monitor_window=monitor.window if monitor is not None else 1000,
        pod=spec.pod or PodOverrides(),
        drift=drift,
    )


def referenced_models(deployment: Deployment) -> tuple[str, ...]:
    """Names of every Model the Deployment's spec and rollout state reference (no duplicates)."""
    status = deployment.status
    found = [deployment.spec.model]
    if status is not None:
        found += [m for m in (status.stable_model, status.canary_model, status.shadow_model) if m]
        if status.rollout is not None and status.rollout.drain_slot is not None:
            found.append(status.rollout.drain_slot.model)
    return tuple(dict.fromkeys(found))
