"""What the operator's own watches have seen: child Deployments' ready pods, and Models (pure).

Why this exists: a reconcile used to GET the Model it serves and every child apps/v1 Deployment
(for its ready pods) on each run, and a child's pods becoming ready reached the owner's status only
at the next periodic resync, because a child's status change is no event on its owner. Now kopf
watches the child Deployments (selected by our managed-by label) and the Models; their event
handlers record what they saw here, and a change in a child's ready pods tells the handlers to
wake the owner's reconcile at once (``ChildSeen.poke``).

Staleness: a watch lags the API by its delivery time, so a reconcile may read a value one event
old. That is safe here: the event that changes the value also pokes the owner, which then
reconciles again with the new value. A child or Model never seen (the operator just started, or
the child was created moments ago) is ``None``: the caller reads it from the API instead.

No kopf, no client: the handlers feed it plain data, tests drive it directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from driftline.operator import names
from driftline.operator.manifests import JsonObject


def owner_name(body: Mapping[str, object]) -> str | None:
    """The name of the Driftline Deployment that controls this object, if one does.

    Reads ``metadata.ownerReferences``: the reference with ``controller: true``, our API version
    and kind ``Deployment`` (a child carries exactly one; an object someone else owns, or a copy
    with its references removed, has none).
    """
    meta = body.get("metadata")
    refs = meta.get("ownerReferences") if isinstance(meta, Mapping) else None
    if not isinstance(refs, list | tuple):
        return None
    for ref in refs:
        if (
            isinstance(ref, Mapping)
            and ref.get("controller") is True
            and ref.get("apiVersion") == names.API_VERSION
            and ref.get("kind") == names.DEPLOYMENT.kind
            and isinstance(ref.get("name"), str)
        ):
            return str(ref["name"])
    return None


def ready_replicas(body: Mapping[str, object]) -> int:
    """``status.readyReplicas`` of an apps/v1 Deployment; 0 when absent or malformed."""
    status = body.get("status")
    ready = status.get("readyReplicas") if isinstance(status, Mapping) else None
    return ready if isinstance(ready, int) and not isinstance(ready, bool) and ready > 0 else 0


@dataclass(frozen=True)
class ChildSeen:
    """What one watch event on a child Deployment means for its owner.

    Attributes:
        owner: the owning Driftline Deployment's name (None: not a child of ours).
        poke: True when the child's ready pods changed, so the owner's status is out of date.
    """

    owner: str | None
    poke: bool


@dataclass
class Observed:
    """The latest ready-pod count of each child Deployment and the latest body of each Model.

    Keyed by ``(namespace, name)``. One per operator process (in ``handlers.Context``); only the
    event loop touches it, so it needs no lock.
    """

    _ready: dict[tuple[str, str], int] = field(default_factory=dict)
    _models: dict[tuple[str, str], JsonObject] = field(default_factory=dict)

    def child_event(
        self, namespace: str, body: Mapping[str, object], *, deleted: bool = False
    ) -> ChildSeen:
        """Record one watch event of an apps/v1 Deployment and say whether its owner must wake.

        A child never seen before counts as having had 0 ready pods: kopf batches the events of
        one object, so its first event may already show ready pods (created and readied within
        the batch window), and that change must wake the owner. A deleted child counts as 0.

        Args:
            namespace: the object's namespace.
            body: the object as the watch delivered it.
            deleted: the event was a deletion.

        Returns:
            The owner (None for objects no Driftline Deployment controls: nothing is recorded)
            and whether its ready pods changed.
        """
        owner = owner_name(body)
        meta = body.get("metadata")
        name = meta.get("name") if isinstance(meta, Mapping) else None
        if owner is None or not isinstance(name, str):
            return ChildSeen(owner=None, poke=False)
        key = (namespace, name)
        before = self._ready.get(key, 0)
        now = 0 if deleted else ready_replicas(body)
        if deleted:
            self._ready.pop(key, None)
        else:
            self._ready[key] = now
        return ChildSeen(owner=owner, poke=now != before)

    def ready(self, namespace: str, name: str) -> int | None:
        """The child's ready pods as last seen; None when its watch has not shown it yet."""
        return self._ready.get((namespace, name))

    def model_event(self, namespace: str, name: str, body: JsonObject | None) -> None:
        """Record a Model as the watch delivered it (``None``: it was deleted)."""
        if body is None:
            self._models.pop((namespace, name), None)
        else:
            self._models[(namespace, name)] = body

    def model(self, namespace: str, name: str) -> JsonObject | None:
        """The Model as last seen; None when never seen (or deleted): read it from the API."""
        return self._models.get((namespace, name))
