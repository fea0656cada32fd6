# Vendored from the team note test-infrastructure.md (Appendix A); long lines kept as written.
# ruff: noqa: E501, SIM401
"""
KubernetesEmulatorPlus: a thin subclass of kmock.KubernetesEmulator (kmock 0.8) that adds the
API-server behaviours kopf and typical operators rely on, which kmock itself does not emulate:

* server-filled metadata: uid, resourceVersion (cluster-wide counter), creationTimestamp,
  generation (bumped on non-metadata/status changes), namespace from the URL, generateName;
* 201 on create, 409 AlreadyExists, 404 on unknown objects;
* PATCH: merge-patch+json (RFC 7386), json-patch+json (failed `test` op -> 422),
  strategic-merge-patch+json (APPROXIMATED as merge-patch: lists are replaced, not merged),
  apply-patch+yaml (APPROXIMATED as merge-patch + create-if-absent; no field managers);
* PUT (replace) with optimistic concurrency: stale metadata.resourceVersion -> 409 Conflict;
  merge-patch carrying a stale metadata.resourceVersion -> 409 Conflict;
* status subresource semantics when the resource declares subresources={'status'}:
  the main endpoint ignores .status, /status only changes .status;
* no-op writes do not bump resourceVersion and emit no watch event;
* LIST/WATCH: labelSelector (=, ==, !=, in, notin, exists, !exists), fieldSelector (=, ==, !=
  on any dotted path, e.g. metadata.name), list metadata.resourceVersion, kind=<Kind>List;
* WATCH: ?resourceVersion=N replays only events newer than N (from an in-memory event log),
  no rv / rv=0 sends synthetic ADDED for current objects; no events lost between snapshot and
  stream; ?timeoutSeconds=N closes the stream server-side;
* DELETE: finalizers -> deletionTimestamp, removed when the last finalizer goes (as kmock does);
  DeleteOptions.preconditions (uid/resourceVersion) -> 409; DELETE on a collection URL;
* ownerReferences garbage collection (synchronous, background-style; Orphan honoured):
  when an owner is really removed, dependents whose only live owner it was are deleted
  (respecting their finalizers); others just lose that ownerReference;
* kmock bug fixes: /api/v1/namespaces[/NAME] URLs (500/404 in kmock 0.8), core discovery
  groupVersion ("/v1" -> "v1"), random preferredVersion of multi-version groups (now GA > beta >
  alpha), shortNames/categories leaking into "x/status" discovery entries,
  O(1) request dispatch (kmock 0.8 slows down linearly with the
  number of requests already served);
* test-defined error reactions (e.g. `h['post', res][:1] << 500`) leave the stored state untouched
  (plain kmock applies the write and then answers with the error);
* seed(resource, body): pre-populate objects with server-filled metadata (before clients start).

Not emulated: admission/validation/defaulting/OpenAPI schemas, CRD objects driving discovery,
automatic namespaces (seed them) and namespace existence checks, RBAC/authn, foreground deletion,
server-side-apply field ownership, strategic list merging, subresources other than /status
(e.g. /scale -> 404), watch BOOKMARKs and 410 Gone, pagination (limit/continue), any controllers
(Deployments never get ReplicaSets, pods or status).
"""

import asyncio
import copy
import datetime
import math
import random
import re
import string
import uuid
from collections.abc import AsyncIterator
from typing import Any

import attrs
import jsonpatch
import jsonpointer
import kmock
import yaml
from kmock._internal import parsing as _kmock_parsing

# kmock 0.8 parses /api/v1/namespaces[/NAME] as "the namespace prefix" and crashes (HTTP 500, ValueError)
# or loses the plural, so Namespace objects cannot be listed/watched/read: kopf's namespace observer
# (any --namespace=... run) then fails. Route these URLs to the cluster-scoped resource v1/namespaces.
_NAMESPACES_PATH = re.compile(r"^/api/v1/namespaces(?:/([^/]+)(?:/(status|finalize))?)?/?$")
_original_parse_path = _kmock_parsing.parse_path


def _parse_path(path: str) -> Any:
    if m := _NAMESPACES_PATH.match(path):
        return _kmock_parsing.ParsedPath(
            group="", version="v1", plural="namespaces", name=m[1], subresource=m[2]
        )
    return _original_parse_path(path)


_kmock_parsing.parse_path = (
    _parse_path  # process-wide; affects plain kmock instances too (only fixes them)
)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc7386_merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch as the RFC's pseudo-code states it (copying freely).

    Deliberately naive: it is the emulator's and also the reference that the operator's own
    copy-once ``driftline.operator.manifests.merge_patch`` is checked against.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = rfc7386_merge(result.get(key), value)
    return result


def _error(status: int, reason: str, message: str) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=status, reason=reason, message=message, details={})


_SEL_SET = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_SEL_EQ = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)\s*$")
_SEL_NOT = re.compile(r"^\s*!\s*([\w./-]+)\s*$")
_SEL_HAS = re.compile(r"^\s*([\w./-]+)\s*$")


def parse_selector(text: str) -> list[tuple[str, str, set[str]]]:
    reqs: list[tuple[str, str, set[str]]] = []
    for part in re.findall(r"(?:[^,(]|\([^)]*\))+", text or ""):
        if not part.strip():
            continue
        if m := _SEL_SET.match(part):
            reqs.append((m[1], m[2], {v.strip() for v in m[3].split(",") if v.strip()}))
        elif m := _SEL_EQ.match(part):
            reqs.append((m[1], "!=" if m[2] == "!=" else "=", {m[3]}))
        elif m := _SEL_NOT.match(part):
            reqs.append((m[1], "!exists", set()))
        elif m := _SEL_HAS.match(part):
            reqs.append((m[1], "exists", set()))
        else:
            raise _error(400, "BadRequest", f"unable to parse requirement: {part!r}")
    return reqs


def match_selector(values: dict[str, Any], reqs: list[tuple[str, str, set[str]]]) -> bool:
    for key, op, vals in reqs:
        has, val = key in values, values.get(key)
        val = None if val is None else str(val)
        if op == "=" and (not has or val not in vals):
            return False
        if op == "!=" and has and val in vals:
            return False
        if op == "in" and (not has or val not in vals):
            return False
        if op == "notin" and has and val in vals:
            return False
        if op == "exists" and not has:
            return False
        if op == "!exists" and has:
            return False
    return True


def _fields(obj: dict[str, Any], reqs: list[tuple[str, str, set[str]]]) -> dict[str, Any]:
    """Flatten only the dotted paths used by a field selector."""
    out: dict[str, Any] = {}
    for key, _, _ in reqs:
        cur: Any = obj
        for part in key.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur is not None:
            out[key] = cur
    return out


@attrs.define(kw_only=True)
class KubernetesEmulatorPlus(kmock.KubernetesEmulator):
    _rv: int = attrs.field(default=0, init=False)
    _log: list[tuple[int, Any, dict[str, Any]]] = attrs.field(factory=list, init=False)
    _results: dict[Any, tuple[int, Any]] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        # Requests that kmock does not classify (action=None): PUT on objects, DELETE on collections.
        self.fallback[kmock.method.PUT] << self._serve_result
        self.fallback[kmock.method.DELETE] << self._serve_result
        self.fallback[kmock.method.PATCH] << self._serve_result

    # ---------------------------------------------------------------- helpers
    def _bump(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _info(self, resource: Any) -> Any:
        return self._resources[resource] if resource in self._resources else None

    def _has_status_subresource(self, resource: Any) -> bool:
        info = self._info(resource)
        return bool(info is not None and "status" in info.subresources)

    def _live(self, key: tuple[Any, Any, Any]) -> Any:
        obj = self._objects._objects.get(key)  # NB: kmock's ObjectsArray keys by resource objects
        return None if obj is None or obj.deleted else obj

    async def _emit(self, resource: Any, etype: str, body: dict[str, Any]) -> None:
        event = {"type": etype, "object": copy.deepcopy(body)}
        self._log.append((int(body["metadata"]["resourceVersion"]), resource, event))
        await self._buses[resource].put(event)

    def seed(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        """Pre-populate an object (before clients connect) with server-filled metadata."""
        res = kmock.resource(resource)
        body = copy.deepcopy(body)
        meta = body.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = self._bump()
        self._objects[res, meta.get("namespace"), meta["name"]] = body
        self._log.append((self._rv, res, {"type": "ADDED", "object": copy.deepcopy(body)}))
        return body

    # ---------------------------------------------------------------- mutations
    async def _handle(self, request: Any) -> Any:
        res = request.resource
        if (
            res is not None
            and res.plural is not None
            and request.method in ("POST", "PUT", "PATCH", "DELETE")
        ):
            if request.subresource not in (None, "status"):
                raise _error(
                    404, "NotFound", f"subresource {request.subresource!r} is not emulated"
                )
            async with self._lock:
                if self._intercepted(request):
                    pass  # a test-defined error reaction answers it: leave the state untouched
                elif request.method == "POST" and request.name is None:
                    self._results[request] = (201, await self._create(request, request.data))
                elif request.method == "PATCH" and request.name is not None:
                    self._results[request] = (200, await self._patch(request))
                elif request.method == "PUT" and request.name is not None:
                    self._results[request] = (200, await self._replace(request))
                elif request.method == "DELETE" and request.name is not None:
                    key = (res, request.namespace, request.name)
                    self._results[request] = (200, await self._delete(key, request.data))
                elif request.method == "DELETE":
                    self._results[request] = (200, await self._delete_collection(request))
        # Skip KubernetesEmulator._handle (its naive storage); go to the DSL/reactions/fallbacks.
        return await self._dispatch(request)

    def _sees(self, view: Any, request: Any) -> bool:
        """O(1) version of kmock's `request in view` for plain filter chains (kmock 0.8 iterates
        over ALL past requests there, so every request gets slower as the test goes on)."""
        if view is self:
            return True
        if type(view) is kmock.Filter:
            return bool(view.criteria(request)) and self._sees(view._source, request)
        if type(view) is kmock.Priority:
            return self._sees(view._source, request)
        return request in view  # slicers, groups, exclusions, streams: exact but slow

    def _ordered_payloads(self) -> list[Any]:
        # The same ordering as kmock's RawHandler._handle().
        priorities = [payload.priorities for payload in self._payloads]
        max_length = max(len(priority) for priority in priorities) if priorities else 0
        priorities = [tuple(-p for p in priority) for priority in priorities]
        priorities = [priority + (0,) * (max_length - len(priority)) for priority in priorities]
        indexes = sorted(range(len(priorities)), key=lambda index: priorities[index])
        return [self._payloads[index] for index in indexes]

    def _intercepted(self, request: Any) -> bool:
        """Will a test-defined reaction answer this write with an HTTP error (e.g. `kmock['post', res][:1] << 500`)?
        Then the write must not change the stored state (plain kmock stores it anyway)."""
        for payload in self._ordered_payloads():
            if payload._disabled.is_set() or not self._sees(payload._source, request):
                continue
            if any(p == -math.inf for p in payload.priorities):
                return False  # reached the emulator's own fallbacks
            if payload.response.status is not None:
                return payload.response.status >= 400
        return False

    async def _dispatch(self, request: Any) -> Any:
        # Same as kmock's RawHandler._handle(), with the O(1) membership check above.
        for payload in self._ordered_payloads():
            if not payload._disabled.is_set() and self._sees(payload._source, request):
                try:
                    return await payload(request)
                except kmock.ReactionMismatchError:
                    payload._disabled.set()
                except NotImplementedError:
                    pass
        raise NotImplementedError(
            "Undefined server behaviour: no reaction matching the request is defined."
        )

    async def _create(self, request: Any, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise _error(400, "BadRequest", "the body of the request must be a JSON object")
        res = request.resource
        body = copy.deepcopy(data)
        meta = body.setdefault("metadata", {})
        if request.namespace:
            meta["namespace"] = request.namespace
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                random.choices(string.ascii_lowercase + string.digits, k=5)
            )
        if not meta.get("name"):
            raise _error(
                422, "Invalid", "metadata.name: Required value: name or generateName is required"
            )
        key = (res, meta.get("namespace"), meta["name"])
        if self._live(key) is not None:
            raise _error(409, "AlreadyExists", f'{res.plural} "{meta["name"]}" already exists')
        info = self._info(res)
        body.setdefault("apiVersion", f"{res.group}/{res.version}" if res.group else res.version)
        if info is not None and info.kind:
            body.setdefault("kind", info.kind)
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(field, None)
        meta.update(
            uid=str(uuid.uuid4()),
            creationTimestamp=_now(),
            generation=1,
            resourceVersion=self._bump(),
        )
        if self._has_status_subresource(res):
            body.pop("status", None)
        if key in self._objects._objects:
            self._objects._objects[key].history.append(body)
        else:
            self._objects[key] = body
        await self._emit(res, "ADDED", body)
        return body

    async def _patch(self, request: Any) -> dict[str, Any]:
        res = request.resource
        key = (res, request.namespace, request.name)
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        obj = self._live(key)
        if obj is None:
            if ctype == "application/apply-patch+yaml":  # SSA creates absent objects
                return await self._create(request, yaml.safe_load(request.text) or {})
            raise _error(404, "NotFound", f'{res.plural} "{request.name}" not found')
        old = copy.deepcopy(obj.raw)
        if ctype == "application/json-patch+json" or isinstance(request.data, list):
            try:
                new = jsonpatch.apply_patch(old, request.data, in_place=False)
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as e:
                raise _error(
                    422,
                    "Invalid",
                    f"the server rejected our request due to an error in our request: {e}",
                ) from e
        else:
            data = (
                yaml.safe_load(request.text)
                if ctype == "application/apply-patch+yaml"
                else request.data
            )
            if not isinstance(data, dict):
                raise _error(400, "BadRequest", "the patch must be a JSON object")
            want_rv = (data.get("metadata") or {}).get("resourceVersion")
            if want_rv is not None and str(want_rv) != old["metadata"]["resourceVersion"]:
                raise _error(
                    409,
                    "Conflict",
                    "the object has been modified; please apply your changes to the latest version and try again",
                )
            new = rfc7386_merge(old, data)
        return await self._write(request, key, old, new)

    async def _replace(self, request: Any) -> dict[str, Any]:
        res = request.resource
        key = (res, request.namespace, request.name)
        obj = self._live(key)
        if obj is None:
            raise _error(404, "NotFound", f'{res.plural} "{request.name}" not found')
        if not isinstance(request.data, dict):
            raise _error(400, "BadRequest", "the body of the request must be a JSON object")
        old = copy.deepcopy(obj.raw)
        want_rv = (request.data.get("metadata") or {}).get("resourceVersion")
        if want_rv is not None and str(want_rv) != old["metadata"]["resourceVersion"]:
            raise _error(
                409,
                "Conflict",
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        return await self._write(request, key, old, copy.deepcopy(request.data))

    async def _write(
        self, request: Any, key: tuple[Any, Any, Any], old: dict[str, Any], new: dict[str, Any]
    ) -> dict[str, Any]:
        res = key[0]
        if self._has_status_subresource(res):
            if request.subresource == "status":  # only .status may change via /status
                status = new.get("status")
                new = copy.deepcopy(old)
                new.pop("status", None)
                if status is not None:
                    new["status"] = status
            else:  # .status is ignored via the main endpoint
                new.pop("status", None)
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
        meta = new.setdefault("metadata", {})
        for field in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "namespace",
            "name",
            "generation",
            "resourceVersion",
        ):  # server-owned
            meta.pop(field, None)
            if field in old["metadata"]:
                meta[field] = old["metadata"][field]
        if new == old:
            return old  # no-op: no new resourceVersion, no watch event
        if {k: v for k, v in new.items() if k not in ("metadata", "status")} != {
            k: v for k, v in old.items() if k not in ("metadata", "status")
        }:
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        meta["resourceVersion"] = self._bump()
        self._objects._objects[key].history.append(new)
        await self._emit(res, "MODIFIED", new)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            await self._remove(key)
        return new

    async def _delete(
        self, key: tuple[Any, Any, Any], options: Any, policy: str | None = None
    ) -> dict[str, Any]:
        res = key[0]
        obj = self._live(key)
        if obj is None:
            raise _error(404, "NotFound", f'{res.plural} "{key[2]}" not found')
        body = copy.deepcopy(obj.raw)
        options = options if isinstance(options, dict) else {}
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != body["metadata"].get("uid"):
            raise _error(409, "Conflict", "Precondition failed: UID in precondition does not match")
        if pre.get("resourceVersion") and pre["resourceVersion"] != body["metadata"].get(
            "resourceVersion"
        ):
            raise _error(
                409,
                "Conflict",
                "Precondition failed: ResourceVersion in precondition does not match",
            )
        policy = options.get("propagationPolicy") or policy
        if body["metadata"].get("finalizers"):
            if not body["metadata"].get("deletionTimestamp"):
                body["metadata"].update(
                    deletionTimestamp=_now(),
                    deletionGracePeriodSeconds=0,
                    resourceVersion=self._bump(),
                )
                self._objects._objects[key].history.append(body)
                await self._emit(res, "MODIFIED", body)
            return body
        return await self._remove(key, policy=policy)

    async def _remove(self, key: tuple[Any, Any, Any], policy: str | None = None) -> dict[str, Any]:
        res = key[0]
        obj = self._objects._objects[key]
        body = copy.deepcopy(obj.raw)
        body["metadata"]["resourceVersion"] = self._bump()
        obj.history.append(None)  # kmock's soft-deletion marker (history is kept for assertions)
        await self._emit(res, "DELETED", body)
        if policy != "Orphan":
            await self._collect_garbage(body["metadata"].get("uid"))
        return body

    async def _collect_garbage(self, owner_uid: str | None) -> None:
        if not owner_uid:
            return
        live_uids = {
            o.raw["metadata"].get("uid") for o in self._objects._objects.values() if not o.deleted
        }
        for key, obj in list(self._objects._objects.items()):
            if obj.deleted:
                continue
            refs = obj.raw.get("metadata", {}).get("ownerReferences") or []
            if not any(ref.get("uid") == owner_uid for ref in refs):
                continue
            if any(ref.get("uid") != owner_uid and ref.get("uid") in live_uids for ref in refs):
                old = copy.deepcopy(obj.raw)
                new = copy.deepcopy(old)
                new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != owner_uid]
                await self._write(kmock.Request(resource=key[0]), key, old, new)
            else:
                await self._delete(key, None)

    async def _delete_collection(self, request: Any) -> dict[str, Any]:
        labels = parse_selector(request.params.get("labelSelector", ""))
        fields = parse_selector(request.params.get("fieldSelector", ""))
        deleted = []
        for key, obj in list(self._objects._objects.items()):
            if not obj.deleted and self._matches(
                request, key, obj.raw, labels, fields, by_name=False
            ):
                deleted.append(await self._delete(key, request.data))
        res = request.resource
        return {
            "apiVersion": f"{res.group}/{res.version}" if res.group else res.version,
            "kind": f"{self._kind(res)}List",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": deleted,
        }

    # ---------------------------------------------------------------- reads
    def _kind(self, res: Any) -> str:
        info = self._info(res)
        return info.kind if info is not None and info.kind else res.plural.capitalize()

    def _matches(
        self,
        request: Any,
        key: tuple[Any, Any, Any],
        body: dict[str, Any],
        labels: list,
        fields: list,
        by_name: bool = True,
    ) -> bool:
        res, namespace, name = key
        if res != request.resource:
            return False
        if request.namespace is not None and namespace != request.namespace:
            return False
        if by_name and request.name is not None and name != request.name:
            return False
        meta = body.get("metadata", {})
        return match_selector(meta.get("labels") or {}, labels) and match_selector(
            _fields(body, fields), fields
        )

    async def _serve_result(self, request: Any) -> Any:
        if request not in self._results:
            raise NotImplementedError  # not ours: let other reactions/fallbacks respond
        status, body = self._results.pop(request)
        return kmock.Response(status=status, payload=body)

    async def _serve_create(self, request: Any) -> Any:
        return await self._serve_result(request)

    async def _serve_update(self, request: Any) -> Any:
        return await self._serve_result(request)

    async def _serve_delete(self, request: Any) -> Any:
        return await self._serve_result(request)

    async def _serve_list(self, request: Any) -> Any:
        if request.resource not in self._get_resources():
            raise kmock.KubernetesResourceNotFoundError()
        labels = parse_selector(request.params.get("labelSelector", ""))
        fields = parse_selector(request.params.get("fieldSelector", ""))
        res, ns = request.resource, request.namespace
        async with self._lock:
            items = [  # resource and namespace first: cheap, and most objects are not wanted
                copy.deepcopy(obj.raw)
                for key, obj in self._objects._objects.items()
                if key[0] == res
                and (ns is None or key[1] == ns)
                and not obj.deleted
                and self._matches(request, key, obj.raw, labels, fields)
            ]
            rv = str(self._rv)
        res = request.resource
        return {
            "apiVersion": f"{res.group}/{res.version}" if res.group else res.version,
            "kind": f"{self._kind(res)}List",
            "metadata": {"resourceVersion": rv},
            "items": items,
        }

    async def _serve_watch(self, request: Any) -> AsyncIterator[Any]:
        yield b""  # send the headers now
        res = request.resource
        labels = parse_selector(request.params.get("labelSelector", ""))
        fields = parse_selector(request.params.get("fieldSelector", ""))
        since = request.params.get("resourceVersion", "")
        timeout = request.params.get("timeoutSeconds")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(timeout) if timeout else None
        bus = self._buses[res]
        async with self._lock:  # snapshot + bus mark atomically: no lost events
            marker = await bus.mark()
            if since.isdigit() and int(since) > 0:
                replay = [ev for rv, r, ev in self._log if r == res and rv > int(since)]
            else:
                replay = [
                    {"type": "ADDED", "object": copy.deepcopy(obj.raw)}
                    for key, obj in self._objects._objects.items()
                    if key[0] == res and not obj.deleted
                ]
        stream = bus.stream(since=marker)
        try:
            for event in replay:
                obj = event["object"]
                key = (res, obj["metadata"].get("namespace"), obj["metadata"].get("name"))
                if self._matches(request, key, obj, labels, fields):
                    yield event
            while True:
                if deadline is None:
                    event = await anext(stream)
                else:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        event = await asyncio.wait_for(anext(stream), remaining)
                    except TimeoutError:
                        break
                obj = event["object"]
                key = (res, obj["metadata"].get("namespace"), obj["metadata"].get("name"))
                if self._matches(request, key, obj, labels, fields):
                    yield event
        finally:
            await stream.aclose()
            await bus.unmark(marker)

    @staticmethod
    def _version_priority(version: str) -> tuple[int, int, int]:
        # Kubernetes ordering: GA > beta > alpha, then by the numbers (v2 > v1, v1beta2 > v1beta1).
        m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
        if not m:
            return (0, 0, 0)
        return ({None: 3, "beta": 2, "alpha": 1}[m[2]], int(m[1]), int(m[3] or 0))

    def _fix_group(self, group: dict[str, Any]) -> dict[str, Any]:
        # kmock 0.8 takes list(set_of_versions)[0] as preferredVersion: random per process (hash seed).
        versions = sorted(
            group["versions"], key=lambda v: self._version_priority(v["version"]), reverse=True
        )
        return dict(group, versions=versions, preferredVersion=versions[0])

    async def _serve_apis(self, request: Any) -> Any:
        data = await super()._serve_apis(request)
        data["groups"] = sorted(
            (self._fix_group(g) for g in data["groups"]), key=lambda g: g["name"]
        )
        return data

    async def _serve_group(self, request: Any) -> Any:
        return self._fix_group(await super()._serve_group(request))

    async def _serve_version(self, request: Any) -> Any:
        data = await super()._serve_version(request)
        # kmock 0.8 renders groupVersion "/v1" for the core API; real servers say "v1".
        if request.resource is not None and request.resource.group == "":
            data["groupVersion"] = request.resource.version
        # kmock 0.8 copies shortNames/categories into "plural/status" entries: `kubectl get <category>`
        # then fails ("doesn't have a resource type widgets/status"). Real servers leave them empty.
        for entry in data.get("resources", []):
            if "/" in entry.get("name", ""):
                entry["shortNames"], entry["categories"] = [], []
                entry["verbs"] = ["get", "patch", "update"]
        return data
