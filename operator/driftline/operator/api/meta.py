"""Pieces every Driftline kind shares: the model base, conditions, durations, quantities, metadata.

Owns the wire conventions of the API, so that the four kinds spell them the same way:

- ``ApiModel``: the pydantic base (camelCase on the wire, snake_case in Python, frozen, unknown
  fields rejected, attribute docstrings become schema descriptions).
- ``Condition``: the ``metav1.Condition`` shape that kstatus, Flux, Helm and ``kubectl wait`` read.
- ``Duration``: Go-style duration strings (``"30s"``, ``"5m"``, ``"1h30m"``, ``"250ms"``), the
  format Kubernetes users already write for probes and Argo Rollouts pauses; ``parse_duration``
  turns one into seconds.
- ``Quantity``: Kubernetes resource quantities (``"500m"``, ``"2Gi"``, ``1``).
- ``ObjectMeta`` and ``Manifest``: the metadata fields Driftline reads, and raw manifests as
  ``TypedDict`` for the edge.

Pure: imports pydantic and the standard library only (import-linter enforces it). Called by the
kind modules, the CRD generator, the validator and, later, the handlers and local mode.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from pathlib import PurePath
from typing import Annotated, Any, Final, Literal, NotRequired, TypedDict

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.alias_generators import to_camel

from driftline.operator import names

__all__ = [
    "API_VERSION",
    "DURATION_PATTERN",
    "QUANTITY_PATTERN",
    "ApiModel",
    "ArtifactRef",
    "Condition",
    "ConditionStatus",
    "ConditionType",
    "Duration",
    "EnvVar",
    "KubernetesName",
    "Manifest",
    "ObjectMeta",
    "Quantity",
    "RawObjectMeta",
    "ResourceRequirements",
    "SecretKeySelector",
    "Sha256",
    "StatusBase",
    "Toleration",
    "ValidationRule",
    "cel_rules",
    "parse_duration",
]

API_VERSION: Final = names.API_VERSION


class ApiModel(BaseModel):
    """Base of every spec and status model.

    camelCase aliases on the wire (``minReplicas``), snake_case attributes in Python
    (``min_replicas``); either name is accepted when parsing (``populate_by_name``). Models are
    frozen (parsed at the edge, never mutated inside), unknown fields are rejected (a typo in a
    manifest is an error, not a silently ignored setting), and the docstring under each field
    becomes its
    ``description`` in the CRD, so ``kubectl explain`` documents the API.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready wire form: camelCase keys, unset optional fields left out.

        Returns:
            A plain dict that round-trips through ``model_validate`` to an equal model.
        """
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# ------------------------------------------------------------------------------------ scalar types

DURATION_PATTERN: Final = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
"""Go-style duration: one or more ``<number><unit>`` with unit ``ms``, ``s``, ``m`` or ``h``."""

_DURATION_PART: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str) -> float:
    """Convert a Go-style duration string to seconds.

    Args:
        value: e.g. ``"30s"``, ``"5m"``, ``"1h30m"``, ``"250ms"``, ``"1.5h"``; ``"0s"`` is zero.

    Returns:
        The duration in seconds.

    Raises:
        ValueError: when ``value`` is not a duration in this format (the message names the format).
    """
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(
            f"invalid duration {value!r}: expected a Go-style duration such as '30s', '5m', "
            "'1h30m' or '250ms' (units ms, s, m, h)"
        )
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(value))


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


Duration = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(_check_duration),
    # The validator above enforces the pattern with a message that explains the format; the
    # schema carries the same pattern for the API server.
    Field(json_schema_extra={"pattern": DURATION_PATTERN}),
]
"""A Go-style duration string (``"30s"``, ``"5m"``, ``"1h30m"``, ``"250ms"``).

Kept as the string on the wire and in Python so a manifest round-trips unchanged; call
``parse_duration`` for seconds.
"""

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$", min_length=64, max_length=64)]
"""A SHA-256 digest: exactly 64 lower-case hex characters (``sha256sum`` output, no prefix)."""

KubernetesName = Annotated[
    str,
    StringConstraints(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        min_length=1,
        max_length=253,
    ),
]
"""The name of a Kubernetes object (RFC 1123 subdomain: lower case, digits, ``-`` and ``.``)."""

QUANTITY_PATTERN: Final = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
"""A decimal number with an optional SI or binary suffix (the common subset of Kubernetes'
quantity grammar)."""

Quantity = int | Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN)]
"""A Kubernetes resource quantity: an integer, or a string such as ``"500m"`` or ``"2Gi"``."""


# -------------------------------------------------------------------------------------- conditions


class ConditionStatus(StrEnum):
    """The three values of ``metav1.Condition.status``."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionType(StrEnum):
    """The condition types every Driftline kind carries (kstatus reads them without configuration).

    ``Ready`` has positive polarity (True is good); ``Reconciling`` and ``Stalled`` are
    abnormal-true: True means "working on it" and "stuck, needs a human" respectively.
    """

    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


class Condition(ApiModel):
    """One observation about the object, in the ``metav1.Condition`` shape.

    At most one condition per ``type`` (the list is a map keyed by ``type``).
    """

    type: Annotated[
        str,
        StringConstraints(
            pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
            r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
            max_length=316,
        ),
    ]
    """Condition type in CamelCase: ``Ready``, ``Reconciling`` or ``Stalled`` (kstatus), or a
    kind-specific one such as ``ArtifactVerified``."""

    status: ConditionStatus
    """``True``, ``False`` or ``Unknown``."""

    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The ``metadata.generation`` this condition was computed from; a condition older than the
    spec is stale."""

    last_transition_time: datetime
    """When ``status`` last changed (RFC 3339, UTC). It does not move when only the reason or
    message changes."""

    reason: Annotated[
        str,
        StringConstraints(
            pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", min_length=1, max_length=1024
        ),
    ]
    """A CamelCase, machine-readable cause, e.g. ``RolloutInProgress``, ``AnalysisFailed``."""

    message: Annotated[str, Field(max_length=32768)] = ""
    """A human-readable explanation, possibly empty."""


CONDITIONS_LIST_MARKERS: Final[dict[str, Any]] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}
"""Schema markers for a conditions list: a map keyed by ``type`` (at most one per type), so
server-side apply merges conditions per type."""


class StatusBase(ApiModel):
    """What every Driftline status carries, so GitOps tools read it without configuration.

    kstatus (Flux, Helm ``--wait``) compares ``observedGeneration`` with ``metadata.generation``,
    then reads ``Reconciling``, ``Stalled`` and ``Ready``; ``phase`` and ``message`` (defined per
    kind) are for humans and Argo CD.
    """

    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The ``metadata.generation`` the operator last acted on; an integer (kstatus rejects a
    string). Unset until the first reconcile, so an unobserved spec never looks current."""

    conditions: Annotated[
        list[Condition], Field(max_length=32, json_schema_extra=CONDITIONS_LIST_MARKERS)
    ] = Field(default_factory=list)
    """``Ready`` (True when the object does what its spec asks), ``Reconciling`` (True while work is
    under way) and ``Stalled`` (True when it cannot make progress without a change), plus
    kind-specific conditions; at most one per type."""

    message: Annotated[str, Field(max_length=32768)] | None = None
    """One line for humans: what is happening and why (shown by ``kubectl get``)."""

    def condition(self, type_: str) -> Condition | None:
        """The condition of the given type, or None when absent."""
        return next((c for c in self.conditions if c.type == type_), None)


class ValidationRule(TypedDict):
    """One CEL rule as the API server takes it in ``x-kubernetes-validations``."""

    rule: str
    message: NotRequired[str]
    messageExpression: NotRequired[str]
    fieldPath: NotRequired[str]
    reason: NotRequired[str]


def cel_rules(*rules: ValidationRule) -> dict[str, Any]:
    """Schema extra that attaches CEL rules to a model (``json_schema_extra=cel_rules(...)``).

    The rules travel with the model into the generated CRD, so the pydantic model stays the one
    source of truth; each model also enforces the same rule in Python (tests check they agree).

    Args:
        rules: the rules, each with a ``rule`` and a ``message`` or ``messageExpression``.

    Returns:
        The dict to pass as ``json_schema_extra`` (a new list per call).
    """
    return {"x-kubernetes-validations": [dict(r) for r in rules]}


# ----------------------------------------------------------------------------- shared sub-objects


class ArtifactRef(ApiModel):
    """Where a file lives and the digest it must have.

    The digest makes the reference immutable: the fetcher refuses bytes whose SHA-256 differs.
    """

    uri: Annotated[
        str, StringConstraints(min_length=1, max_length=2048, pattern=r"^(file|s3|gs|https?)://.+$")
    ]
    """Location of the file: ``file://``, ``s3://``, ``gs://``, ``http://`` or ``https://``.
    A ``file://`` URI whose path does not start with ``/`` (``file://artifacts/model.onnx``) is
    relative: local mode resolves it against the folder of the manifest that names it."""

    sha256: Sha256
    """SHA-256 of the file's bytes, 64 lower-case hex characters; a mismatch rejects the file."""

    def local_path(self, base: PurePath) -> PurePath | None:
        """The file a ``file://`` URI names, or None for remote schemes.

        ``file:///abs/x.onnx`` is absolute; ``file://artifacts/x.onnx`` and
        ``file://../artifacts/x.onnx`` are relative to ``base`` (local mode passes the folder of
        the manifest). Pure path arithmetic: nothing is read.

        Args:
            base: folder that relative paths are resolved against.

        Returns:
            The path, or None when the URI is not ``file://``.
        """
        if not self.uri.startswith("file://"):
            return None
        rest = self.uri.removeprefix("file://")
        path = PurePath(rest)
        return path if path.is_absolute() else base / path


class SecretKeySelector(ApiModel):
    """One key of a Secret in the object's namespace."""

    name: KubernetesName
    """Name of the Secret."""

    key: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    """Key within the Secret's data."""


class EnvVarSource(ApiModel):
    """Where an environment variable's value comes from when it is not written inline."""

    secret_key_ref: SecretKeySelector
    """Read the value from a Secret key (credentials never belong in a manifest)."""


class EnvVar(ApiModel):
    """One environment variable of a container."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            {
                "rule": "!(has(self.value) && has(self.valueFrom))",
                "message": "value and valueFrom are mutually exclusive",
                "fieldPath": ".valueFrom",
            }
        )
    )

    name: Annotated[str, StringConstraints(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", max_length=256)]
    """Variable name (C identifier-like, as Kubernetes accepts)."""

    value: str | None = None
    """Literal value; leave unset when ``valueFrom`` is used."""

    value_from: EnvVarSource | None = None
    """Read the value from a Secret instead of writing it inline."""

    @model_validator(mode="after")
    def _one_source(self) -> EnvVar:
        if self.value is not None and self.value_from is not None:
            raise ValueError(f"env {self.name}: value and valueFrom are mutually exclusive")
        return self


class ResourceRequirements(ApiModel):
    """Compute resources of one container, as in a Pod spec."""

    requests: dict[str, Quantity] | None = None
    """Minimum resources the scheduler reserves, e.g. ``{cpu: 500m, memory: 512Mi}``. Default: none
    (best effort); set it so autoscaling on CPU utilisation has a denominator."""

    limits: dict[str, Quantity] | None = None
    """Maximum resources the container may use, e.g. ``{memory: 1Gi}``. Default: none."""


class Toleration(ApiModel):
    """A Pod toleration, as in a Pod spec: lets pods schedule onto matching tainted nodes."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            {
                "rule": "self.operator != 'Exists' || !has(self.value)",
                "message": "value must be empty when operator is Exists",
                "fieldPath": ".value",
            }
        )
    )

    key: str | None = None
    """Taint key to tolerate; empty with ``operator: Exists`` tolerates every taint."""

    operator: Literal["Exists", "Equal"] = "Equal"
    """``Equal`` matches ``key`` and ``value``; ``Exists`` matches any value of ``key``."""

    value: str | None = None
    """Taint value to match with ``operator: Equal``."""

    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to tolerate; unset tolerates every effect."""

    toleration_seconds: Annotated[int, Field(ge=0)] | None = None
    """For ``NoExecute``: seconds a pod stays bound after the taint appears; unset is forever."""

    @model_validator(mode="after")
    def _exists_has_no_value(self) -> Toleration:
        if self.operator == "Exists" and self.value is not None:
            raise ValueError("value must be empty when operator is Exists")
        return self


# ---------------------------------------------------------------------------------------- metadata


class ObjectMeta(BaseModel):
    """The ``metadata`` fields Driftline reads.

    Unlike specs, unknown metadata fields are ignored: the API server owns metadata and adds fields
    (``managedFields``, ``uid``…) that Driftline has no use for.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="ignore",
        use_attribute_docstrings=True,
    )

    name: KubernetesName
    """Object name, unique per kind and namespace."""

    namespace: str | None = None
    """Namespace; unset for objects not yet stored (local mode uses ``default``)."""

    generation: int | None = None
    """Spec generation, bumped by the API server on every spec change."""

    uid: str | None = None
    """Unique id the API server assigns."""

    labels: dict[str, str] = Field(default_factory=dict)
    """Labels."""

    annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations."""


class RawObjectMeta(TypedDict, total=False):
    """Raw ``metadata`` of a manifest, typed for the I/O edge (unknown keys still work)."""

    name: str
    namespace: str
    generation: int
    uid: str
    resourceVersion: str
    labels: dict[str, str]
    annotations: dict[str, str]
    creationTimestamp: str
    deletionTimestamp: str


class Manifest(TypedDict):
    """A raw Kubernetes manifest, before parsing: what YAML files and the API server hand over."""

    apiVersion: str
    kind: str
    metadata: RawObjectMeta
    spec: NotRequired[dict[str, Any]]
    status: NotRequired[dict[str, Any]]
