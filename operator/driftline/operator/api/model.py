"""The ``Model`` kind: one immutable, verified model version.

A Model names an ONNX artifact by URI and SHA-256, the reference dataset drift is measured
against, the features the monitor watches, and lineage metadata. The operator verifies the digest,
reads the signature and opset, builds the reference profile, and reports them in status. Pure:
pydantic only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, StringConstraints, field_validator

from driftline.operator import names
from driftline.operator.api.meta import (
    ApiModel,
    ArtifactRef,
    KubernetesName,
    StatusBase,
    cel_rules,
)
from driftline.operator.api.resource import Resource
from driftline.operator.names import KindNames

__all__ = [
    "Feature",
    "Lineage",
    "Model",
    "ModelPhase",
    "ModelSignature",
    "ModelSpec",
    "ModelStatus",
    "TensorSpec",
]

FeatureName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
"""A feature name as it appears in prediction records and metrics labels."""

FeatureType = Literal["numeric", "categorical"]
"""How a feature is compared with the reference: ``numeric`` (binned) or ``categorical``."""

MAX_FEATURES = 256
"""Features per model; bounds the monitor's work and the CEL cost of the uniqueness rule."""


class Feature(ApiModel):
    """One named input feature: what the monitor windows and compares with the reference."""

    name: FeatureName
    """Feature name, unique within the model; used in metrics labels and drift results."""

    type: FeatureType = "numeric"
    """``numeric`` or ``categorical``; picks the drift tests (default ``numeric``)."""

    input: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    """Name of the ONNX input that carries this feature. Default: the model's only input; features
    sharing a 2-D input take its columns in the order they are listed."""

    column: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    """Column of the reference dataset holding this feature. Default: ``name``."""


class Lineage(ApiModel):
    """Where a model version came from: what a reviewer asks before promoting it."""

    training_data: Annotated[str, StringConstraints(max_length=2048)] | None = None
    """URI or description of the training dataset (and its version)."""

    code_commit: (
        Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{7,64}$", max_length=64)] | None
    ) = None
    """Commit of the training code (7 to 64 lower-case hex characters)."""

    parameters: Annotated[
        dict[str, Annotated[str, StringConstraints(max_length=1024)]], Field(max_length=128)
    ] = Field(default_factory=dict)
    """Training hyper-parameters as strings, e.g. ``{max_depth: "6"}`` (at most 128)."""

    metrics: Annotated[dict[str, float], Field(max_length=128)] = Field(default_factory=dict)
    """Offline evaluation metrics, e.g. ``{accuracy: 0.91, auc: 0.95}``; RetrainPolicy validation
    compares these between challenger and champion (at most 128)."""

    framework: Annotated[str, StringConstraints(max_length=256)] | None = None
    """Training framework and version, e.g. ``scikit-learn 1.5.2``."""

    trained_at: datetime | None = None
    """When training finished (RFC 3339)."""


class ModelSpec(ApiModel):
    """The desired state of a Model: one immutable model version."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            {
                "rule": "!has(self.features) || self.features.all(f, "
                "self.features.exists_one(g, g.name == f.name))",
                "message": "feature names must be unique",
                "fieldPath": ".features",
            },
            {
                "rule": "self == oldSelf",
                "message": "a Model is one immutable version: create a new Model instead of "
                "changing this one",
            },
        )
    )

    family: KubernetesName
    """Model name shared by all versions (e.g. ``churn``); Deployments and metrics group by it."""

    version: Annotated[
        str,
        StringConstraints(pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.+]*[A-Za-z0-9])?$", max_length=63),
    ]
    """Version label of this artifact within the family (e.g. ``v2``, ``2024.06.1``)."""

    source: ArtifactRef
    """The ONNX artifact: URI and SHA-256. The bytes are verified before anything serves them."""

    format: Literal["onnx"] = "onnx"
    """Artifact format; ``onnx`` is the only one supported (default)."""

    reference: ArtifactRef | None = None
    """Reference dataset for drift detection: ``.npz`` (one array per column) or ``.csv`` with a
    header row naming the columns; usually a sample of the training data. Without it, no drift
    is measured for this model."""

    features: Annotated[list[Feature], Field(max_length=MAX_FEATURES)] = Field(default_factory=list)
    """Named features, in input-column order. Optional when the model has one 2-D float input: the
    features are then ``f0``, ``f1``, … in column order."""

    prediction_output: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    """Name of the ONNX output holding the prediction (label or value) that prediction drift and
    performance use. Default: the first output."""

    task: Literal["classification", "regression"] | None = None
    """What the model predicts; picks the sensible performance metrics. Default: unknown."""

    lineage: Lineage | None = None
    """Training data, code commit, parameters and offline metrics."""

    owner: Annotated[str, StringConstraints(max_length=256)] | None = None
    """Team or person accountable for this model (e.g. an email or a team name)."""

    description: Annotated[str, StringConstraints(max_length=4096)] | None = None
    """Free text: what the model does and what changed in this version."""

    @field_validator("features")
    @classmethod
    def _unique_feature_names(cls, features: list[Feature]) -> list[Feature]:
        seen: set[str] = set()
        for f in features:
            if f.name in seen:
                raise ValueError(f"feature names must be unique: {f.name!r} appears twice")
            seen.add(f.name)
        return features


TensorDatatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
"""Tensor element types as the Open Inference Protocol names them."""


class TensorSpec(ApiModel):
    """One input or output of the model, as the Open Inference Protocol describes it."""

    name: str
    """Tensor name in the ONNX graph."""

    datatype: TensorDatatype
    """Element type in Open Inference Protocol terms (``FP32``, ``INT64``, ``BYTES``…)."""

    shape: list[int]
    """Dimensions; ``-1`` marks a dynamic dimension (usually the batch)."""


class ModelSignature(ApiModel):
    """The inputs and outputs the ONNX graph declares."""

    inputs: list[TensorSpec] = Field(default_factory=list)
    """Graph inputs, in declaration order."""

    outputs: list[TensorSpec] = Field(default_factory=list)
    """Graph outputs, in declaration order."""


ModelPhase = Literal["Pending", "Ready", "Failed"]
"""``Pending`` until verified, ``Ready`` when servable, ``Failed`` when it never will be."""


class ModelStatus(StatusBase):
    """What the operator found when it verified and inspected the artifact."""

    phase: ModelPhase | None = None
    """``Pending`` (not yet verified), ``Ready`` (digest and graph verified, profile built) or
    ``Failed`` (digest mismatch, unreadable graph, bad reference; see ``message``)."""

    signature: ModelSignature | None = None
    """Inputs and outputs read from the ONNX graph."""

    opset: int | None = None
    """The default-domain ONNX opset the graph imports."""

    size_bytes: Annotated[int, Field(ge=0)] | None = None
    """Artifact size in bytes."""

    profile: str | None = None
    """Local mode: the file holding the reference profile built from ``spec.reference`` (bin
    edges and counts per feature), which its monitors load. In a cluster see
    ``profileConfigMap``."""

    profile_config_map: KubernetesName | None = None
    """The ConfigMap (same namespace, owned by this Model) holding the reference profile built
    from ``spec.reference`` under the key ``profile.json``; the monitor sidecar of every pod
    serving this Model mounts it. Unset without ``spec.reference``."""

    profile_size_bytes: Annotated[int, Field(ge=0)] | None = None
    """Size of the stored profile JSON in bytes (at most 900 KiB, so it fits a ConfigMap)."""

    prediction_reference: Annotated[str, StringConstraints(max_length=512)] | None = None
    """Where the profile's prediction baseline comes from: the model run over the reference,
    ``output 'y' column 0 (numeric)``; or ``none: <why>`` when the outputs cannot be read as one
    prediction per row (not a failure: prediction drift then has no baseline). Unset without
    ``spec.reference``."""

    verified_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    """The digest the operator verified; equals ``spec.source.sha256`` when ``Ready``."""


class Model(Resource[ModelSpec, ModelStatus]):
    """A ``Model``: one immutable model version (ONNX artifact + reference data + lineage)."""

    kind_names: ClassVar[KindNames] = names.MODEL
    kind: Literal["Model"] = "Model"
    """``Model``."""
