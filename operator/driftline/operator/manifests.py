"""Plain-data types for Kubernetes manifests and the pure JSON-merge helpers the applier needs.

Owns: the ``Manifest`` shape the renderer produces and the applier consumes, owner references,
object keys, and RFC 7386 merge-patch arithmetic (computing the patch that turns a live object into
the desired one, removing only the fields Driftline itself wrote before). No I/O, no clock.

Why merge-patch with a last-applied record instead of a plain merge: a plain merge never removes a
field we stopped rendering (an old label, a dropped env var), and a full replace (PUT) would also
wipe fields other controllers own (an HPA's ``spec.replicas``). Recording what we applied last, as
``kubectl apply`` does, lets the patch remove exactly our own stale fields.
"""

from __future__ import annotations

import copy
import json
from typing import NamedTuple, NotRequired, TypedDict

JsonScalar = str | int | float | bool | None
JsonValue = JsonScalar | list["JsonValue"] | dict[str, "JsonValue"]
JsonObject = dict[str, JsonValue]


class OwnerReference(TypedDict):
    """``metadata.ownerReferences[]``: makes the owner's deletion collect its children."""

    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool
    blockOwnerDeletion: bool


class ObjectMeta(TypedDict):
    """The part of ``metadata`` Driftline renders (the server fills the rest)."""

    name: str
    namespace: str
    labels: dict[str, str]
    annotations: NotRequired[dict[str, str]]
    ownerReferences: NotRequired[list[OwnerReference]]


class Manifest(TypedDict):
    """One Kubernetes object as Driftline renders it; exactly one of the body keys is set."""

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: NotRequired[JsonObject]
    data: NotRequired[dict[str, str]]
    rules: NotRequired[list[JsonValue]]
    roleRef: NotRequired[JsonObject]
    subjects: NotRequired[list[JsonValue]]


class ObjectKey(NamedTuple):
    """What identifies one object in a cluster."""

    api_version: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name} ({self.api_version}, namespace {self.namespace})"


def key_of(manifest: Manifest) -> ObjectKey:
    """The ``ObjectKey`` of a rendered manifest."""
    meta = manifest["metadata"]
    return ObjectKey(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])


def owner_reference(api_version: str, kind: str, name: str, uid: str) -> OwnerReference:
    """A controlling owner reference (what ``kopf.adopt`` writes, built without kopf)."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def as_json(manifest: Manifest) -> JsonObject:
    """A deep copy of ``manifest`` as a plain JSON object (for patch arithmetic and the wire)."""
    out: JsonObject = json.loads(json.dumps(manifest))
    return out


def canonical(value: JsonValue) -> str:
    """A byte-stable JSON text of ``value`` (sorted keys, no spaces): equal values, equal texts."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def merge_patch(target: JsonValue, patch: JsonValue) -> JsonValue:
    """Apply an RFC 7386 JSON merge patch to ``target`` without mutating either argument.

    ``None`` values in ``patch`` delete keys; lists and scalars replace; objects merge recursively.
    The result shares nothing with the arguments: ``target`` is copied once (not once per level,
    which made every apply quadratic in the depth of the manifest).
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: JsonObject = copy.deepcopy(target) if isinstance(target, dict) else {}
    _merge_into(result, patch)
    return result


def _merge_into(result: JsonObject, patch: JsonObject) -> None:
    """Merge ``patch`` into ``result`` in place (``result`` is already a private copy)."""
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            if not isinstance(current, dict):
                current = {}
                result[key] = current
            _merge_into(current, value)
        else:
            result[key] = copy.deepcopy(value)


def removals(last_applied: JsonValue, desired: JsonValue) -> JsonValue:
    """The merge-patch fragment deleting what ``last_applied`` had and ``desired`` no longer has.

    Only objects are descended; a list or scalar present in ``desired`` is replaced by the desired
    value anyway, so it needs no removal entry.
    """
    if not isinstance(last_applied, dict) or not isinstance(desired, dict):
        return {}
    out: JsonObject = {}
    for key, old in last_applied.items():
        if key not in desired:
            out[key] = None
        else:
            nested = removals(old, desired[key])
            if nested:
                out[key] = nested
    return out


def apply_patch(last_applied: JsonValue, desired: JsonObject) -> JsonObject:
    """The merge patch that makes a live object match ``desired`` (3-way, like ``kubectl apply``).

    Args:
        last_applied: what Driftline applied last time (``None`` when unknown): fields it had that
            ``desired`` lacks are removed; fields written by others are never touched.
        desired: the rendered object.

    Returns:
        ``desired`` plus ``null`` entries for Driftline's own stale fields.
    """
    patch = merge_patch(removals(last_applied, desired), desired)
    assert isinstance(patch, dict)
    return patch


def is_noop(live: JsonValue, patch: JsonValue) -> bool:
    """Whether applying ``patch`` to ``live`` would change nothing (so no write is needed).

    Equivalent to ``merge_patch(live, patch) == live``, decided without building the result.
    """
    if not isinstance(patch, dict):
        return live == patch
    if not isinstance(live, dict):
        return False  # a merge over a non-object makes an object
    for key, value in patch.items():
        if value is None:
            if key in live:
                return False
        elif key not in live or not is_noop(live[key], value):
            return False
    return True
