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

import pydantic

from driftline.operator import analysis, drift_status, names
from driftline.operator.analysis_http import FleetDriftResult
from driftline.operator.api import Deployment, DriftMonitor
from driftline.operator.api.driftmonitor import DriftMonitorSpec, DriftMonitorStatus
from driftline.operator.errors import OperatorError
from driftline.operator.k8s import Reader

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
