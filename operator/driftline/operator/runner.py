"""Run the operator: a fresh kopf registry filled by ``handlers.register``, then ``kopf.operator``.

Called by the ``driftline operator`` command (blocking, ``run_blocking``) and by integration tests
(in their own event loop, ``run``, with a stop flag). Everything the process needs is passed in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import httpx
import kopf

from driftline.operator import analysis, handlers, names, rollout
from driftline.operator.analysis_http import Endpoints, HttpProvider, Resolver
from driftline.operator.analysis_prometheus import PrometheusProvider
from driftline.operator.errors import OperatorError
from driftline.operator.k8s import Cluster, KubeClient, list_ready_pod_ips
from driftline.operator.metrics import Metrics
from driftline.operator.settings import OperatorSettings

log = logging.getLogger(__name__)

ANALYSIS_TIMEOUT_S = 5.0
"""Seconds one analysis fetch (router stats, monitor verdict) may take; slower counts as no data."""


def service_endpoints(target: analysis.Target) -> Endpoints:
    """Where a variant's numbers live, through its Services (the fallback of ``pod_endpoints``).

    The Services balance over pods, so each fetch reads one router replica and one monitor: with
    N pods it sees about 1/N of the traffic. ``pod_endpoints`` is the cluster default.
    """
    public = names.service_host(names.public_service_name(target.deployment), target.namespace)
    variant = names.service_host(
        names.variant_name(target.deployment, target.role), target.namespace
    )
    return Endpoints(
        routers=(f"http://{public}:{names.PORT_HTTP}",),
        monitors=(f"http://{variant}:{names.PORT_MONITOR}",),
    )


def _url(ip: str, port: int) -> str:
    return f"http://[{ip}]:{port}" if ":" in ip else f"http://{ip}:{port}"


def pod_endpoints(
    client: KubeClient, address: Callable[[str, int], str] = _url
) -> Callable[[analysis.Target], Awaitable[Endpoints]]:
    """The cluster default: every ready pod of the variant and of the router, by IP.

    Each router replica counts only the requests it proxied and each monitor sidecar sees only
    its pod's predictions, so reading one of each through a Service would see 1/N of the traffic.
    This lists the ready pods (``names.variant_selector`` / ``names.router_selector``, through
    ``driftline.operator.k8s``) and returns them all; ``HttpProvider`` sums the counts and merges
    the rest (``analysis.combine``). When the pods cannot be listed (e.g. RBAC without ``list``
    on ``pods``) it falls back to the Services (``service_endpoints``), with a warning.

    Args:
        client: the API client.
        address: ``(pod IP, port) -> base URL`` (tests map pod IPs to local fakes).

    Returns:
        An async resolver for ``HttpProvider``.
    """

    async def resolve(target: analysis.Target) -> Endpoints:
        ns, dep = target.namespace, target.deployment
        try:
            variant = await list_ready_pod_ips(client, ns, names.variant_selector(dep, target.role))
            routers = await list_ready_pod_ips(client, ns, names.router_selector(dep))
        except OperatorError as e:
            log.warning(
                "listing the pods of %s/%s failed (%s): reading through Services", ns, dep, e
            )
            return service_endpoints(target)
        return Endpoints(
            routers=tuple(address(ip, names.PORT_HTTP) for ip in routers),
            monitors=tuple(address(ip, names.PORT_MONITOR) for ip in variant),
        )

    return resolve


def http_provider(
    client: httpx.AsyncClient, resolve: Resolver
) -> Callable[[rollout.Policy], analysis.Provider]:
    """A provider factory: HTTP reads of router stats and monitor verdicts, windowed per policy."""

    def build(policy: rollout.Policy) -> analysis.Provider:
        return HttpProvider(client, resolve, window_s=int(policy.interval_s))

    return build


def prometheus_provider(
    client: httpx.AsyncClient, url: str, selector: str
) -> Callable[[rollout.Policy], analysis.Provider]:
    """A provider factory: PromQL over the routers' and monitors' metrics, windowed per policy."""

    def build(policy: rollout.Policy) -> analysis.Provider:
        return PrometheusProvider(client, url, window_s=int(policy.interval_s), selector=selector)

    return build


def analysis_provider(
    settings: OperatorSettings, client: httpx.AsyncClient, resolve: Resolver
) -> Callable[[rollout.Policy], analysis.Provider]:
    """The provider factory ``settings.analysis_provider`` names: the pods over HTTP, or PromQL."""
    if settings.analysis_provider == "prometheus" and settings.prometheus_url is not None:
        return prometheus_provider(client, settings.prometheus_url, settings.prometheus_selector)
    return http_provider(client, resolve)


def build_registry(ctx: handlers.Context) -> kopf.OperatorRegistry:
    """A registry holding every Driftline handler."""
    registry = kopf.OperatorRegistry()
    handlers.register(registry, ctx)
    return registry


async def run(
    settings: OperatorSettings,
    *,
    metrics: Metrics,
    cluster: Cluster,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
    resolve: Resolver | None = None,
) -> None:
    """Run the operator until ``stop_flag`` is set (or SIGINT/SIGTERM in the main thread).

    ``resolve`` is the seam that finds a variant's routers and monitors, sync or async (tests
    point it at processes on 127.0.0.1). Default: every ready pod, listed through the API
    (``pod_endpoints``) when ``cluster`` is the real client, else the Services.
    """
    if resolve is None:
        resolve = pod_endpoints(cluster) if isinstance(cluster, KubeClient) else service_endpoints
    async with httpx.AsyncClient(timeout=ANALYSIS_TIMEOUT_S) as client:
        ctx = handlers.Context(
            settings=settings,
            metrics=metrics,
            cluster=cluster,
            provider=analysis_provider(settings, client, resolve),
        )
        await _operate(ctx, stop_flag, ready_flag)


async def _operate(
    ctx: handlers.Context, stop_flag: asyncio.Event | None, ready_flag: asyncio.Event | None
) -> None:
    settings = ctx.settings
    liveness = (
        f"http://{settings.metrics_host}:{settings.liveness_port}/healthz"
        if settings.liveness_port
        else None
    )
    await kopf.operator(
        registry=build_registry(ctx),
        clusterwide=settings.clusterwide,
        namespaces=list(settings.namespaces),
        standalone=settings.standalone,
        priority=settings.priority,
        peering_name=settings.peering_name,
        liveness_endpoint=liveness,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )
