"""The Driftline API (``driftline.dev/v1alpha1``): the four kinds as frozen pydantic models.

These models are the one source of truth: the CRDs in ``crds/`` are generated from them
(``driftline.operator.api.crdgen``), their field docstrings become ``kubectl explain`` text, and
their CEL rules travel into ``x-kubernetes-validations``. Parse at the edge::

    dep = Deployment.from_manifest(raw)          # whole object
    spec = DeploymentSpec.model_validate(raw_spec)

This ``__init__`` re-exports the public names so callers write ``from driftline.operator.api
import Deployment``; the implementation lives in one module per kind. Pure: pydantic only.
"""

from __future__ import annotations

from driftline.operator.api.deployment import Deployment, DeploymentSpec, DeploymentStatus
from driftline.operator.api.driftmonitor import (
    DriftMonitor,
    DriftMonitorSpec,
    DriftMonitorStatus,
)
from driftline.operator.api.meta import (
    Condition,
    ConditionStatus,
    ConditionType,
    Duration,
    parse_duration,
)
from driftline.operator.api.model import Model, ModelSpec, ModelStatus
from driftline.operator.api.resource import Resource
from driftline.operator.api.retrainpolicy import (
    RetrainPolicy,
    RetrainPolicySpec,
    RetrainPolicyStatus,
)

__all__ = [
    "KINDS",
    "Condition",
    "ConditionStatus",
    "ConditionType",
    "Deployment",
    "DeploymentSpec",
    "DeploymentStatus",
    "DriftMonitor",
    "DriftMonitorSpec",
    "DriftMonitorStatus",
    "Duration",
    "Model",
    "ModelSpec",
    "ModelStatus",
    "Resource",
    "RetrainPolicy",
    "RetrainPolicySpec",
    "RetrainPolicyStatus",
    "kind_class",
    "parse_duration",
]

KINDS: tuple[type[Model], type[Deployment], type[DriftMonitor], type[RetrainPolicy]] = (
    Model,
    Deployment,
    DriftMonitor,
    RetrainPolicy,
)
"""The four kinds, in the order they are documented and generated."""


def kind_class(
    kind: str,
) -> type[Model] | type[Deployment] | type[DriftMonitor] | type[RetrainPolicy] | None:
    """The model class for a manifest's ``kind``, or None when it is not a Driftline kind."""
    return next((k for k in KINDS if k.kind_names.kind == kind), None)
