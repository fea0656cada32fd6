"""The ``driftline operator`` command: run the control plane (kopf) with Driftline's handlers.

Light at import time (``driftline --help`` must stay fast): kopf, the Kubernetes client and
prometheus_client are imported inside the command.
"""

from __future__ import annotations

import click


@click.command("operator")
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="Namespace (or glob) to watch; repeat for several. Default: every namespace.",
)
@click.option(
    "--standalone/--peering",
    default=None,
    help="Run without kopf peering (a single replica only), or coordinate with other replicas.",
)
@click.option("--peering-name", default=None, help="The kopf peering object replicas share.")
@click.option("--priority", type=int, default=None, help="Peering priority of this replica.")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port of the Prometheus /metrics endpoint (0 turns it off). Default 8080.",
)
@click.option("--metrics-host", default=None, help="Address /metrics binds to. Default 0.0.0.0.")
@click.option(
    "--analysis-provider",
    type=click.Choice(["http", "prometheus"]),
    default=None,
    help="Where rollout analysis reads its numbers: the pods over HTTP (default) or Prometheus.",
)
@click.option("--prometheus-url", default=None, help="Prometheus base URL (with prometheus).")
@click.option(
    "--prometheus-selector",
    default=None,
    help="PromQL label matchers for one Deployment, with {namespace} and {deployment}.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
def operator_command(
    namespaces: tuple[str, ...],
    standalone: bool | None,
    peering_name: str | None,
    priority: int | None,
    metrics_port: int | None,
    metrics_host: str | None,
    analysis_provider: str | None,
    prometheus_url: str | None,
    prometheus_selector: str | None,
    verbose: bool,
) -> None:
    """Run the Driftline operator against the cluster of the current kubeconfig (or in-cluster).

    Settings come from these flags, then from DRIFTLINE_OPERATOR_* environment variables.
    """
    import asyncio
    import logging
    from typing import Any

    import pydantic
    from prometheus_client import CollectorRegistry, start_http_server

    from driftline.operator import runner
    from driftline.operator.k8s import KubeClient, RetryPolicy
    from driftline.operator.metrics import Metrics
    from driftline.operator.settings import OperatorSettings

    overrides: dict[str, Any] = {  # the CLI edge: flags are checked by OperatorSettings
        key: value
        for key, value in {
            "namespaces": namespaces or None,
            "standalone": standalone,
            "peering_name": peering_name,
            "priority": priority,
            "metrics_port": metrics_port,
            "metrics_host": metrics_host,
            "analysis_provider": analysis_provider,
            "prometheus_url": prometheus_url,
            "prometheus_selector": prometheus_selector,
        }.items()
        if value is not None
    }
    try:
        settings = OperatorSettings(**overrides)
    except pydantic.ValidationError as e:
        raise click.UsageError(f"invalid operator settings: {e}") from e
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, settings.metrics_host, registry=registry)
    client = KubeClient.from_environment(
        retry=RetryPolicy(
            attempts=settings.api_retry_attempts, base_delay=settings.api_retry_base_delay
        )
    )
    try:
        asyncio.run(runner.run(settings, metrics=metrics, cluster=client))
    finally:
        client.close()
