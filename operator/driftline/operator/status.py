"""Status of Models and Deployments as pure functions of what the handler observed.

Owns: the Model status after verification (Ready or Failed with the reason), the Deployment status
after a reconcile (variants, weights, endpoint, phase, the kstatus trio, history), the adoption of
``spec.model`` when no rollout is needed (first deploy, ``strategy: direct``), and the merge patch
that turns the stored status into the new one (explicit ``null`` for fields that went away).

Pure: ``now`` is a parameter; no kopf, no client. The canary/shadow state machine is
``driftline.operator.rollout``'s; until it drives a Deployment, a ``canary`` model change is
reported as ``RolloutPending`` and the stable variant keeps serving (never skipping the canary).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from driftline.operator import conditions, names
from driftline.operator.api import Deployment, Model
from driftline.operator.api.deployment import (
    MAX_HISTORY,
    DeploymentPhase,
    DeploymentStatus,
    HistoryEntry,
    VariantStatus,
)
from driftline.operator.api.model import ModelSignature, ModelStatus
from driftline.operator.conditions import ReadinessState
from driftline.operator.errors import OperatorError
from driftline.operator.manifests import JsonObject, JsonValue, merge_patch, removals
from driftline.operator.plan import Topology


@dataclass(frozen=True)
class ArtifactInfo:
    """What verifying and reading an artifact found (``driftline.operator.artifacts``)."""

    sha256: str
    size_bytes: int
    opset: int
    signature: ModelSignature


def is_model_ready(model: Model | None) -> bool:
    """Whether a Model was verified for its current spec (a Deployment may roll onto it)."""
    if model is None or model.status is None:
        return False
    s = model.status
    return (
        s.phase == "Ready"
        and s.verified_sha256 == model.spec.source.sha256
        and s.observed_generation == model.metadata.generation
    )


def model_ready(model: Model, info: ArtifactInfo, now: datetime) -> ModelStatus:
    """The status of a Model whose artifact was verified and read."""
    old = model.status or ModelStatus()
    message = (
        f"verified {info.size_bytes} bytes, opset {info.opset}, "
        f"{len(info.signature.inputs)} input(s), {len(info.signature.outputs)} output(s)"
    )
    return old.model_copy(
        update={
            "observed_generation": model.metadata.generation,
            "conditions": conditions.derive_conditions(
                old.conditions,
                ReadinessState.CURRENT,
                reason="Verified",
                message=message,
                generation=model.metadata.generation,
                now=now,
            ),
            "message": message,
            "phase": "Ready",
            "signature": info.signature,
            "opset": info.opset,
            "size_bytes": info.size_bytes,
            "verified_sha256": info.sha256,
        }
    )


def model_failed(
    model: Model | None, generation: int | None, error: OperatorError, now: datetime
) -> ModelStatus:
    """The status of a Model that cannot become Ready without a change (Stalled, Failed)."""
    old = model.status if model is not None and model.status is not None else ModelStatus()
    return old.model_copy(
        update={
            "observed_generation": generation,
            "conditions": conditions.derive_conditions(
                old.conditions,
                ReadinessState.STALLED,
                reason=error.reason,
                message=error.message,
                generation=generation,
                now=now,
            ),
            "message": error.message,
            "phase": "Failed",
            "verified_sha256": None,
        }
    )


def model_pending(model: Model, error: OperatorError, now: datetime) -> ModelStatus:
    """The status of a Model waiting for something temporary (e.g. its artifact to appear)."""
    old = model.status or ModelStatus()
    return old.model_copy(
        update={
            "observed_generation": model.metadata.generation,
            "conditions": conditions.derive_conditions(
                old.conditions,
                ReadinessState.PROGRESSING,
                reason=error.reason,
                message=error.message,
                generation=model.metadata.generation,
                now=now,
            ),
            "message": error.message,
            "phase": "Pending",
        }
    )


@dataclass(frozen=True)
class Adoption:
    """Which model the stable variant serves after this reconcile, and why."""

    status: DeploymentStatus
    """The status with the (possibly new) ``stableModel`` and history."""
    pending: str | None
    """Why ``spec.model`` is not (yet) serving, or ``None`` when it is, or is being rolled out."""
    decided: HistoryEntry | None
    """The decision taken now, if any (also posted as an Event)."""


def _history(status: DeploymentStatus, entry: HistoryEntry) -> list[HistoryEntry]:
    return [*status.history, entry][-MAX_HISTORY:]


def adopt(deployment: Deployment, models: Mapping[str, Model], now: datetime) -> Adoption:
    """Put ``spec.model`` on the stable variant when no rollout is needed.

    First deploy (nothing serving yet) and ``strategy: direct`` replace the stable model as soon as
    the new Model is Ready. A ``canary`` change is left to the rollout state machine: the stable
    variant keeps serving and the reason says so. An unready target Model is never adopted.
    """
    spec = deployment.spec
    status = deployment.status or DeploymentStatus()
    target = models.get(spec.model)
    in_rollout = bool(status.canary_model or status.shadow_model)
    if status.stable_model == spec.model or in_rollout:
        return Adoption(status, None, None)
    if not is_model_ready(target):
        phase = target.status.phase if target is not None and target.status is not None else None
        why = "was not found" if target is None else f"is not Ready (phase {phase or 'Pending'})"
        return Adoption(status, f"Model {spec.model!r} {why}", None)
    first = status.stable_model is None
    if not first and spec.rollout.strategy == "canary":
        return Adoption(
            status,
            f"a canary rollout from {status.stable_model!r} to {spec.model!r} is pending: "
            "the rollout state machine drives it",
            None,
        )
    entry = HistoryEntry(
        time=now,
        model=spec.model,
        action="Promoted",
        reason="InitialDeploy" if first else "DirectRollout",
        message=f"{spec.model} serves 100% of traffic"
        + ("" if first else f" (replaced {status.stable_model})"),
    )
    new = status.model_copy(update={"stable_model": spec.model, "history": _history(status, entry)})
    return Adoption(new, None, entry)


def _desired_replicas(topology: Topology, role: str) -> int:
    variant = topology.variant(role)  # type: ignore[arg-type]
    if variant is None:
        return 0
    return variant.autoscaling.min_replicas if variant.autoscaling else variant.replicas


def deployment_status(
    deployment: Deployment,
    base: DeploymentStatus,
    topology: Topology,
    ready: Mapping[str, int],
    pending: str | None,
    now: datetime,
) -> DeploymentStatus:
    """The Deployment's status after its children were applied.

    Args:
        deployment: the parsed Deployment.
        base: the status after adoption (rollout fields decided).
        topology: what was applied.
        ready: ready pods per variant role and ``router`` (from the child Deployments' status).
        pending: why ``spec.model`` is not serving yet, if it is not.
        now: the current time.
    """
    variants = [
        VariantStatus(
            name=v.role,
            model=v.model.name,
            weight=v.weight,
            replicas=_desired_replicas(topology, v.role),
            ready_replicas=ready.get(v.role, 0),
        )
        for v in topology.variants
    ]
    short = [
        f"{v.name} {v.ready_replicas}/{v.replicas}"
        for v in variants
        if v.ready_replicas < v.replicas
    ]
    router_want = topology.router_replicas
    if ready.get(names.COMPONENT_ROUTER, 0) < router_want:
        short.append(f"router {ready.get(names.COMPONENT_ROUTER, 0)}/{router_want}")
    in_rollout = bool(base.canary_model or base.shadow_model)
    phase: DeploymentPhase
    if pending is not None:
        state, reason, message, phase = (
            ReadinessState.PROGRESSING,
            "RolloutPending",
            pending,
            "Progressing",
        )
    elif short:
        state, reason, phase = ReadinessState.PROGRESSING, "WaitingForPods", "Progressing"
        message = "waiting for ready pods: " + ", ".join(short)
    elif in_rollout:
        state, reason, phase = ReadinessState.PROGRESSING, "RolloutInProgress", "Progressing"
        message = f"canary {base.canary_model or base.shadow_model} at {base.canary_weight}%"
    else:
        state, reason, phase = ReadinessState.CURRENT, "Succeeded", "Healthy"
        message = f"{base.stable_model} serves 100% of traffic"
    if base.phase in ("Paused", "Degraded") and in_rollout:
        phase = base.phase  # the rollout state machine owns these
    host = names.service_host(names.public_service_name(topology.name), topology.namespace)
    return base.model_copy(
        update={
            "observed_generation": deployment.metadata.generation,
            "conditions": conditions.derive_conditions(
                base.conditions,
                state,
                reason=reason,
                message=message,
                generation=deployment.metadata.generation,
                now=now,
            ),
            "message": message,
            "phase": phase,
            "variants": variants,
            "canary_weight": next((v.weight for v in variants if v.name == "canary"), 0),
            "endpoint": f"http://{host}:{names.PORT_HTTP}/v2/models/{topology.variants[0].model.family}",
        }
    )


def deployment_waiting(deployment: Deployment, pending: str, now: datetime) -> DeploymentStatus:
    """The status of a Deployment with nothing to serve yet (its Model is missing or not Ready)."""
    base = deployment.status or DeploymentStatus()
    return base.model_copy(
        update={
            "observed_generation": deployment.metadata.generation,
            "conditions": conditions.derive_conditions(
                base.conditions,
                ReadinessState.PROGRESSING,
                reason="WaitingForModel",
                message=pending,
                generation=deployment.metadata.generation,
                now=now,
            ),
            "message": pending,
            "phase": "Progressing",
        }
    )


def deployment_failed(
    deployment_body: Mapping[str, Any],
    old: DeploymentStatus | None,
    error: OperatorError,
    now: datetime,
) -> DeploymentStatus:
    """The status of a Deployment that cannot progress without a change (e.g. an invalid spec)."""
    base = old or DeploymentStatus()
    meta = deployment_body.get("metadata")
    generation = meta.get("generation") if isinstance(meta, Mapping) else None
    gen = generation if isinstance(generation, int) else None
    return base.model_copy(
        update={
            "observed_generation": gen,
            "conditions": conditions.derive_conditions(
                base.conditions,
                ReadinessState.STALLED,
                reason=error.reason,
                message=error.message,
                generation=gen,
                now=now,
            ),
            "message": error.message,
            "phase": "Degraded",
        }
    )


def status_patch(old: JsonValue, new: JsonObject) -> JsonObject:
    """The merge patch turning the stored ``old`` status into ``new`` (``null`` for removed keys).

    Lists (conditions, variants, history) are replaced whole, as merge patches do.
    """
    patch = merge_patch(removals(old, new), new)
    assert isinstance(patch, dict)
    return patch
