"""Every Kubernetes name, label, annotation and finalizer key Driftline uses, defined once.

Why one module: a key spelled in two places drifts apart (a label the renderer writes but the pruner
does not select is an orphaned child). Callers import the constant or call the function; they never
format a key themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

GROUP: Final = "driftline.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
CATEGORY: Final = "driftline"


@dataclass(frozen=True)
class KindNames:
    """The names under which one custom resource kind is served.

    Attributes:
        kind: the CamelCase kind, as in manifests.
        plural: the URL path segment and the first half of the CRD name.
        singular: lower-case singular, as ``kubectl get <singular>`` accepts.
        short_names: ``kubectl`` abbreviations; never a bare ``deploy`` (the built-in owns it).
    """

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]

    @property
    def crd_name(self) -> str:
        """``<plural>.<group>``: the CustomResourceDefinition's metadata.name."""
        return f"{self.plural}.{GROUP}"

    @property
    def resource(self) -> str:
        """``<group>/<version>/<plural>``: the form kopf and the API emulator take."""
        return f"{GROUP}/{VERSION}/{self.plural}"


MODEL: Final = KindNames("Model", "models", "model", ("dlmodel",))
DEPLOYMENT: Final = KindNames("Deployment", "deployments", "deployment", ("dldeploy", "mldeploy"))
DRIFT_MONITOR: Final = KindNames("DriftMonitor", "driftmonitors", "driftmonitor", ("dlmon",))
RETRAIN_POLICY: Final = KindNames(
    "RetrainPolicy", "retrainpolicies", "retrainpolicy", ("dlretrain",)
)

KINDS: Final[tuple[KindNames, ...]] = (MODEL, DEPLOYMENT, DRIFT_MONITOR, RETRAIN_POLICY)
"""All four kinds, in the order they are documented and generated."""

# Labels put on every child object, so that the pruner selects exactly what the renderer wrote.
LABEL_PREFIX: Final = GROUP
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "driftline"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_DEPLOYMENT: Final = f"{GROUP}/deployment"
LABEL_VARIANT: Final = f"{GROUP}/variant"
LABEL_MODEL: Final = f"{GROUP}/model"

# kopf's own bookkeeping goes under our prefix, not kopf.zalando.org.
FINALIZER: Final = f"{GROUP}/finalizer"
ANNOTATIONS_PREFIX: Final = GROUP

ANNOTATION_LAST_APPLIED: Final = f"{GROUP}/last-applied"
"""What Driftline applied last to a child (canonical JSON): the base of three-way patches, so a
field we stop rendering is removed while fields written by others (an HPA's replicas) stay."""

PEERING_NAME: Final = "driftline"
"""The kopf peering object replicas of the operator coordinate through (one active at a time)."""

FIELD_MANAGER: Final = "driftline-operator"
"""The field manager / component name the operator writes under (Events' ``source.component``)."""

ANNOTATION_COMMAND: Final = f"{GROUP}/command"
"""The rollout command annotation on a Deployment: ``<verb>:<id>`` (``promote:1763776800-a1b2``).

``kubectl driftline promote|abort|retry|pause|resume`` sets it with a merge patch; GitOps tools do
not revert it (it is not in git), and the operator applies each id once
(``driftline.operator.rollout.parse_command``)."""
