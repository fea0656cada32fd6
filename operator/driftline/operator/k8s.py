"""The only module that talks to the Kubernetes API (besides kopf itself).

Owns: the ``Applier`` and ``Reader`` seams the handlers depend on, and ``KubeClient``, their real
implementation over the official ``kubernetes`` client. Handlers never import the client; tests
replace these protocols with in-memory fakes or run ``KubeClient`` against the API emulator.

Contract of ``apply``: idempotent create-or-patch of each manifest, in order. An object is created
when absent and patched (JSON merge patch) when it differs; an unchanged object gets no write at
all, so re-running a reconcile is free and emits no watch events. Patches are three-way (see
``driftline.operator.manifests``): fields Driftline rendered before and no longer renders are
removed; fields owned by others (an HPA's ``spec.replicas``) are left alone. Names are
deterministic, so a retried create can never duplicate a child: it meets ``409 AlreadyExists``
and patches instead.

Contract of ``prune``: delete the objects of the given kinds that carry the selector labels, are
controlled by the owner, and are not in ``keep``. Objects without the owner's reference are never
deleted, whatever their labels say.

Requests: ``apply`` reads the live children with one LIST per kind (selected by the labels every
manifest carries) instead of one GET per object, and ``prune`` reuses those lists when it runs
within ``LIST_REUSE_S`` of ``apply``'s end with the same selector (the handler calls them back to
back), so a reconcile that changes nothing costs one LIST per child kind. The window counts from
the end of ``apply``, not from its LISTs: against a slow API server an ``apply`` can outlast any
fixed window, and prune then listed every kind a second time (measured: ~2.2 LISTs per kind per
reconcile with 200 Deployments on the emulator). A child the LIST did not show (its
labels were edited away) meets ``409 AlreadyExists`` on create and is read and patched by name.

Retries: 409 Conflict, 429, 5xx and connection errors are retried with exponential backoff (the
budget is a ``RetryPolicy``); what remains is raised as ``ApiUnavailable`` (temporary). 400/403/422
are raised at once as ``ApiRejected`` (permanent: a retry would be refused again).

Why the blocking client in threads rather than an async client: the pinned ``kubernetes`` package is
the one kopf's login helper configures (kubeconfig or in-cluster, token refresh); each call runs in
``asyncio.to_thread`` so kopf's event loop never blocks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, cast
from urllib.parse import quote

import kubernetes
import urllib3

from driftline.operator import names
from driftline.operator.errors import ApiRejected, ApiUnavailable
from driftline.operator.manifests import (
    JsonObject,
    Manifest,
    ObjectKey,
    OwnerReference,
    apply_patch,
    as_json,
    canonical,
    is_noop,
    key_of,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Resource:
    """Where a kind is served: URL path parts and scope."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """``group/version`` (or just ``version`` for the core group)."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        """The URL path of the collection, or of one object (and its subresource)."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
            if sub is not None:
                base += f"/{sub}"
        return base


RESOURCES: dict[tuple[str, str], Resource] = {
    ("apps/v1", "Deployment"): Resource("apps", "v1", "deployments"),
    ("v1", "Service"): Resource("", "v1", "services"),
    ("v1", "ConfigMap"): Resource("", "v1", "configmaps"),
    ("v1", "Event"): Resource("", "v1", "events"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): Resource(
        "autoscaling", "v2", "horizontalpodautoscalers"
    ),
    ("policy/v1", "PodDisruptionBudget"): Resource("policy", "v1", "poddisruptionbudgets"),
    ("batch/v1", "Job"): Resource("batch", "v1", "jobs"),
    ("v1", "ServiceAccount"): Resource("", "v1", "serviceaccounts"),
    ("rbac.authorization.k8s.io/v1", "Role"): Resource("rbac.authorization.k8s.io", "v1", "roles"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): Resource(
        "rbac.authorization.k8s.io", "v1", "rolebindings"
    ),
    **{
        (names.API_VERSION, k.kind): Resource(names.GROUP, names.VERSION, k.plural)
        for k in names.KINDS
    },
}
"""Every kind Driftline reads or writes. Fixed, so no discovery round-trips are needed."""


def resource_of(api_version: str, kind: str) -> Resource:
    """The ``Resource`` serving ``kind`` in ``api_version``.

    Raises:
        KeyError: for a kind Driftline does not manage (a programming error, not user input).
    """
    return RESOURCES[(api_version, kind)]


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry conflicts and transient API failures.

    Attributes:
        attempts: total tries per call (1 = no retry).
        base_delay: seconds before the first retry; doubles each time.
        max_delay: ceiling of one wait, in seconds.
    """

    attempts: int = 6
    base_delay: float = 0.1
    max_delay: float = 2.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        return float(min(self.max_delay, self.base_delay * (2**attempt)))


RETRIABLE = frozenset({0, 409, 429, 500, 502, 503, 504})
"""Statuses worth another try (0: the connection failed). Other 5xx are retried as well."""


def _retriable(status: int) -> bool:
    return status in RETRIABLE or status >= 500


@dataclass(frozen=True)
class ApplyResult:
    """What ``apply`` did to one object."""

    key: ObjectKey
    action: str
    """``created``, ``patched`` or ``unchanged``."""


class Reader(Protocol):
    """Reads objects; the seam handlers use to load references (e.g. a Deployment's Model)."""

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> JsonObject | None:
        """The object, or ``None`` when it does not exist."""
        ...

    async def list_objects(
        self, api_version: str, kind: str, namespace: str, selector: Mapping[str, str]
    ) -> list[JsonObject]:
        """Objects of ``kind`` in ``namespace`` carrying all ``selector`` labels."""
        ...


class Applier(Protocol):
    """Writes children; the seam between handlers and the cluster."""

    async def apply(
        self, manifests: Sequence[Manifest], owner: OwnerReference | None
    ) -> list[ApplyResult]:
        """Create or patch each manifest (owned by ``owner``) so the cluster matches it."""
        ...

    async def prune(
        self,
        namespace: str,
        selector: Mapping[str, str],
        keep: Collection[ObjectKey],
        kinds: Sequence[tuple[str, str]],
        owner_uid: str,
    ) -> list[ObjectKey]:
        """Delete the selected, owned objects of ``kinds`` not in ``keep``; return their keys."""
        ...

    async def store(
        self, manifest: Manifest, owner: OwnerReference | None, version_annotation: str
    ) -> ApplyResult:
        """Create or wholly replace an object only Driftline writes, versioned by an annotation."""
        ...


class Cluster(Applier, Reader, Protocol):
    """Both seams at once: what the handlers are given."""


@dataclass(frozen=True)
class _Response:
    status: int
    body: JsonObject | None
    text: str


@dataclass(frozen=True)
class _Outcome(Generic[T]):
    """Whether an answer ends a retried call (``final``) and, if so, what the call returns."""

    final: bool
    value: T


def _object_or_none(resp: _Response) -> _Outcome[JsonObject | None]:
    """GET or PATCH of one object: 200 gives the object, 404 gives None (it does not exist)."""
    if resp.status == 200 and resp.body is not None:
        return _Outcome(True, resp.body)
    return _Outcome(resp.status == 404, None)


def _items(resp: _Response) -> _Outcome[list[JsonObject]]:
    """A LIST: 200 gives the ``items`` that are objects."""
    if resp.status == 200 and resp.body is not None:
        items = resp.body.get("items")
        return _Outcome(
            True, [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
        )
    return _Outcome(False, [])


def _deleted(resp: _Response) -> _Outcome[bool]:
    """A DELETE: 200/202 gives True (deleted), 404 gives False (already gone)."""
    return _Outcome(resp.status in (200, 202, 404), resp.status != 404)


def _selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


LIST_REUSE_S = 5.0
"""How long after ``apply`` ends ``prune`` may reuse its lists (same kinds, namespace, selector)."""

_ListKey = tuple[str, str, str, str]
"""(api_version, kind, namespace, label selector) of one LIST."""


def _common_labels(manifests: Sequence[Manifest]) -> dict[str, str]:
    """The labels (key and value) every manifest carries: the selector ``apply`` lists by."""
    common: dict[str, str] | None = None
    for manifest in manifests:
        meta = manifest.get("metadata")
        labels = meta.get("labels") if isinstance(meta, Mapping) else None
        labels = labels if isinstance(labels, Mapping) else {}
        if common is None:
            common = {str(k): str(v) for k, v in labels.items()}
        else:
            common = {k: v for k, v in common.items() if labels.get(k) == v}
    return common or {}


def _name_of(obj: JsonObject) -> str | None:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else None


def _with_owner(manifest: Manifest, owner: OwnerReference | None) -> JsonObject:
    """The manifest as JSON, owned by ``owner`` and carrying its own last-applied record."""
    body = as_json(manifest)
    meta = body["metadata"]
    assert isinstance(meta, dict)
    if owner is not None:
        refs = meta.get("ownerReferences")
        kept = (
            [r for r in refs if isinstance(r, dict) and r.get("uid") != owner["uid"]]
            if isinstance(refs, list)
            else []
        )
        meta["ownerReferences"] = [*kept, cast(JsonObject, dict(owner))]
    annotations = meta.get("annotations")
    annotations = dict(annotations) if isinstance(annotations, dict) else {}
    annotations.pop(names.ANNOTATION_LAST_APPLIED, None)
    meta["annotations"] = annotations
    record = canonical(body)
    annotations[names.ANNOTATION_LAST_APPLIED] = record
    return body


def _last_applied(live: JsonObject) -> JsonObject | None:
    meta = live.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    text = annotations.get(names.ANNOTATION_LAST_APPLIED) if isinstance(annotations, dict) else None
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None  # someone edited it: treat as unknown (remove nothing)
    return value if isinstance(value, dict) else None


def _owned_by(obj: JsonObject, owner_uid: str) -> bool:
    meta = obj.get("metadata")
    refs = meta.get("ownerReferences") if isinstance(meta, dict) else None
    return isinstance(refs, list) and any(
        isinstance(r, dict) and r.get("uid") == owner_uid for r in refs
    )


class KubeClient:
    """``Applier`` and ``Reader`` over the official ``kubernetes`` client (blocking, in threads).

    Args:
        api_client: a configured ``kubernetes.client.ApiClient``; closed by ``close()``.
        retry: the retry budget for conflicts and transient failures.
        request_timeout: seconds one HTTP request may take.
    """

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        *,
        retry: RetryPolicy = RetryPolicy(),
        request_timeout: float = 30.0,
    ) -> None:
        self._api = api_client
        self._retry = retry
        self._timeout = request_timeout
        self._listed: dict[_ListKey, tuple[float, list[JsonObject]]] = {}

    @classmethod
    def from_environment(cls, *, retry: RetryPolicy = RetryPolicy()) -> KubeClient:
        """A client configured in-cluster when running in a pod, else from the kubeconfig."""
        try:
            kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
        return cls(kubernetes.client.ApiClient(), retry=retry)

    def close(self) -> None:
        """Close pooled connections (an open keep-alive connection delays servers' shutdown)."""
        self._api.close()  # type: ignore[no-untyped-call]

    # ------------------------------------------------------------------ HTTP
    def _call_blocking(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        body: JsonObject | None,
        content_type: str,
    ) -> _Response:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            _, url, hdrs, data, _ = self._api.param_serialize(
                method,
                path,
                query_params=list(query) or None,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            raw = self._api.call_api(
                method, url, header_params=hdrs, body=data, _request_timeout=self._timeout
            )
            raw.read()  # type: ignore[no-untyped-call]
        except (urllib3.exceptions.HTTPError, OSError) as e:
            return _Response(0, None, f"connection failed: {e}")
        text = raw.data.decode("utf-8", errors="replace") if raw.data else ""
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return _Response(
            int(raw.status), cast(JsonObject, parsed) if isinstance(parsed, dict) else None, text
        )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: JsonObject | None = None,
        content_type: str = "application/json",
    ) -> _Response:
        return await asyncio.to_thread(self._call_blocking, method, path, query, body, content_type)

    @staticmethod
    def _message(resp: _Response) -> str:
        if resp.body is not None and isinstance(resp.body.get("message"), str):
            return str(resp.body["message"])
        return resp.text[:500]

    async def _backoff(self, attempt: int, what: str, resp: _Response) -> None:
        if attempt + 1 >= self._retry.attempts:
            raise ApiUnavailable(
                f"{what}: gave up after {self._retry.attempts} attempts: "
                f"HTTP {resp.status}: {self._message(resp)}",
                status=resp.status,
            )
        delay = self._retry.delay(attempt)
        log.info("%s: HTTP %s, retrying in %.2fs", what, resp.status, delay)
        await asyncio.sleep(delay)

    def _reject(self, what: str, resp: _Response) -> ApiRejected:
        reason = resp.body.get("reason") if resp.body is not None else None
        return ApiRejected(
            f"{what}: HTTP {resp.status}: {self._message(resp)}",
            status=resp.status,
            reason=reason if isinstance(reason, str) and reason else None,
        )

    async def _retrying(
        self,
        what: str,
        method: str,
        path: str,
        outcome: Callable[[_Response], _Outcome[T]],
        *,
        query: Sequence[tuple[str, str]] = (),
        body: JsonObject | None = None,
        content_type: str = "application/json",
        retry_conflicts: bool = False,
    ) -> T:
        """One request, repeated until ``outcome`` accepts its answer or the budget runs out.

        The shape every single-request call shares (``apply`` and ``store`` read, then write, so
        they loop themselves): an answer ``outcome`` accepts is returned; a retriable one (429,
        5xx, connection failure; 409 only with ``retry_conflicts``: a read never conflicts, so a
        409 there is a refusal) waits for the backoff and tries again; any other is rejected.

        Raises:
            ApiRejected: the API refused (400/403/404 not accepted/409 on a read/422).
            ApiUnavailable: transient failures outlasted the retry budget.
        """
        for attempt in range(self._retry.attempts):
            resp = await self._call(method, path, query=query, body=body, content_type=content_type)
            done = outcome(resp)
            if done.final:
                return done.value
            if not _retriable(resp.status) or (resp.status == 409 and not retry_conflicts):
                raise self._reject(what, resp)
            await self._backoff(attempt, what, resp)
        raise AssertionError("unreachable")  # pragma: no cover: _backoff raises on the last

    # ------------------------------------------------------------------ Reader
    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> JsonObject | None:
        """The object, or ``None`` when it does not exist (transient failures retried)."""
        res = resource_of(api_version, kind)
        what = f"get {kind}/{name} in {namespace}"
        return await self._retrying(what, "GET", res.path(namespace, name), _object_or_none)

    async def list_objects(
        self, api_version: str, kind: str, namespace: str, selector: Mapping[str, str]
    ) -> list[JsonObject]:
        """Objects of ``kind`` in ``namespace`` carrying all ``selector`` labels."""
        query = [("labelSelector", _selector(selector))] if selector else []
        return await self._list_items(api_version, kind, namespace, query)

    async def _list_items(
        self, api_version: str, kind: str, namespace: str | None, query: list[tuple[str, str]]
    ) -> list[JsonObject]:
        """One LIST with retries: the ``items`` that are objects; rejections raise."""
        return await self._list_at(resource_of(api_version, kind), kind, namespace, query)

    async def _list_at(
        self, res: Resource, kind: str, namespace: str | None, query: Sequence[tuple[str, str]]
    ) -> list[JsonObject]:
        what = f"list {kind} in {namespace or 'all namespaces'}"
        return await self._retrying(what, "GET", res.path(namespace), _items, query=query)

    # ------------------------------------------------------------------ Applier
    async def apply(
        self, manifests: Sequence[Manifest], owner: OwnerReference | None
    ) -> list[ApplyResult]:
        """Create or patch each manifest in order; see the module docstring for the contract."""
        live = await self._list_live(manifests)
        results = [
            await self._apply_one(m, owner, live.get((key_of(m).api_version, key_of(m).kind)))
            for m in manifests
        ]
        done = time.monotonic()  # prune's reuse window starts now, however long apply took
        namespaces, selector = {key_of(m).namespace for m in manifests}, _common_labels(manifests)
        if len(namespaces) == 1 and selector:
            namespace = namespaces.pop()
            for api_version, kind in live:
                key = (api_version, kind, namespace, _selector(selector))
                if (listed := self._listed.get(key)) is not None:
                    self._listed[key] = (done, listed[1])
        return results

    async def _list_live(
        self, manifests: Sequence[Manifest]
    ) -> dict[tuple[str, str], dict[str, JsonObject]]:
        """The live objects of each kind among ``manifests``, by name (one LIST per kind).

        Only for manifests in one namespace that share labels (rendered children always do);
        otherwise nothing is listed and each object is read by name.
        """
        namespaces = {key_of(m).namespace for m in manifests}
        labels = _common_labels(manifests)
        if len(namespaces) != 1 or not labels:
            return {}
        namespace, selector = namespaces.pop(), _selector(labels)
        now = time.monotonic()
        if len(self._listed) > 512:  # lists nobody pruned with (a caller without prune)
            self._listed = {k: v for k, v in self._listed.items() if now - v[0] < LIST_REUSE_S}
        out: dict[tuple[str, str], dict[str, JsonObject]] = {}
        for api_version, kind in dict.fromkeys(
            (key_of(m).api_version, key_of(m).kind) for m in manifests
        ):
            items = await self.list_objects(api_version, kind, namespace, labels)
            for item in items:  # a List's items may omit them (real API servers do)
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", kind)
            self._listed[(api_version, kind, namespace, selector)] = (time.monotonic(), items)
            out[(api_version, kind)] = {n: i for i in items if (n := _name_of(i)) is not None}
        return out

    async def _apply_one(
        self,
        manifest: Manifest,
        owner: OwnerReference | None,
        listed: Mapping[str, JsonObject] | None = None,
    ) -> ApplyResult:
        key = key_of(manifest)
        res = resource_of(key.api_version, key.kind)
        desired = _with_owner(manifest, owner)
        what = f"apply {key}"
        for attempt in range(self._retry.attempts):
            if attempt == 0 and listed is not None:  # the LIST stands in for the first GET
                found = listed.get(key.name)
                resp = _Response(404, None, "") if found is None else _Response(200, found, "")
            else:
                resp = await self._call("GET", res.path(key.namespace, key.name))
            if resp.status == 404:
                resp = await self._call("POST", res.path(key.namespace), body=desired)
                if resp.status in (200, 201):
                    return ApplyResult(key, "created")
                if resp.status == 409:  # AlreadyExists: someone (or our lost try) created it
                    continue
            elif resp.status == 200 and resp.body is not None:
                patch = apply_patch(_last_applied(resp.body), desired)
                if is_noop(resp.body, patch):
                    return ApplyResult(key, "unchanged")
                resp = await self._call(
                    "PATCH",
                    res.path(key.namespace, key.name),
                    body=patch,
                    content_type="application/merge-patch+json",
                )
                if resp.status == 200:
                    return ApplyResult(key, "patched")
                if resp.status == 404:  # deleted between our read and write: create it again
                    continue
            if not _retriable(resp.status):
                raise self._reject(what, resp)
            await self._backoff(attempt, what, resp)
        raise ApiUnavailable(
            f"{what}: no stable outcome after {self._retry.attempts} attempts", status=409
        )

    async def store(
        self, manifest: Manifest, owner: OwnerReference | None, version_annotation: str
    ) -> ApplyResult:
        """Create, or replace (PUT), an object whose content version is an annotation.

        For objects too large for ``apply``, whose last-applied record is an annotation (256 KiB
        at most for all of them): a Model's reference profile. Nobody else writes such an object,
        so a whole replace loses nothing. Equal ``version_annotation`` on the live object: no
        write. Conflicts, 429 and 5xx are retried like ``apply``.
        """
        key = key_of(manifest)
        res = resource_of(key.api_version, key.kind)
        desired = as_json(manifest)
        meta = desired["metadata"]
        assert isinstance(meta, dict)
        if owner is not None:
            meta["ownerReferences"] = [cast(JsonObject, dict(owner))]
        annotations = meta.get("annotations")
        version = annotations.get(version_annotation) if isinstance(annotations, dict) else None
        what = f"store {key}"
        for attempt in range(self._retry.attempts):
            resp = await self._call("GET", res.path(key.namespace, key.name))
            if resp.status == 404:
                resp = await self._call("POST", res.path(key.namespace), body=desired)
                if resp.status in (200, 201):
                    return ApplyResult(key, "created")
                if resp.status == 409:
                    continue
            elif resp.status == 200 and resp.body is not None:
                live_meta = resp.body.get("metadata")
                live_meta = live_meta if isinstance(live_meta, dict) else {}
                live_notes = live_meta.get("annotations")
                if isinstance(live_notes, dict) and live_notes.get(version_annotation) == version:
                    return ApplyResult(key, "unchanged")
                meta["resourceVersion"] = live_meta.get("resourceVersion")
                resp = await self._call("PUT", res.path(key.namespace, key.name), body=desired)
                meta.pop("resourceVersion", None)
                if resp.status == 200:
                    return ApplyResult(key, "patched")
                if resp.status == 404:
                    continue
            if not _retriable(resp.status):
                raise self._reject(what, resp)
            await self._backoff(attempt, what, resp)
        raise ApiUnavailable(
            f"{what}: no stable outcome after {self._retry.attempts} attempts", status=409
        )

    async def prune(
        self,
        namespace: str,
        selector: Mapping[str, str],
        keep: Collection[ObjectKey],
        kinds: Sequence[tuple[str, str]],
        owner_uid: str,
    ) -> list[ObjectKey]:
        """Delete selected, owned objects of ``kinds`` not in ``keep``; see the module docstring."""
        keep_set = set(keep)
        deleted: list[ObjectKey] = []
        for api_version, kind in kinds:
            for obj in await self._recent_list(api_version, kind, namespace, selector):
                meta = obj.get("metadata")
                name = meta.get("name") if isinstance(meta, dict) else None
                if not isinstance(name, str):
                    continue
                key = ObjectKey(api_version, kind, namespace, name)
                if key in keep_set or not _owned_by(obj, owner_uid):
                    continue
                if await self._delete(key):
                    deleted.append(key)
        return deleted

    async def _recent_list(
        self, api_version: str, kind: str, namespace: str, selector: Mapping[str, str]
    ) -> list[JsonObject]:
        """The list ``apply`` read moments ago with this selector (used once), else a new LIST."""
        recent = self._listed.pop((api_version, kind, namespace, _selector(selector)), None)
        if recent is not None and time.monotonic() - recent[0] < LIST_REUSE_S:
            return recent[1]
        return await self.list_objects(api_version, kind, namespace, selector)

    async def _delete(self, key: ObjectKey) -> bool:
        res = resource_of(key.api_version, key.kind)
        what = f"delete {key}"
        options: JsonObject = {"propagationPolicy": "Background"}
        return await self._retrying(
            what,
            "DELETE",
            res.path(key.namespace, key.name),
            _deleted,
            body=options,
            retry_conflicts=True,
        )

    # ------------------------------------------------------------------ kubectl plugin reads/writes
    async def list_in(self, api_version: str, kind: str, namespace: str | None) -> list[JsonObject]:
        """Every object of ``kind`` in ``namespace``, or in all namespaces when it is ``None``."""
        return await self._list_items(api_version, kind, namespace, [])

    async def merge_patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: JsonObject
    ) -> JsonObject | None:
        """Apply a JSON merge patch to one object; its new state, or ``None`` when it is absent.

        A merge patch carries no ``resourceVersion``, so it never conflicts with the operator's
        own writes; transient failures are retried like every other call.
        """
        res = resource_of(api_version, kind)
        what = f"patch {kind}/{name} in {namespace}"
        return await self._retrying(
            what,
            "PATCH",
            res.path(namespace, name),
            _object_or_none,
            body=patch,
            content_type="application/merge-patch+json",
            retry_conflicts=True,
        )


class KubeconfigError(ValueError):
    """The kubeconfig is missing, unreadable, or lacks the requested context."""


@dataclass(frozen=True)
class KubeconfigTarget:
    """Where a kubeconfig (and an optional context) points, as ``kubectl`` would resolve it.

    Attributes:
        client: a ``KubeClient`` for that cluster and user; the caller closes it.
        namespace: the context's namespace (``default`` when the context sets none).
        context: the context's name.
        server: the API server's URL, for messages.
    """

    client: KubeClient
    namespace: str
    context: str
    server: str


def client_from_kubeconfig(
    kubeconfig: str | None,
    context: str | None,
    *,
    retry: RetryPolicy = RetryPolicy(attempts=3, base_delay=0.2),
    request_timeout: float = 15.0,
) -> KubeconfigTarget:
    """A client for the kubeconfig's (or ``context``'s) cluster, like ``kubectl`` resolves it.

    Args:
        kubeconfig: the file (or an ``os.pathsep``-separated list, like ``$KUBECONFIG``);
            ``None``: ``$KUBECONFIG``, else ``~/.kube/config``.
        context: the context to use; ``None``: the current context.
        retry: the retry budget (small: a human waits on the other side).
        request_timeout: seconds one HTTP request may take.

    Returns:
        The client and the context's namespace, name and server.

    Raises:
        KubeconfigError: no kubeconfig found, unreadable, or without ``context``; names the path.
    """
    import os

    paths = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    files = [os.path.expanduser(p) for p in paths.split(os.pathsep) if p]
    if not any(os.path.isfile(f) for f in files):
        raise KubeconfigError(
            f"no kubeconfig found at {paths} (pass --kubeconfig or set KUBECONFIG)"
        )
    joined = os.pathsep.join(files)
    config = kubernetes.client.Configuration()
    try:
        contexts, active = kubernetes.config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=joined
        )
        chosen = active
        if context is not None:
            chosen = next((c for c in contexts if c.get("name") == context), None)
            if chosen is None:
                known = ", ".join(sorted(str(c.get("name")) for c in contexts)) or "none"
                raise KubeconfigError(
                    f"context {context!r} not found in kubeconfig {paths} (contexts: {known})"
                )
        if not isinstance(chosen, dict):
            raise KubeconfigError(f"kubeconfig {paths} has no current context (pass --context)")
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=joined,
            context=str(chosen.get("name")),
            client_configuration=config,
            persist_config=False,
        )
    except KubeconfigError:
        raise
    except Exception as e:  # the edge: YAML, schema and auth-plugin errors all mean "unusable"
        raise KubeconfigError(f"cannot use kubeconfig {paths}: {e}") from e
    config.retries = 0  # our RetryPolicy retries; urllib3's own would log and multiply the wait
    settings = chosen.get("context") or {}
    namespace = settings.get("namespace") if isinstance(settings, dict) else None
    return KubeconfigTarget(
        client=KubeClient(
            kubernetes.client.ApiClient(configuration=config),
            retry=retry,
            request_timeout=request_timeout,
        ),
        namespace=str(namespace) if namespace else "default",
        context=str(chosen.get("name")),
        server=str(config.host),
    )


# ------------------------------------------------------------------ pods (analysis endpoints)

POD_RESOURCE = Resource("", "v1", "pods")
"""Pods are only read (the per-pod analysis lists a variant's ready pods), never managed."""


def ready_pod_ips(pods: Sequence[JsonObject]) -> tuple[str, ...]:
    """The IPs of the pods that serve now: Running, ``Ready=True``, not terminating (sorted).

    Pure: the edge lists the pods, this reads their status. A pod without an IP, still starting,
    failing its readiness probe or being deleted is left out (its numbers would be partial).

    Args:
        pods: Pod objects as the API returned them.

    Returns:
        The pod IPs, sorted, without duplicates.
    """
    found: set[str] = set()
    for pod in pods:
        meta, status = pod.get("metadata"), pod.get("status")
        if not isinstance(status, dict) or status.get("phase") != "Running":
            continue
        if isinstance(meta, dict) and meta.get("deletionTimestamp"):
            continue
        conds = status.get("conditions")
        ready = isinstance(conds, list) and any(
            isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
            for c in conds
        )
        ip = status.get("podIP")
        if ready and isinstance(ip, str) and ip:
            found.add(ip)
    return tuple(sorted(found))


async def list_ready_pod_ips(
    client: KubeClient, namespace: str, selector: Mapping[str, str]
) -> tuple[str, ...]:
    """The IPs of the ready pods in ``namespace`` carrying all ``selector`` labels.

    Args:
        client: the API client.
        namespace: where the pods run.
        selector: labels every pod must carry (``names.variant_selector``/``router_selector``).

    Returns:
        Ready pod IPs (see ``ready_pod_ips``).

    Raises:
        ApiRejected: the API refused (e.g. RBAC: ``list`` on ``pods``).
        ApiUnavailable: transient failures outlasted the retry budget.
    """
    query = [("labelSelector", _selector(selector))]
    return ready_pod_ips(await client._list_at(POD_RESOURCE, "pods", namespace, query))
