"""Reading the manifests local mode runs: the same YAML that goes to a cluster.

Who uses it: ``driftline up -f`` and ``driftline apply -f`` (validated here before anything
starts or is sent to the running ``up``), and the control loop when an ``apply`` arrives.

What it does: reads files (a folder means its ``*.yaml``/``*.yml``/``*.json``, sorted), splits
multi-document YAML, checks every Driftline object exactly as an API server would
(:func:`driftline.operator.api.validate.validate_manifest`: schema and CEL rules, the same
messages), parses it with the API models (every error names the file, document and field),
resolves relative ``file://`` URIs against the manifest's folder (the API's rule for local
mode), and reports — once per object, in plain words — what a kind cannot do on this machine.
Documents of other kinds (a ``ConfigMap`` beside the Driftline objects) are skipped with a note.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from driftline.operator.api import (
    Deployment,
    DriftMonitor,
    Model,
    RetrainPolicy,
    kind_class,
)
from driftline.operator.api.validate import format_problems, validate_manifest

__all__ = [
    "Bundle",
    "ManifestError",
    "limitations",
    "load_documents",
    "parse_bundle",
    "resolve_uri",
]

SUFFIXES = (".yaml", ".yml", ".json")


class ManifestError(ValueError):
    """Manifests that cannot run; the message names the file, document and field."""


@dataclass(frozen=True)
class Source:
    """Where a document came from (for messages and relative URIs)."""

    path: Path
    index: int

    def __str__(self) -> str:
        return f"{self.path} (document {self.index + 1})"


@dataclass(frozen=True)
class Bundle:
    """The parsed objects, by name, plus notes for the user.

    Attributes:
        models: Model name -> Model (relative ``file://`` URIs already made absolute).
        deployments: Deployment name -> Deployment.
        monitors: DriftMonitor name -> DriftMonitor.
        policies: RetrainPolicy name -> RetrainPolicy.
        notes: what was skipped or cannot be done locally, one line each.
    """

    models: dict[str, Model] = field(default_factory=dict)
    deployments: dict[str, Deployment] = field(default_factory=dict)
    monitors: dict[str, DriftMonitor] = field(default_factory=dict)
    policies: dict[str, RetrainPolicy] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def merged(self, other: Bundle) -> Bundle:
        """This bundle with ``other``'s objects added or replacing same-named ones."""
        return Bundle(
            {**self.models, **other.models},
            {**self.deployments, **other.deployments},
            {**self.monitors, **other.monitors},
            {**self.policies, **other.policies},
            other.notes,
        )

    def manifests(self) -> list[dict[str, Any]]:
        """Every object as a plain manifest (what ``apply`` sends to the running ``up``)."""
        objects: list[Model | Deployment | DriftMonitor | RetrainPolicy] = [
            *self.models.values(),
            *self.deployments.values(),
            *self.monitors.values(),
            *self.policies.values(),
        ]
        return [o.to_manifest() for o in objects]


def _files(paths: Sequence[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
            if not found:
                raise ManifestError(f"{path}: no .yaml, .yml or .json files in this folder")
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            raise ManifestError(f"{path}: no such file or folder")
    return out


def load_documents(paths: Sequence[Path]) -> list[tuple[Source, Mapping[str, Any]]]:
    """Every non-empty YAML document in ``paths`` (folders expanded), with its source.

    Raises:
        ManifestError: a missing path, a YAML syntax error, a document that is not a mapping.
    """
    out: list[tuple[Source, Mapping[str, Any]]] = []
    for path in _files(paths):
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as exc:
            raise ManifestError(f"{path}: not valid YAML: {exc}") from None
        except OSError as exc:
            raise ManifestError(f"{path}: cannot be read: {exc}") from None
        for index, doc in enumerate(docs):
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise ManifestError(
                    f"{Source(path, index)}: a manifest is a mapping, got {type(doc).__name__}"
                )
            out.append((Source(path, index), doc))
    return out


def resolve_uri(uri: str, base: Path) -> str:
    """Make a relative ``file://`` URI absolute against ``base`` (other URIs unchanged)."""
    if not uri.startswith("file://"):
        return uri
    rest = uri[len("file://") :]
    if rest.startswith("/"):
        return uri
    return "file://" + str((base / rest).resolve())


def _absolute_model(model: Model, base: Path) -> Model:
    spec = model.spec
    source = spec.source.model_copy(update={"uri": resolve_uri(spec.source.uri, base)})
    reference = (
        spec.reference.model_copy(update={"uri": resolve_uri(spec.reference.uri, base)})
        if spec.reference is not None
        else None
    )
    new_spec = spec.model_copy(update={"source": source, "reference": reference})
    return model.model_copy(update={"spec": new_spec})


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "(the object)"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def parse_bundle(
    documents: Iterable[tuple[Source, Mapping[str, Any]]],
    *,
    known_models: Iterable[str] = (),
    check_references: bool = True,
) -> Bundle:
    """Parse documents into typed objects.

    Args:
        documents: what :func:`load_documents` returned.
        known_models: Models already running (``apply`` may name them without repeating them).
        check_references: refuse a Deployment naming an unknown Model (``apply`` leaves that to
            the running ``up``, which knows every Model).

    Raises:
        ManifestError: an invalid object (file, document and every bad field named), two objects
            of one kind with one name, or no Driftline object at all.
    """
    models: dict[str, Model] = {}
    deployments: dict[str, Deployment] = {}
    monitors: dict[str, DriftMonitor] = {}
    policies: dict[str, RetrainPolicy] = {}
    notes: list[str] = []
    problems: list[str] = []
    seen: dict[tuple[str, str], Source] = {}
    for source, doc in documents:
        kind = doc.get("kind")
        api_version = doc.get("apiVersion")
        cls = kind_class(kind) if isinstance(kind, str) else None
        if cls is None or api_version != "driftline.dev/v1alpha1":
            notes.append(f"{source}: skipped {api_version}/{kind}: not a Driftline object")
            continue
        name = str((doc.get("metadata") or {}).get("name", "?"))
        # the API server's checks first (schema + CEL, its wording), then the typed parse
        rejected = validate_manifest(doc)
        if rejected:
            problems.append(f"{source}: {format_problems(str(kind), name, rejected)}")
            continue
        try:
            obj = cls.from_manifest({k: v for k, v in doc.items() if k != "status"})
        except ValidationError as exc:
            problems.append(f"{source}: {kind} {name}: {_describe(exc)}")
            continue
        key = (obj.kind, obj.metadata.name)
        if key in seen:
            problems.append(
                f"{source}: {obj.kind} {obj.metadata.name} is also defined in {seen[key]}"
            )
            continue
        seen[key] = source
        if isinstance(obj, Model):
            models[obj.metadata.name] = _absolute_model(obj, source.path.parent)
        elif isinstance(obj, Deployment):
            deployments[obj.metadata.name] = obj
        elif isinstance(obj, DriftMonitor):
            monitors[obj.metadata.name] = obj
        else:
            policies[obj.metadata.name] = obj
    if problems:
        raise ManifestError("invalid manifests:\n  " + "\n  ".join(problems))
    if not seen:
        raise ManifestError("no Driftline objects (Model, Deployment, DriftMonitor, RetrainPolicy)")
    bundle = Bundle(models, deployments, monitors, policies, tuple(notes))
    known = set(known_models)
    missing = [
        f"Deployment {d.metadata.name}: spec.model {d.spec.model!r} names no Model in these "
        f"manifests (have: {sorted(models) or 'none'})"
        for d in deployments.values()
        if d.spec.model not in models and d.spec.model not in known
    ]
    if missing and check_references:
        raise ManifestError("\n".join(missing))
    return bundle


def limitations(bundle: Bundle) -> list[str]:
    """What each object asks for that local mode does differently, one sentence per topic."""
    out: list[str] = []
    for dep in bundle.deployments.values():
        spec, name = dep.spec, dep.metadata.name
        if spec.autoscaling is not None:
            out.append(
                f"Deployment {name}: autoscaling runs {spec.autoscaling.min_replicas} process(es) "
                "per variant locally (no HorizontalPodAutoscaler on this machine)"
            )
        if spec.resources is not None or spec.pod is not None:
            out.append(
                f"Deployment {name}: resources, image, node selector and tolerations apply in a "
                "cluster only; local processes share this machine"
            )
        if spec.router is not None and spec.router.replicas > 1:
            out.append(
                f"Deployment {name}: one router process locally (asked for {spec.router.replicas})"
            )
    for mon in bundle.monitors.values():
        out.append(
            f"DriftMonitor {mon.metadata.name}: recorded; the monitor processes beside each "
            "variant compute drift locally, and its action is reported, not executed"
        )
    for pol in bundle.policies.values():
        out.append(
            f"RetrainPolicy {pol.metadata.name}: recorded only: retraining runs a Kubernetes Job, "
            "which needs a cluster"
        )
    return out
