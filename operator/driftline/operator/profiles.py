"""A Model's reference profile: the verified reference dataset -> the ConfigMap monitors mount.

Owns: which reference column feeds which feature (and where that feature sits in a prediction
record), the check that the reference has a usable column for every feature, the profile build
(``driftline.serving.drift.profile``, the engine ``driftline profile`` runs) and the ConfigMap
that stores it. Called by the Model handler in a worker thread, after the artifact was verified
and its graph read (``driftline.operator.artifacts``).

Contract of the stored profile:

- ConfigMap ``<model>-profile`` (``names.profile_config_map_name``) in the Model's namespace,
  owned by the Model (deleted with it), key ``profile.json`` (``names.PROFILE_KEY``) in ``data``:
  the ``driftline.profile/v1`` JSON document, versioned with the reference's and the Model's
  sha256 (also annotations, with the profile text's own sha256).
- Size: a ConfigMap holds at most 1 MiB. The profile is built with 512 support points per numeric
  feature; when its JSON is above ``MAX_PROFILE_BYTES`` (900 KiB) it is rebuilt with 128, then 32
  points (the KS statistic loses at most 1/points of resolution; the PSI bins are unchanged). A
  profile still too large fails the Model with ``ProfileTooLarge`` (declare fewer features or
  fewer categories): never a truncated or compressed profile the sidecar cannot read.

Features: ``spec.features`` in order, each read from reference column ``column`` (default its
name); without ``spec.features`` a model with one input of ``k`` columns has features ``f0`` ..
``f<k-1>``. Failures are ``ArtifactInvalid`` with reasons ``ReferenceUnreadable`` (not a .npz/.csv
table), ``ReferenceColumnsMismatch`` (a feature has no column, or a numeric feature a text column;
the message names them), ``ReferenceInvalid`` (a column that cannot be profiled) and
``ProfileTooLarge``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Final, Literal
from urllib.parse import urlparse

from driftline.operator import names
from driftline.operator.api.model import ModelSignature, ModelSpec
from driftline.operator.errors import ArtifactInvalid
from driftline.operator.manifests import Manifest

if TYPE_CHECKING:
    from driftline.serving.drift.profile import Column, Source

MAX_PROFILE_BYTES: Final = 900 * 1024
"""Largest profile JSON stored (a ConfigMap holds 1 MiB; the rest is headroom for metadata)."""
GRID_STEPS: Final = (512, 128, 32)
"""Support points per numeric feature, tried in order until the profile fits."""
MAX_REFERENCE_BYTES: Final = 1 << 30
"""Largest reference dataset fetched (1 GiB): it is read into memory to build the profile."""
REFERENCE_SUFFIXES: Final = (".npz", ".csv")
"""Reference formats the dataset reader understands."""
_SHOWN: Final = 8
"""Column names listed in a mismatch message before it says how many more."""


@dataclass(frozen=True)
class FeatureColumn:
    """One feature as the profile sees it.

    Attributes:
        name: feature name (profile and metrics).
        type: ``numeric`` or ``categorical``.
        column: reference column holding it.
        tensor: the ONNX input carrying it.
        position: its column in that input (features sharing an input, in listed order).
    """

    name: str
    type: Literal["numeric", "categorical"]
    column: str
    tensor: str
    position: int


@dataclass(frozen=True)
class BuiltProfile:
    """A profile ready to store.

    Attributes:
        text: the profile JSON.
        rows: reference rows counted.
        features: features profiled.
        grid_points: support points per numeric feature it was built with.
        prediction: where the prediction reference came from (``output 'y' column 0
            (numeric)``), or ``none: <why>`` when the profile has none
            (``driftline.operator.prediction_reference``).
    """

    text: str
    rows: int
    features: int
    grid_points: int
    prediction: str = "none: no model was run over the reference"

    @property
    def size_bytes(self) -> int:
        """Bytes of the JSON text (UTF-8): what the ConfigMap stores."""
        return len(self.text.encode())

    @property
    def sha256(self) -> str:
        """sha256 of the JSON text: the stored object's content version."""
        return hashlib.sha256(self.text.encode()).hexdigest()


def reference_file_name(uri: str) -> str:
    """The local file name of a reference dataset: ``reference.npz`` or ``reference.csv``.

    Raises:
        ArtifactInvalid: ``ReferenceUnreadable`` when the URI's path ends in neither.
    """
    parsed = urlparse(uri)
    # A relative file:// URI (file://data/ref.csv) puts its first segment in the netloc.
    path = parsed.netloc + parsed.path if parsed.scheme == "file" else parsed.path
    suffix = PurePosixPath(path).suffix.lower()
    if suffix not in REFERENCE_SUFFIXES:
        raise ArtifactInvalid(
            f"spec.reference.uri: {uri!r} must name a .npz or .csv file (got {suffix or 'none'})",
            reason="ReferenceUnreadable",
        )
    return f"reference{suffix}"


def feature_columns(spec: ModelSpec, signature: ModelSignature) -> tuple[FeatureColumn, ...]:
    """Every feature with its reference column and its place in the prediction records.

    Assumes ``artifacts.check_features`` passed (declared inputs exist and have room).

    Raises:
        ArtifactInvalid: ``FeatureMismatch`` when no features are declared and the graph's inputs
            do not define them (more than one input, or a dynamic column count).
    """
    only = signature.inputs[0].name if len(signature.inputs) == 1 else None
    if spec.features:
        position: dict[str, int] = {}
        out: list[FeatureColumn] = []
        for f in spec.features:
            tensor = f.input or only or ""
            out.append(
                FeatureColumn(f.name, f.type, f.column or f.name, tensor, position.get(tensor, 0))
            )
            position[tensor] = position.get(tensor, 0) + 1
        return tuple(out)
    if only is None:
        raise ArtifactInvalid(
            f"spec.features: required with spec.reference when the graph has "
            f"{len(signature.inputs)} inputs",
            reason="FeatureMismatch",
        )
    shape = signature.inputs[0].shape
    columns = 1 if len(shape) <= 1 else (shape[-1] if len(shape) == 2 else -1)
    if columns <= 0:
        raise ArtifactInvalid(
            f"spec.features: required with spec.reference: input {only!r} has shape {shape}, "
            "so its columns cannot be named f0, f1, ...",
            reason="FeatureMismatch",
        )
    return tuple(FeatureColumn(f"f{j}", "numeric", f"f{j}", only, j) for j in range(columns))


def _listed(values: Sequence[str]) -> str:
    shown = ", ".join(repr(v) for v in values[:_SHOWN])
    more = len(values) - _SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def check_columns(features: Sequence[FeatureColumn], table: Mapping[str, Column]) -> None:
    """Every feature needs a reference column, and a numeric feature a numeric one.

    Raises:
        ArtifactInvalid: ``ReferenceColumnsMismatch`` naming the missing and mistyped columns and
            the columns the reference has.
    """
    missing = [
        f"{f.column} (feature {f.name})" if f.column != f.name else f.name
        for f in features
        if f.column not in table
    ]
    text = [
        f.column
        for f in features
        if f.column in table and f.type == "numeric" and table[f.column].dtype.kind not in "biuf"
    ]
    if not missing and not text:
        return
    problems = []
    if missing:
        problems.append(f"no column for {_listed(missing)}")
    if text:
        problems.append(f"text in the numeric feature column(s) {_listed(text)}")
    raise ArtifactInvalid(
        f"spec.reference: the reference's columns do not match spec.features: "
        f"{'; '.join(problems)} (the reference has {_listed(list(table))})",
        reason="ReferenceColumnsMismatch",
    )


def build(
    spec: ModelSpec,
    signature: ModelSignature,
    reference: Path,
    reference_sha256: str,
    model_sha256: str,
    model: Path | None = None,
) -> BuiltProfile:
    """Read the verified reference, check its columns, build the profile that fits a ConfigMap.

    With ``model`` (the verified ONNX file) the model is run over the reference and its
    prediction becomes one more feature, sourced from the output tensor (prediction drift's
    baseline); when the prediction cannot be read the profile has the input features only and
    ``BuiltProfile.prediction`` says why.

    Args:
        spec: the Model's spec (features).
        signature: the graph's signature (where features sit in prediction records).
        reference: the verified local copy (``.npz`` or ``.csv``).
        reference_sha256: its verified digest (the profile's version).
        model_sha256: the Model artifact's verified digest.
        model: the verified ONNX file to run over the reference (None: no prediction reference).

    Raises:
        ArtifactInvalid: see the module docstring for the reasons.
    """
    from driftline.serving.drift.profile import ProfileError, Source, build_profile, profile_to_json
    from driftline.serving.monitor.dataset import DatasetError, read_table

    features = feature_columns(spec, signature)
    try:
        table = read_table(reference)
    except DatasetError as e:
        raise ArtifactInvalid(
            f"spec.reference: {str(e).replace(str(reference), 'the reference')}",
            reason="ReferenceUnreadable",
        ) from None
    check_columns(features, table)
    columns = {f.name: table[f.column] for f in features}
    sources: dict[str, Source] = {f.name: Source("input", f.tensor, f.position) for f in features}
    categorical = [f.name for f in features if f.type == "categorical"]
    prediction = "none: no model was run over the reference"
    if model is not None:
        from driftline.operator import prediction_reference as pr

        target = pr.prediction_target(spec, signature, [f.name for f in features])
        values = (
            target
            if isinstance(target, pr.NoPrediction)
            else pr.predict(model, features, signature, target, table)
        )
        if isinstance(values, pr.NoPrediction):
            prediction = f"none: {values.reason}"
        elif not isinstance(target, pr.NoPrediction):
            columns[target.name] = values
            sources[target.name] = Source("output", target.output, target.column)
            if target.type == "categorical":
                categorical.append(target.name)
            prediction = target.describe()
    sizes: list[str] = []
    for grid in GRID_STEPS:
        try:
            built = build_profile(
                columns,
                reference_sha256,
                categorical=categorical,
                grid_points=grid,
                sources=sources,
                model_sha256=model_sha256,
            )
            text = json.dumps(profile_to_json(built), separators=(",", ":"), allow_nan=False)
        except (ProfileError, ValueError) as e:
            raise ArtifactInvalid(f"spec.reference: {e}", reason="ReferenceInvalid") from None
        result = BuiltProfile(text, built.reference.rows, len(features), grid, prediction)
        if result.size_bytes <= MAX_PROFILE_BYTES:
            return result
        sizes.append(f"{result.size_bytes} bytes at {grid} points")
    raise ArtifactInvalid(
        f"spec.reference: the profile does not fit a ConfigMap ({', '.join(sizes)}; the limit is "
        f"{MAX_PROFILE_BYTES} bytes): declare fewer features or reduce the categories",
        reason="ProfileTooLarge",
    )


def config_map(
    model: str, namespace: str, profile: BuiltProfile, reference_sha256: str, model_sha256: str
) -> Manifest:
    """The ConfigMap holding a Model's profile (the caller sets the Model as owner). Pure."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.profile_config_map_name(model),
            "namespace": namespace,
            "labels": names.profile_labels(model),
            "annotations": {
                names.ANNOTATION_PROFILE_SHA256: profile.sha256,
                names.ANNOTATION_REFERENCE_SHA256: reference_sha256,
                names.ANNOTATION_MODEL_SHA256: model_sha256,
            },
        },
        "data": {names.PROFILE_KEY: profile.text},
    }
