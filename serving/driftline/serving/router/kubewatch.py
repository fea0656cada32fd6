"""Watch one ConfigMap through the Kubernetes API and hand every new table to the router.

Who uses it: ``driftline route --table-configmap NAMESPACE/NAME[/KEY]``
(:mod:`driftline.serving.router.main`) reads the first table with :meth:`ConfigMapWatch.read` and
then runs :meth:`ConfigMapWatch.run` beside the servers. The decisions (URLs, decoding every LIST
answer and watch line, backoff) are pure functions in :mod:`driftline.serving.router.configmap`;
this module is the thin HTTP edge over ``httpx``.

Why through the API and not a mounted file: the kubelet refreshes ConfigMap volumes only on its
sync period (a minute or more), while the router promises a change live within 2 s. The loop:

- LIST ``?fieldSelector=metadata.name=NAME`` gives the object and a ``resourceVersion``;
- WATCH from that version (bookmarks on, a server-side timeout) streams its changes; each line
  moves the version, so a stream that ends (timeout, a dropped connection, an API-server restart)
  resumes from where it was without missing a change;
- ``410 Gone`` (as an HTTP status or an in-stream ERROR event) means the version is too old:
  LIST again; any other failure waits a doubling backoff (capped) and reconnects;
- a table that is absent (object or key missing, object deleted) is logged and counted; the router
  keeps its last good table. Content equal to the last one delivered is not re-applied.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath

import httpx
import yaml

from driftline.serving.router.configmap import (
    ClusterAccess,
    ConfigMapError,
    ConfigMapRef,
    Expired,
    Ignored,
    Snapshot,
    access_from_kubeconfig,
    decode_event,
    decode_list,
    in_cluster_access,
    list_path,
    next_backoff,
    watch_query,
)

log = logging.getLogger(__name__)

_MIN_HEALTHY_WATCH_S = 1.0
"""A watch that lasted at least this long (or carried an event) resets the backoff."""


def load_access(kubeconfig: Path | None, env: Mapping[str, str]) -> ClusterAccess:
    """Credentials from ``kubeconfig`` when given, else the pod's service account.

    Raises:
        ConfigMapError: the kubeconfig is unreadable or malformed, or no cluster is reachable.
    """
    if kubeconfig is None:
        return in_cluster_access(env)
    try:
        doc = yaml.safe_load(kubeconfig.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigMapError(f"kubeconfig {kubeconfig}: {exc}") from None
    return access_from_kubeconfig(doc, PurePosixPath(kubeconfig.resolve().parent))


def _ssl_context(access: ClusterAccess) -> ssl.SSLContext | bool:
    if access.insecure:
        return False
    try:
        context = ssl.create_default_context(cafile=access.ca_file, cadata=access.ca_data)
        if access.client_cert is not None and access.client_key is not None:
            if access.client_inline:  # ssl loads chains from files only: a private temp dir
                with tempfile.TemporaryDirectory() as folder:
                    cert, key = Path(folder, "tls.crt"), Path(folder, "tls.key")
                    for path, text in ((cert, access.client_cert), (key, access.client_key)):
                        path.write_text(text)
                        path.chmod(0o600)
                    context.load_cert_chain(cert, key)
            else:
                context.load_cert_chain(access.client_cert, access.client_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigMapError(f"TLS setup for {access.server}: {exc}") from None
    return context


class _HttpStatus(Exception):
    """The API server answered a status the loop cannot use (the message has its Status text)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def _status_message(body: bytes) -> str:
    text = body[:500].decode("utf-8", "replace").strip()
    return text or "(no body)"


class ConfigMapWatch:
    """LIST then WATCH one ConfigMap key; one per router process."""

    def __init__(
        self,
        access: ClusterAccess,
        ref: ConfigMapRef,
        *,
        watch_timeout_s: int = 300,
        connect_timeout_s: float = 5.0,
        backoff_base_s: float = 0.2,
        backoff_max_s: float = 10.0,
        on_error: Callable[[str], object] = lambda reason: None,
    ) -> None:
        """Prepare the client (no I/O yet).

        Args:
            access: server and credentials.
            ref: the ConfigMap key holding the table.
            watch_timeout_s: the server ends each watch after this long; the loop re-watches.
            connect_timeout_s: connect (and LIST) timeout.
            backoff_base_s: first reconnect delay after a failure; doubles, up to the max.
            backoff_max_s: ceiling of the reconnect delay.
            on_error: called with a reason (``connect``, ``http``, ``protocol``, ``expired``,
                ``missing``) for every failure, for the metrics.

        Raises:
            ConfigMapError: when the TLS material cannot be loaded.
        """
        self.access = access
        self.ref = ref
        self.watch_timeout_s = watch_timeout_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._on_error = on_error
        self._last_content: str | None = None
        self.version: str | None = None
        """The ``resourceVersion`` the next watch starts from (None: LIST first)."""
        self._timeout = httpx.Timeout(connect_timeout_s, read=connect_timeout_s * 2)
        self._stream_timeout = httpx.Timeout(connect_timeout_s, read=watch_timeout_s + 30.0)
        self._client = httpx.AsyncClient(
            base_url=access.server, verify=_ssl_context(access), trust_env=False
        )

    def _headers(self) -> dict[str, str]:
        token = self.access.token
        if self.access.token_file is not None:  # re-read: projected tokens rotate
            try:
                token = Path(self.access.token_file).read_text().strip()
            except OSError as exc:
                raise ConfigMapError(f"token file {self.access.token_file}: {exc}") from None
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def read(self) -> Snapshot:
        """One LIST: the object's table (or why there is none) and the version to watch from.

        Raises:
            ConfigMapError: the answer is not a usable list.
            httpx.HTTPError: the server is unreachable.
            _HttpStatus: the server refused (e.g. 403 without RBAC).
        """
        response = await self._client.get(
            list_path(self.ref),
            params=watch_query(self.ref, None, self.watch_timeout_s),
            headers=self._headers(),
            timeout=self._timeout,
        )
        if response.status_code != 200:
            raise _HttpStatus(response.status_code, _status_message(response.content))
        return decode_list(response.content, self.ref)

    def _deliver(self, snapshot: Snapshot, on_change: Callable[[str], object]) -> None:
        if snapshot.content is None:
            self._on_error("missing")
            log.warning("%s; keeping the live route table", snapshot.problem)
            return
        if snapshot.content == self._last_content:
            return
        self._last_content = snapshot.content
        try:
            on_change(snapshot.content)
        except Exception as exc:  # a bad table is the router's to report; keep watching
            log.debug("route table from %s not applied: %s", self.ref, exc)

    def seen(self, content: str) -> None:
        """Record ``content`` as already applied (the table the router started with)."""
        self._last_content = content

    async def _watch(self, on_change: Callable[[str], object]) -> None:
        """Stream events from ``self.version``, moving it with every event.

        The version moves also when the stream then fails, so the next watch resumes there; on
        410 it becomes None (LIST again).
        """
        assert self.version is not None
        params = watch_query(self.ref, self.version, self.watch_timeout_s)
        async with self._client.stream(
            "GET",
            list_path(self.ref),
            params=params,
            headers=self._headers(),
            timeout=self._stream_timeout,
        ) as response:
            if response.status_code == 410:
                self._on_error("expired")
                log.info(
                    "watch of %s: version %s expired (410); listing again", self.ref, self.version
                )
                self.version = None
                return
            if response.status_code != 200:
                raise _HttpStatus(response.status_code, _status_message(await response.aread()))
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                event = decode_event(line.encode(), self.ref)
                if isinstance(event, Expired):
                    self._on_error("expired")
                    log.info("watch of %s: %s; listing again", self.ref, event.message)
                    self.version = None
                    return
                if isinstance(event, Ignored):
                    log.debug("watch of %s: %s", self.ref, event.reason)
                    continue
                self.version = event.resource_version
                if isinstance(event, Snapshot):
                    self._deliver(event, on_change)

    async def run(self, on_change: Callable[[str], object], version: str | None) -> None:
        """Watch until cancelled, calling ``on_change(table_text)`` for every new table.

        Args:
            on_change: validates and applies a table (exceptions are logged, never fatal).
            version: the ``resourceVersion`` of the table already applied (None: LIST first).
        """
        self.version = version
        delay = 0.0
        while True:
            started = time.monotonic()
            try:
                if self.version is None:
                    snapshot = await self.read()
                    self.version = snapshot.resource_version
                    self._deliver(snapshot, on_change)
                await self._watch(on_change)
                if time.monotonic() - started >= _MIN_HEALTHY_WATCH_S:
                    delay = 0.0
                    continue
                reason = None
            except httpx.TransportError as exc:
                reason, detail = "connect", f"{type(exc).__name__}: {exc}"
            except _HttpStatus as exc:
                reason, detail = "http", str(exc)
            except (ConfigMapError, httpx.HTTPError) as exc:
                reason, detail = "protocol", str(exc)
            if reason is not None:
                self._on_error(reason)
                log.warning("watch of %s failed (%s); retrying", self.ref, detail)
            delay = next_backoff(delay, self.backoff_base_s, self.backoff_max_s)
            await asyncio.sleep(delay)  # reconnect backoff (a short-lived stream or a failure)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


def environment() -> Mapping[str, str]:
    """The process environment (the edge's one read of it, for :func:`load_access`)."""
    return os.environ
