"""Run a router process: load the table, serve the public and admin ports, watch the file.

Who uses it: the ``route`` command (:mod:`driftline.serving.router.cli`) calls :func:`run` with
the one :class:`~driftline.serving.router.settings.RouterSettings` it built.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from prometheus_client import CollectorRegistry

from driftline.serving.http import HttpServer, run_event_loop
from driftline.serving.router.metrics import RouterMetrics
from driftline.serving.router.proxy import Router
from driftline.serving.router.settings import RouterSettings
from driftline.serving.router.table import RouteTableError, parse_table
from driftline.serving.router.watch import watch_file

log = logging.getLogger("driftline.route")


class StartupError(Exception):
    """The router cannot start (unreadable or invalid table); the message says why."""


async def serve(settings: RouterSettings, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set, then shut down gracefully.

    Raises:
        StartupError: when the table file is missing or invalid at start.
    """
    try:
        initial = settings.table.read_bytes()
    except OSError as exc:
        raise StartupError(f"cannot read route table {settings.table}: {exc}") from None
    try:
        table = parse_table(initial)
    except RouteTableError as exc:
        raise StartupError(f"{settings.table}: {exc}") from None
    registry = CollectorRegistry()
    router = Router(table, settings.proxy_config(), RouterMetrics(registry), registry)
    public = HttpServer(router.handle, max_body_bytes=settings.max_body_bytes)
    await public.start(settings.host, settings.port)
    admin: HttpServer | None = None
    if settings.admin_port is not None:
        admin = HttpServer(router.handle_admin, max_body_bytes=settings.max_body_bytes)
        await admin.start(settings.host, settings.admin_port)

    def reload(content: bytes) -> None:
        with contextlib.suppress(RouteTableError):  # logged and counted by load()
            router.load(content, "file")

    watcher = asyncio.create_task(
        watch_file(settings.table, settings.watch_interval_s, reload, initial=initial)
    )
    log.info(
        "router listening on http://%s:%d%s; table %s version %d",
        settings.host,
        public.port,
        f" (admin :{admin.port})" if admin is not None else "",
        settings.table,
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
