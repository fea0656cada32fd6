"""Run a router process: load the table, serve the public and admin ports, watch the source.

Who uses it: the ``route`` command (:mod:`driftline.serving.router.cli`) calls :func:`run` with
the one :class:`~driftline.serving.router.settings.RouterSettings` it built.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

from prometheus_client import CollectorRegistry

from driftline.serving.http import HttpServer, run_event_loop
from driftline.serving.router.configmap import ConfigMapError, next_backoff
from driftline.serving.router.kubewatch import ConfigMapWatch, environment, load_access
from driftline.serving.router.metrics import RouterMetrics
from driftline.serving.router.proxy import Router
from driftline.serving.router.settings import RouterSettings
from driftline.serving.router.table import RouteTableError, parse_table
from driftline.serving.router.watch import watch_file

log = logging.getLogger("driftline.route")


class StartupError(Exception):
    """The router cannot start (unreadable or invalid table); the message says why."""


async def _first_table(watch: ConfigMapWatch, wait_s: float) -> tuple[str, str]:
    """LIST until the ConfigMap holds a table (or ``wait_s`` passes): (content, version).

    Raises:
        StartupError: when no table appears in time (the last problem is named).
    """
    deadline = time.monotonic() + wait_s
    delay = 0.0
    while True:
        try:
            snapshot = await watch.read()
        except Exception as exc:  # unreachable, refused, garbled: all retried until the deadline
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if snapshot.content is not None:
                return snapshot.content, snapshot.resource_version
            problem = snapshot.problem or "no table"
        if time.monotonic() >= deadline:
            raise StartupError(
                f"no route table from ConfigMap {watch.ref} in {wait_s:g}s: {problem}"
            )
        log.warning("waiting for the route table in ConfigMap %s: %s", watch.ref, problem)
        delay = next_backoff(delay, 0.2, 5.0)
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))  # retry backoff


async def serve(settings: RouterSettings, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set, then shut down gracefully.

    Raises:
        StartupError: when the table (file or ConfigMap) is missing or invalid at start.
    """
    registry = CollectorRegistry()
    metrics = RouterMetrics(registry)
    ref = settings.configmap_ref()
    kube: ConfigMapWatch | None = None
    version: str | None = None
    if ref is not None:
        try:
            access = load_access(settings.kubeconfig, environment())
            kube = ConfigMapWatch(
                access,
                ref,
                watch_timeout_s=settings.watch_timeout_s,
                on_error=lambda reason: metrics.watch_errors.labels(reason).inc(),
            )
        except ConfigMapError as exc:
            raise StartupError(f"--table-configmap {ref}: {exc}") from None
        try:
            text, version = await _first_table(kube, settings.table_wait_s)
        except BaseException:
            await kube.aclose()
            raise
        kube.seen(text)
        initial: bytes = text.encode()
        source, where = "configmap", f"ConfigMap {ref}"
    else:
        assert settings.table is not None  # the settings validator guarantees one source
        try:
            initial = settings.table.read_bytes()
        except OSError as exc:
            raise StartupError(f"cannot read route table {settings.table}: {exc}") from None
        source, where = "file", str(settings.table)
    try:
        table = parse_table(initial)
    except RouteTableError as exc:
        if kube is not None:
            await kube.aclose()
        raise StartupError(f"{where}: {exc}") from None
    router = Router(table, settings.proxy_config(), metrics, registry)
    public = HttpServer(router.handle, start=router.start, max_body_bytes=settings.max_body_bytes)
    await public.start(settings.host, settings.port)
    admin: HttpServer | None = None
    if settings.admin_port is not None:
        admin = HttpServer(router.handle_admin, max_body_bytes=settings.max_body_bytes)
        await admin.start(settings.host, settings.admin_port)

    def reload(content: bytes | str) -> None:
        with contextlib.suppress(RouteTableError):  # logged and counted by load()
            router.load(content, source)

    if kube is not None:
        watcher = asyncio.create_task(kube.run(reload, version))
    else:
        assert settings.table is not None
        watcher = asyncio.create_task(
            watch_file(settings.table, settings.watch_interval_s, reload, initial=initial)
        )
    log.info(
        "router listening on http://%s:%d%s; table %s version %d",
        settings.host,
        public.port,
        f" (admin :{admin.port})" if admin is not None else "",
        where,
        table.version,
    )
    try:
        await stop.wait()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await public.shutdown()
        if admin is not None:
            await admin.shutdown()
        await router.close()
        if kube is not None:
            await kube.aclose()
        log.info("router stopped")


def run(settings: RouterSettings) -> None:
    """Run the router until SIGTERM or SIGINT (blocking)."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    run_event_loop(main())
