"""Status of Models and Deployments as pure functions of what the handler observed.

Owns: the Model status after verification (Ready or Failed with the reason), what the cluster
adds to a Deployment's status after a reconcile (variants with ready pods, endpoint,
``WaitingForPods``), and the merge patch that turns the stored status into the new one (explicit
``null`` for fields that went away). The rollout fields, phase and history are the rollout state
machine's (``driftline.operator.rollout`` / ``rollout_status``).

Pure: ``now`` is a parameter; no kopf, no client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from driftline.operator import conditions, names
from driftline.operator.api import Deployment, Model
from driftline.operator.api.deployment import DeploymentStatus, VariantStatus
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


@dataclass(frozen=True)
class ProfileInfo:
    """Where a Model's reference profile was stored (``driftline.operator.profiles``)."""

    config_map: str
    size_bytes: int
    rows: int
    grid_points: int
    prediction: str | None = None


def model_ready(
    model: Model, info: ArtifactInfo, now: datetime, profile: ProfileInfo | None = None
) -> ModelStatus:
    """The status of a Model whose artifact was verified and read (and profile stored)."""
    old = model.status or ModelStatus()
    message = (
        f"verified {info.size_bytes} bytes, opset {info.opset}, "
        f"{len(info.signature.inputs)} input(s), {len(info.signature.outputs)} output(s)"
    )
    if profile is not None:
        message += (
            f"; reference profile of {profile.rows} rows ({profile.size_bytes} bytes, "
            f"{profile.grid_points} points) in ConfigMap {profile.config_map}"
        )
        if profile.prediction is not None:
            message += f"; prediction reference: {profile.prediction}"
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
            "profile_config_map": profile.config_map if profile is not None else None,
            "profile_size_bytes": profile.size_bytes if profile is not None else None,
            "prediction_reference": profile.prediction if profile is not None else None,
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


def _count(fields: Mapping[str, object], key: str) -> int:
    value = fields.get(key, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def rolled_out_model(child: Mapping[str, object] | None, min_ready: int = 0) -> str | None:
    """The Model an apps/v1 child Deployment is fully rolled out and ready on, else None.

    The readiness fact ``rollout.step(rolled_out=...)`` needs while ``Promoting``: the
    Deployment controller has seen the latest spec (``status.observedGeneration >=
    metadata.generation``), every pod runs the current template and is ready (``updatedReplicas
    == replicas == readyReplicas == spec.replicas``: no old pod left), and that template runs the
    Model its ``driftline.dev/model`` pod label names. Anything missing or malformed reads as
    "not rolled out" (the promotion waits; ``progressDeadline`` bounds the wait).

    Args:
        child: the child Deployment as read from the API (None when it does not exist).
        min_ready: ready pods it must also have at least: the size the plan gave it, since an
            autoscaler raises ``spec.replicas`` to a new minimum only after the apply (until
            then the Deployment looks rolled out at its old size).

    Returns:
        The Model name, or None while it rolls (or cannot be told).
    """
    if child is None:
        return None
    meta, spec, st = child.get("metadata"), child.get("spec"), child.get("status")
    if not (isinstance(meta, Mapping) and isinstance(spec, Mapping) and isinstance(st, Mapping)):
        return None
    generation, observed = _count(meta, "generation"), _count(st, "observedGeneration")
    if generation < 0 or observed < generation:
        return None
    want = _count(spec, "replicas") if "replicas" in spec else 1
    counts = {_count(st, k) for k in ("replicas", "updatedReplicas", "readyReplicas")}
    if want < 0 or counts != {want} or want < min_ready:
        return None
    template = spec.get("template")
    tmeta = template.get("metadata") if isinstance(template, Mapping) else None
    labels = tmeta.get("labels") if isinstance(tmeta, Mapping) else None
    model = labels.get(names.LABEL_MODEL) if isinstance(labels, Mapping) else None
    return model if isinstance(model, str) and model else None


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
    now: datetime,
) -> DeploymentStatus:
    """The Deployment's status after its children were applied.

    The rollout fields, phase and conditions come from the rollout state machine
    (``rollout_status.write_status``, in ``base``); this adds what only the cluster knows: pods.
    While a variant or the router lacks ready pods, the object is ``Reconciling`` with reason
    ``WaitingForPods`` (a Healthy phase becomes Progressing; Paused and Degraded are kept).

    Args:
        deployment: the parsed Deployment.
        base: the status the rollout state machine wrote.
        topology: what was applied.
        ready: ready pods per variant role and ``router`` (from the child Deployments' status).
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
    host = names.service_host(names.public_service_name(topology.name), topology.namespace)
    update: dict[str, Any] = {
        "observed_generation": deployment.metadata.generation,
        "variants": variants,
        "endpoint": f"http://{host}:{names.PORT_HTTP}/v2/models/{topology.variants[0].model.family}",
    }
    if short:
        message = "waiting for ready pods: " + ", ".join(short)
        update["conditions"] = conditions.derive_conditions(
            base.conditions,
            ReadinessState.PROGRESSING,
            reason="WaitingForPods",
            message=message,
            generation=deployment.metadata.generation,
            now=now,
        )
        if base.phase in (None, "Healthy"):
            update["phase"] = "Progressing"
            update["message"] = message
    return base.model_copy(update=update)


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
