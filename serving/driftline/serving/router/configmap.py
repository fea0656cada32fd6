"""Watching one ConfigMap through the Kubernetes API: the pure part (no I/O).

Who uses it: :mod:`driftline.serving.router.kubewatch` (the HTTP edge) builds its URLs with
:func:`list_path` / :func:`watch_query`, decodes every LIST answer with :func:`decode_list` and
every watch line with :func:`decode_event`, and reads cluster credentials through
:func:`access_from_kubeconfig` and :func:`in_cluster_access`. ``driftline route
--table-configmap`` parses its flag with :func:`parse_ref`.

Why this shape: the router must not import the Kubernetes client (the data plane stays free of the
control plane's dependencies), and the protocol it needs is small: LIST one object by
``fieldSelector=metadata.name=...`` to get it and a ``resourceVersion``, then WATCH from that
version. Every watch line is one JSON event; what the loop does with it is decided here, so every
case (a change, a bookmark, a deletion, ``410 Gone`` as an ERROR event, garbage) is unit-tested
without a server.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Final
from urllib.parse import quote

import orjson

DEFAULT_KEY: Final = "routes.json"
"""The ConfigMap key read when the flag names none (the operator writes the table there)."""

SERVICE_ACCOUNT_DIR: Final = PurePosixPath("/var/run/secrets/kubernetes.io/serviceaccount")
"""Where Kubernetes mounts a pod's service-account token, CA bundle and namespace."""

_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN: Final = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_CONFIGMAP_KEY: Final = re.compile(r"^[-._a-zA-Z0-9]+$")


class ConfigMapError(ValueError):
    """A flag, credential file or API answer that cannot be used; the message says which and why."""


@dataclass(frozen=True, slots=True)
class ConfigMapRef:
    """One key of one ConfigMap: ``NAMESPACE/NAME[/KEY]``."""

    namespace: str
    name: str
    key: str = DEFAULT_KEY

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}/{self.key}"


def parse_ref(text: str) -> ConfigMapRef:
    """Parse ``NAMESPACE/NAME[/KEY]`` (the ``--table-configmap`` flag).

    Raises:
        ConfigMapError: naming the part that is not a valid namespace, name or key.
    """
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ConfigMapError(f"expected NAMESPACE/NAME or NAMESPACE/NAME/KEY, got {text!r}")
    namespace, name = parts[0], parts[1]
    key = parts[2] if len(parts) == 3 else DEFAULT_KEY
    if len(namespace) > 63 or not _DNS_LABEL.match(namespace):
        raise ConfigMapError(f"namespace {namespace!r} is not a DNS label (RFC 1123)")
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise ConfigMapError(f"ConfigMap name {name!r} is not a DNS subdomain (RFC 1123)")
    if len(key) > 253 or not _CONFIGMAP_KEY.match(key):
        raise ConfigMapError(f"ConfigMap key {key!r} may hold only letters, digits, '-', '_', '.'")
    return ConfigMapRef(namespace, name, key)


# ---------------------------------------------------------------------------------- credentials
@dataclass(frozen=True, slots=True)
class ClusterAccess:
    """How to reach and authenticate to the API server.

    Attributes:
        server: base URL (``https://host:port``; ``http://`` for a local emulator).
        token: a bearer token given inline, if any.
        token_file: a file holding the bearer token, re-read on every connect (projected
            service-account tokens rotate).
        ca_file: a PEM bundle that verifies the server, if any (else the system store).
        ca_data: a PEM bundle given inline, if any.
        client_cert: PEM client certificate (file path or inline PEM), with ``client_key``.
        client_key: PEM client key (file path or inline PEM).
        client_inline: whether ``client_cert``/``client_key`` are PEM text rather than paths.
        insecure: skip server certificate verification (kubeconfig ``insecure-skip-tls-verify``).
    """

    server: str
    token: str | None = None
    token_file: str | None = None
    ca_file: str | None = None
    ca_data: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    client_inline: bool = False
    insecure: bool = False


def in_cluster_access(env: Mapping[str, str]) -> ClusterAccess:
    """Credentials of the pod's service account (``KUBERNETES_SERVICE_HOST``/``_PORT``).

    Raises:
        ConfigMapError: when the environment does not name the API server.
    """
    host = env.get("KUBERNETES_SERVICE_HOST", "").strip()
    port = env.get("KUBERNETES_SERVICE_PORT", "").strip()
    if not host or not port:
        raise ConfigMapError(
            "not in a cluster: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set"
            " (give --kubeconfig or DRIFTLINE_ROUTE_KUBECONFIG outside a pod)"
        )
    if not port.isdigit():
        raise ConfigMapError(f"KUBERNETES_SERVICE_PORT must be a port number, got {port!r}")
    if ":" in host:
        host = f"[{host}]"
    return ClusterAccess(
        server=f"https://{host}:{port}",
        token_file=str(SERVICE_ACCOUNT_DIR / "token"),
        ca_file=str(SERVICE_ACCOUNT_DIR / "ca.crt"),
    )


def _named(doc: Mapping[str, object], section: str, name: str, field: str) -> Mapping[str, object]:
    entries = doc.get(section)
    if isinstance(entries, list):
        for entry in entries:
            if isinstance(entry, Mapping) and entry.get("name") == name:
                inner = entry.get(field)
                if isinstance(inner, Mapping):
                    return inner
                raise ConfigMapError(f"kubeconfig: {section}[{name!r}].{field} must be a mapping")
    raise ConfigMapError(f"kubeconfig: no {section} entry named {name!r}")


def _text(section: Mapping[str, object], key: str, where: str) -> str | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigMapError(f"kubeconfig: {where}.{key} must be a non-empty string")
    return value


def _pem(section: Mapping[str, object], key: str, where: str) -> str | None:
    value = _text(section, key, where)
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=True).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise ConfigMapError(f"kubeconfig: {where}.{key} is not base64-encoded PEM") from None


def access_from_kubeconfig(
    doc: object, base_dir: PurePosixPath, context: str | None = None
) -> ClusterAccess:
    """Credentials of one context of a decoded kubeconfig (token, token file or client cert).

    Args:
        doc: the decoded kubeconfig (YAML).
        base_dir: the kubeconfig's folder (relative file paths in it are relative to it).
        context: the context to use; the file's ``current-context`` when None.

    Raises:
        ConfigMapError: naming the missing or malformed entry (exec and auth-provider plugins
            are not supported: the router runs no external programs).
    """
    if not isinstance(doc, Mapping):
        raise ConfigMapError("kubeconfig: not a mapping at the top level")
    name = context or doc.get("current-context")
    if not isinstance(name, str) or not name:
        raise ConfigMapError("kubeconfig: no current-context (or give a context)")
    ctx = _named(doc, "contexts", name, "context")
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if not isinstance(cluster_name, str):
        raise ConfigMapError(f"kubeconfig: context {name!r} names no cluster")
    cluster = _named(doc, "clusters", cluster_name, "cluster")
    where = f"clusters[{cluster_name!r}]"
    server = _text(cluster, "server", where)
    if server is None or not server.startswith(("https://", "http://")):
        raise ConfigMapError(f"kubeconfig: {where}.server must be an http(s) URL")

    def path(value: str | None) -> str | None:
        return None if value is None else str(base_dir / value)

    access = ClusterAccess(
        server=server.rstrip("/"),
        ca_file=path(_text(cluster, "certificate-authority", where)),
        ca_data=_pem(cluster, "certificate-authority-data", where),
        insecure=cluster.get("insecure-skip-tls-verify") is True,
    )
    if not isinstance(user_name, str):
        return access
    user = _named(doc, "users", user_name, "user")
    where = f"users[{user_name!r}]"
    for unsupported in ("exec", "auth-provider"):
        if user.get(unsupported) is not None:
            raise ConfigMapError(
                f"kubeconfig: {where}.{unsupported} is not supported; use a token or a client"
                " certificate"
            )
    cert_data, key_data = (
        _pem(user, "client-certificate-data", where),
        _pem(user, "client-key-data", where),
    )
    cert_file, key_file = (
        path(_text(user, "client-certificate", where)),
        path(_text(user, "client-key", where)),
    )
    inline = cert_data is not None or key_data is not None
    cert, key = (cert_data, key_data) if inline else (cert_file, key_file)
    if (cert is None) != (key is None):
        raise ConfigMapError(f"kubeconfig: {where} needs both a client certificate and its key")
    return ClusterAccess(
        server=access.server,
        token=_text(user, "token", where),
        token_file=path(_text(user, "tokenFile", where)),
        ca_file=access.ca_file,
        ca_data=access.ca_data,
        client_cert=cert,
        client_key=key,
        client_inline=inline,
        insecure=access.insecure,
    )


# ------------------------------------------------------------------------------------ protocol
def list_path(ref: ConfigMapRef) -> str:
    """The collection path LIST and WATCH use (one namespace's ConfigMaps)."""
    return f"/api/v1/namespaces/{quote(ref.namespace)}/configmaps"


def watch_query(ref: ConfigMapRef, resource_version: str | None, timeout_s: int) -> dict[str, str]:
    """Query parameters of LIST (``resource_version`` None) or of WATCH from a version.

    The field selector narrows both to the one object, so RBAC can grant ``resourceNames`` and
    the stream carries nothing else; bookmarks keep the version fresh on a quiet object, and the
    server ends the stream after ``timeout_s`` (the loop then re-watches from the last version).
    """
    query = {"fieldSelector": f"metadata.name={ref.name}"}
    if resource_version is not None:
        query.update(
            watch="true",
            resourceVersion=resource_version,
            allowWatchBookmarks="true",
            timeoutSeconds=str(timeout_s),
        )
    return query


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a LIST (or an ADDED/MODIFIED event) says about the object.

    Attributes:
        resource_version: the version to watch from next.
        content: the table text under the key; None when the object or the key is absent.
        problem: why ``content`` is None, for the log.
    """

    resource_version: str
    content: str | None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Bookmark:
    """A watch bookmark: nothing changed, but watch from ``resource_version`` next."""

    resource_version: str


@dataclass(frozen=True, slots=True)
class Expired:
    """``410 Gone`` (or another ERROR event): the version is too old; LIST again."""

    message: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """A line that says nothing usable (another object, a malformed event); the reason is logged."""

    reason: str


Event = Snapshot | Bookmark | Expired | Ignored


def _content(obj: Mapping[str, object], ref: ConfigMapRef) -> tuple[str | None, str | None]:
    data = obj.get("data")
    if data is None:
        return None, f"ConfigMap {ref.namespace}/{ref.name} has no data"
    if not isinstance(data, Mapping):
        return None, f"ConfigMap {ref.namespace}/{ref.name}: data is not a mapping"
    value = data.get(ref.key)
    if value is None:
        keys = sorted(str(k) for k in data)
        return None, f"ConfigMap {ref.namespace}/{ref.name} has no key {ref.key!r} (keys: {keys})"
    if not isinstance(value, str):
        return None, f"ConfigMap {ref.namespace}/{ref.name}: data.{ref.key} is not a string"
    return value, None


def _version(obj: Mapping[str, object]) -> str | None:
    meta = obj.get("metadata")
    if isinstance(meta, Mapping):
        rv = meta.get("resourceVersion")
        if isinstance(rv, str) and rv:
            return rv
    return None


def _name(obj: Mapping[str, object]) -> str | None:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return name if isinstance(name, str) else None


def decode_list(body: bytes, ref: ConfigMapRef) -> Snapshot:
    """Decode a LIST answer: the object's table (or why there is none) and the list's version.

    Raises:
        ConfigMapError: when the body is not a ConfigMapList with a ``resourceVersion``.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ConfigMapError(f"LIST answer is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        raise ConfigMapError("LIST answer has no items list")
    rv = _version(doc)
    if rv is None:
        raise ConfigMapError("LIST answer has no metadata.resourceVersion")
    for item in doc["items"]:
        if isinstance(item, dict) and _name(item) == ref.name:
            content, problem = _content(item, ref)
            return Snapshot(rv, content, problem)
    return Snapshot(rv, None, f"ConfigMap {ref.namespace}/{ref.name} does not exist")


def decode_event(line: bytes, ref: ConfigMapRef) -> Event:
    """Decode one watch line into what the loop should do next.

    ``ADDED``/``MODIFIED`` of the object give a :class:`Snapshot` with its table; ``DELETED``
    gives a :class:`Snapshot` without content (the router keeps its last good table); a
    ``BOOKMARK`` only moves the version; an ``ERROR`` (``410 Gone`` when the version is too old,
    or anything else the server reports in-stream) means LIST again.
    """
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return Ignored(f"watch line is not JSON: {exc}")
    if not isinstance(doc, dict):
        return Ignored("watch line is not an object")
    kind, obj = doc.get("type"), doc.get("object")
    if not isinstance(obj, dict):
        return Ignored(f"watch event {kind!r} has no object")
    if kind == "ERROR":
        code, message = obj.get("code"), obj.get("message")
        return Expired(f"watch error {code}: {message}")
    rv = _version(obj)
    if rv is None:
        return Ignored(f"watch event {kind!r} has no metadata.resourceVersion")
    if kind == "BOOKMARK":
        return Bookmark(rv)
    if _name(obj) != ref.name:
        return Ignored(f"watch event for another object {_name(obj)!r}")
    if kind in ("ADDED", "MODIFIED"):
        content, problem = _content(obj, ref)
        return Snapshot(rv, content, problem)
    if kind == "DELETED":
        return Snapshot(rv, None, f"ConfigMap {ref.namespace}/{ref.name} was deleted")
    return Ignored(f"unknown watch event type {kind!r}")


def next_backoff(previous_s: float, base_s: float, max_s: float) -> float:
    """The delay before the next reconnect: doubling from ``base_s``, capped at ``max_s``."""
    if previous_s <= 0:
        return base_s
    return min(max_s, previous_s * 2)
