"""The DriftMonitor controller's I/O: find the monitored variant, read its fleet window, judge.

Owns: one evaluation of one DriftMonitor (``evaluate``): GET the Deployment it names, take the
Model its ``variant`` serves from the Deployment's status, read and judge the merged window of
that variant's monitor sidecars through the ``FleetReader`` seam (``analysis_http.HttpProvider
.fleet``: the merge the rollout's fleet drift gate uses, judged with the evaluated monitor's own
tests, thresholds, ``minSamples`` and correction), and map the verdict to the status
(``drift_status``, pure). The kopf timer that calls it, the Event and the metrics live in
``handlers``.

Failures never raise: a missing Deployment is ``DeploymentNotFound`` (Stalled), an invalid one
``DeploymentInvalid``, a variant that is not live ``VariantNotServing``, no profile for its Model
``NoProfile`` (Stalled), no sidecar answering ``NoMonitorData`` (Pending, tried again next tick).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol, runtime_checkable

import pydantic

from driftline.operator import analysis, drift_status, names, rollout
from driftline.operator.analysis_http import FleetDriftResult
from driftline.operator.api import Deployment, DriftMonitor
from driftline.operator.api.driftmonitor import DriftMonitorSpec, DriftMonitorStatus
from driftline.operator.errors import OperatorError
from driftline.operator.k8s import Reader
from driftline.operator.manifests import JsonObject

FleetReader = Callable[[analysis.Target, DriftMonitorSpec], Awaitable[FleetDriftResult | None]]
"""Reads a variant's merged window and judges it with the monitor's tests; None when its Model
has no usable profile."""


def variant_model(deployment: Deployment, variant: str) -> str | None:
    """The Model the Deployment's ``variant`` serves now (from its status), or None. Pure."""
    status = deployment.status
    if status is None:
        return None
    return {
        "stable": status.stable_model,
        "canary": status.canary_model,
        "shadow": status.shadow_model,
    }.get(variant)


async def evaluate(
    cluster: Reader, fleet: FleetReader, monitor: DriftMonitor, now: datetime
) -> tuple[DriftMonitorStatus, Deployment | None]:
    """One evaluation: the new status and the Deployment it was judged on (None if unusable)."""
    spec = monitor.spec
    namespace = monitor.metadata.namespace or "default"
    try:
        raw = await cluster.get(
            names.API_VERSION, names.DEPLOYMENT.kind, namespace, spec.deployment
        )
    except OperatorError as e:
        return drift_status.failed_status(monitor, "DeploymentUnreadable", str(e), now), None
    if raw is None:
        message = f"spec.deployment: no Deployment {spec.deployment!r} in {namespace}"
        return drift_status.failed_status(monitor, "DeploymentNotFound", message, now), None
    try:
        deployment = Deployment.from_manifest(raw)
    except pydantic.ValidationError as e:
        message = f"Deployment {spec.deployment!r} is invalid: {e.errors()[0].get('msg', '')}"
        return drift_status.failed_status(monitor, "DeploymentInvalid", message, now), None
    model = variant_model(deployment, spec.variant)
    if model is None:
        message = f"Deployment {spec.deployment!r} has no {spec.variant} variant serving now"
        return drift_status.failed_status(monitor, "VariantNotServing", message, now), deployment
    result = await fleet(analysis.Target(namespace, spec.deployment, spec.variant, model), spec)
    if result is None:
        message = f"Model {model!r} has no reference profile (spec.reference), nothing to judge"
        return drift_status.failed_status(monitor, "NoProfile", message, now), deployment
    if result.verdict is None:
        message = (
            f"no monitor sidecar of the {spec.variant} variant of {spec.deployment!r} gave its "
            f"window (skipped: {dict(sorted(result.skipped.items())) or 'none found'})"
        )
        return drift_status.failed_status(monitor, "NoMonitorData", message, now), deployment
    return drift_status.evaluated_status(monitor, result.verdict, model, now), deployment


@runtime_checkable
class Patcher(Protocol):
    """The one write the rollback action needs: a JSON merge patch (``KubeClient.merge_patch``)."""

    async def merge_patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: JsonObject
    ) -> JsonObject | None:
        """Merge-patch one object; its new state, or None when it is absent."""
        ...


def rollback_model(monitor: DriftMonitor, deployment: Deployment | None) -> str | None:
    """The Model under rollout that a breach of this monitor rolls back, or None. Pure.

    Only a monitor of the ``canary`` or ``shadow`` variant, while the Deployment's status says
    that variant serves a Model (a rollout in progress): a drifted stable has nothing to roll
    back to.
    """
    if deployment is None or monitor.spec.variant == "stable":
        return None
    return variant_model(deployment, monitor.spec.variant)


async def rollback(
    cluster: object,
    monitor: DriftMonitor,
    deployment: Deployment | None,
    now: datetime,
    entropy: str,
) -> str:
    """Fail the rollout of the drifted canary/shadow with the ``abort`` command. Never raises.

    The same patch ``kubectl driftline abort`` sends: an annotation a GitOps sync does not revert.

    Returns:
        What was done, for the status message and the Event.
    """
    model = rollback_model(monitor, deployment)
    if model is None or deployment is None:
        return f"no rollout of the {monitor.spec.variant} variant in progress, nothing rolled back"
    if not isinstance(cluster, Patcher):
        return "this cluster client cannot patch, nothing rolled back"
    command = rollout.Command("abort", rollout.new_command_id(now, entropy))
    namespace = deployment.metadata.namespace or "default"
    try:
        await cluster.merge_patch(
            names.API_VERSION,
            names.DEPLOYMENT.kind,
            namespace,
            deployment.metadata.name,
            rollout.command_patch(command),  # type: ignore[arg-type]
        )
    except OperatorError as e:
        return f"the abort of the rollout of {model} failed: {e}"
    return (
        f"aborted the rollout of {model} ({names.ANNOTATION_COMMAND}={command.annotation_value()})"
    )
