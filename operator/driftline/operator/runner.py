"""Run the operator: a fresh kopf registry filled by ``handlers.register``, then ``kopf.operator``.

Called by the ``driftline operator`` command (blocking, ``run_blocking``) and by integration tests
(in their own event loop, ``run``, with a stop flag). Everything the process needs is passed in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import kopf

from driftline.operator import analysis, handlers, names, rollout
from driftline.operator.analysis_http import Endpoints, HttpProvider, Resolver
from driftline.operator.k8s import Cluster
from driftline.operator.metrics import Metrics
from driftline.operator.settings import OperatorSettings

ANALYSIS_TIMEOUT_S = 5.0
"""Seconds one analysis fetch (router stats, monitor verdict) may take; slower counts as no data."""


def service_endpoints(target: analysis.Target) -> Endpoints:
    """Where a variant's numbers live in a cluster: the router and the variant's Services.

    The Services balance over pods, so each fetch reads one router replica and one monitor; the
    per-pod view (all replicas summed) needs the pod IPs and is not wired yet.
    """
    public = names.service_host(names.public_service_name(target.deployment), target.namespace)
    variant = names.service_host(
        names.variant_name(target.deployment, target.role), target.namespace
    )
    return Endpoints(
        routers=(f"http://{public}:{names.PORT_HTTP}",),
        monitors=(f"http://{variant}:{names.PORT_MONITOR}",),
    )


def http_provider(
    client: httpx.AsyncClient, resolve: Resolver
) -> Callable[[rollout.Policy], analysis.Provider]:
    """A provider factory: HTTP reads of router stats and monitor verdicts, windowed per policy."""

    def build(policy: rollout.Policy) -> analysis.Provider:
        return HttpProvider(client, resolve, window_s=int(policy.interval_s))

    return build


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
    resolve: Resolver = service_endpoints,
) -> None:
    """Run the operator until ``stop_flag`` is set (or SIGINT/SIGTERM in the main thread).

    ``resolve`` is the seam that finds a variant's router and monitor (tests point it at processes
    on 127.0.0.1).
    """
    async with httpx.AsyncClient(timeout=ANALYSIS_TIMEOUT_S) as client:
        ctx = handlers.Context(
            settings=settings,
            metrics=metrics,
            cluster=cluster,
            provider=http_provider(client, resolve),
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
