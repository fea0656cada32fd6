"""The ``driftline route`` command (registered by ``driftline.operator.cli``).

Heavy imports (the serving core, prometheus_client, uvloop) happen inside the command so that
``driftline --help`` stays fast. Every flag may also come from ``DRIFTLINE_ROUTE_<NAME>``; a flag
given on the command line wins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import click


@click.command("route")
@click.option(
    "--table",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Route table file (YAML or JSON), watched for changes. [env DRIFTLINE_ROUTE_TABLE]",
)
@click.option(
    "--table-configmap",
    default=None,
    metavar="NAMESPACE/NAME[/KEY]",
    help="Route table in a ConfigMap key (default key routes.json), watched through the"
    " Kubernetes API; exclusive with --table. [env DRIFTLINE_ROUTE_TABLE_CONFIGMAP]",
)
@click.option(
    "--kubeconfig",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Kubeconfig for --table-configmap outside a pod (default: the pod's service account)."
    " [env DRIFTLINE_ROUTE_KUBECONFIG]",
)
@click.option("--host", default=None, help="Bind address. [default 127.0.0.1]")
@click.option("--port", type=int, default=None, help="Public OIP port. [default 8000]")
@click.option(
    "--admin-port",
    type=int,
    default=None,
    help="Admin port for GET/PUT /table (off unless given).",
)
@click.option("--log-level", default=None, help="Logging level. [default INFO]")
def route(
    table: Path | None,
    table_configmap: str | None,
    kubeconfig: Path | None,
    host: str | None,
    port: int | None,
    admin_port: int | None,
    log_level: str | None,
) -> None:
    """Serve the router: weighted canary split, shadow mirroring, sticky assignment.

    Speaks the Open Inference Protocol v2 on --port (forwarding /v2/... to the variants of the
    route table and answering /v2/health/* itself), plus POST /v1/feedback, GET /stats and
    GET /metrics. Other settings come from DRIFTLINE_ROUTE_* environment variables (see the
    README's Router section).
    """
    from pydantic import ValidationError

    from driftline.serving.router.main import StartupError, run
    from driftline.serving.router.settings import RouterSettings

    flags: dict[str, object] = {
        "table": table,
        "table_configmap": table_configmap,
        "kubeconfig": kubeconfig,
        "host": host,
        "port": port,
        "admin_port": admin_port,
        "log_level": log_level,
    }
    try:
        given = {k: v for k, v in flags.items() if v is not None}
        settings = RouterSettings(**cast("dict[str, Any]", given))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise click.UsageError(f"invalid router settings: {problems}") from None
    try:
        run(settings)
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None
