"""Run the operator: a fresh kopf registry filled by ``handlers.register``, then ``kopf.operator``.

Called by the ``driftline operator`` command (blocking, ``run_blocking``) and by integration tests
(in their own event loop, ``run``, with a stop flag). Everything the process needs is passed in.
"""

from __future__ import annotations

import asyncio

import kopf

from driftline.operator import handlers
from driftline.operator.k8s import Cluster
from driftline.operator.metrics import Metrics
from driftline.operator.settings import OperatorSettings


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
) -> None:
    """Run the operator until ``stop_flag`` is set (or SIGINT/SIGTERM in the main thread)."""
    ctx = handlers.Context(settings=settings, metrics=metrics, cluster=cluster)
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
