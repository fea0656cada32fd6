"""Every Kubernetes name, label, annotation and finalizer key Driftline uses, defined once.

Why one module: a key spelled in two places drifts apart (a label the renderer writes but the pruner
does not select is an orphaned child). Callers import the constant or call the function; they never
format a key themselves.
"""

from __future__ import annotations

import hashlib
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

# ------------------------------------------------------------------------------- child objects
# Children of a Driftline Deployment ``<dep>``: per variant ``<dep>-<variant>`` (apps/v1
# Deployment, Service, HPA, PDB), the router ``<dep>-router`` (Deployment, PDB, and the
# ServiceAccount, Role and RoleBinding that let it watch its table), the public Service ``<dep>``
# (the endpoint clients call) and the route table ConfigMap ``<dep>-routes``.
MAX_NAME: Final = 63
"""Service names are DNS-1035 labels (63 characters): every child name is kept within that."""

COMPONENT_SERVER: Final = "server"
COMPONENT_ROUTER: Final = "router"
PART_OF_VALUE: Final = "driftline"

ROUTE_TABLE_KEY: Final = "routes.json"
"""Key of the route table in its ConfigMap (JSON, which the router reads as YAML too)."""
MODEL_DIR: Final = "/models"
"""Where the fetch init container writes the verified model and the server reads it."""

PORT_HTTP: Final = 8080
"""Model server and router HTTP port (Open Inference Protocol v2)."""
PORT_MONITOR: Final = 9100
"""Monitor sidecar port (records in, verdicts and /metrics out)."""
PORT_NAME_HTTP: Final = "http"
PORT_NAME_MONITOR: Final = "monitor"

ANNOTATION_ROUTE_VERSION: Final = f"{GROUP}/route-table-version"
"""On the route-table ConfigMap: the table's content-derived version, for humans and alerts."""

# ------------------------------------------------------------------ reference profiles (Models)
# A Model's reference profile lives in the ConfigMap ``<model>-profile`` (owned by the Model, key
# ``profile.json``); every serving pod of that Model mounts it into its monitor sidecar.
COMPONENT_PROFILE: Final = "profile"
PROFILE_KEY: Final = "profile.json"
"""Key of the reference profile (``driftline profile`` JSON) in its ConfigMap."""
PROFILE_DIR: Final = "/etc/driftline/profile"
"""Where the monitor sidecar mounts its Model's profile ConfigMap."""
ANNOTATION_PROFILE_SHA256: Final = f"{GROUP}/profile-sha256"
"""On the profile ConfigMap: sha256 of the profile text; an equal digest means nothing to write."""
ANNOTATION_REFERENCE_SHA256: Final = f"{GROUP}/reference-sha256"
"""On the profile ConfigMap: the verified digest of the reference dataset it was built from."""
ANNOTATION_MODEL_SHA256: Final = f"{GROUP}/model-sha256"
"""On the profile ConfigMap: the verified digest of the Model's ONNX artifact (its version)."""


def _fit(name: str) -> str:
    """``name`` if it fits 63 characters, else a truncation ending in a stable 8-hex hash."""
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9].rstrip('-.')}-{digest}"


def variant_name(deployment: str, variant: str) -> str:
    """Name of a variant's workload, Service, HPA and PDB: ``<dep>-<variant>``."""
    return _fit(f"{deployment}-{variant}")


def router_name(deployment: str) -> str:
    """Name of the router's workload and PDB: ``<dep>-router``."""
    return _fit(f"{deployment}-router")


def router_account_name(deployment: str) -> str:
    """Name of the router's ServiceAccount, Role and RoleBinding: ``<dep>-router``.

    The router reads its route table through the API with this identity; the Role grants
    get/list/watch on that one ConfigMap only.
    """
    return router_name(deployment)


def public_service_name(deployment: str) -> str:
    """Name of the Service clients call: the Deployment's own name."""
    return _fit(deployment)


def route_table_name(deployment: str) -> str:
    """Name of the route-table ConfigMap: ``<dep>-routes``."""
    return _fit(f"{deployment}-routes")


def profile_config_map_name(model: str) -> str:
    """Name of a Model's reference-profile ConfigMap: ``<model>-profile``."""
    return _fit(f"{model}-profile")


def profile_labels(model: str) -> dict[str, str]:
    """Labels of a Model's profile ConfigMap (never the Deployment's: no Deployment prunes it)."""
    return {
        LABEL_MANAGED_BY: MANAGED_BY_VALUE,
        LABEL_PART_OF: PART_OF_VALUE,
        LABEL_COMPONENT: COMPONENT_PROFILE,
        LABEL_MODEL: model,
    }


def service_host(service: str, namespace: str) -> str:
    """In-cluster DNS name of a Service."""
    return f"{service}.{namespace}.svc"


def child_labels(deployment: str) -> dict[str, str]:
    """Labels on every child of a Deployment: what the pruner selects by."""
    return {
        LABEL_MANAGED_BY: MANAGED_BY_VALUE,
        LABEL_PART_OF: PART_OF_VALUE,
        LABEL_DEPLOYMENT: deployment,
    }


def variant_selector(deployment: str, variant: str) -> dict[str, str]:
    """Pod selector of one variant (immutable in apps/v1: never includes the model)."""
    return {LABEL_DEPLOYMENT: deployment, LABEL_COMPONENT: COMPONENT_SERVER, LABEL_VARIANT: variant}


def router_selector(deployment: str) -> dict[str, str]:
    """Pod selector of the router."""
    return {LABEL_DEPLOYMENT: deployment, LABEL_COMPONENT: COMPONENT_ROUTER}
