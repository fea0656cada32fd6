"""Run the operator: a fresh kopf registry filled by ``handlers.register``, then ``kopf.operator``.

Called by the ``driftline operator`` command (blocking, ``run_blocking``) and by integration tests
(in their own event loop, ``run``, with a stop flag). Everything the process needs is passed in.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable

import httpx
import kopf

from driftline.operator import analysis, handlers, names, rollout
from driftline.operator.analysis_http import (
    DriftSource,
    Endpoints,
    FleetDrift,
    HttpProvider,
    Resolver,
    fleet_decision,
)
from driftline.operator.analysis_prometheus import PrometheusProvider
from driftline.operator.errors import OperatorError
from driftline.operator.k8s import Cluster, KubeClient, list_ready_pod_ips
from driftline.operator.metrics import Metrics
from driftline.operator.settings import OperatorSettings
from driftline.serving.drift.profile import Profile

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


def _parse_profile(text: str) -> Profile | None:
    """The profile in a ConfigMap's text, or None (logged) when it cannot be read."""
    import json

    from driftline.serving.drift.profile import ProfileError, profile_from_json

    try:
        return profile_from_json(json.loads(text))
    except (ValueError, ProfileError) as e:
        log.warning("stored profile not understood, drift falls back to the worst pod: %s", e)
        return None


def profile_drift_source(cluster: Cluster) -> DriftSource:
    """The fleet-drift seam of the cluster: the Model's profile ConfigMap + the DriftMonitor.

    Reads ``<model>-profile`` (``names.profile_config_map_name``, key ``names.PROFILE_KEY``) and
    the DriftMonitor of the Deployment (``handlers.drift_monitor_for``) on every analysis tick;
    the parsed profile is cached per (namespace, model) and text sha256 (parsing is the costly
    part, a GET is not). No ConfigMap or an unreadable profile: None (worst-pod fallback).
    """
    cache: dict[tuple[str, str], tuple[str, Profile]] = {}

    async def source(target: analysis.Target) -> FleetDrift | None:
        ns = target.namespace
        try:
            raw = await cluster.get(
                "v1", "ConfigMap", ns, names.profile_config_map_name(target.model)
            )
            drift = await handlers.drift_monitor_for(cluster, ns, target.deployment)
        except OperatorError as e:
            log.warning("fleet drift of %s/%s: %s", ns, target.deployment, e)
            return None
        data = raw.get("data") if raw is not None else None
        text = data.get(names.PROFILE_KEY) if isinstance(data, dict) else None
        if not isinstance(text, str):
            return None
        digest = hashlib.sha256(text.encode()).hexdigest()
        cached = cache.get((ns, target.model))
        if cached is not None and cached[0] == digest:
            profile = cached[1]
        else:
            parsed = await asyncio.to_thread(_parse_profile, text)
            if parsed is None:
                return None
            profile = parsed
            cache[(ns, target.model)] = (digest, profile)
        return FleetDrift(profile, fleet_decision(drift, profile))

    return source


def http_provider(
    client: httpx.AsyncClient, resolve: Resolver, drift: DriftSource | None = None
) -> Callable[[rollout.Policy], analysis.Provider]:
    """A provider factory: HTTP reads of router stats and monitor verdicts, windowed per policy.

    With ``drift`` the variant's drift score is its pods' merged window's (``analysis_http``).
    """

    def build(policy: rollout.Policy) -> analysis.Provider:
        return HttpProvider(client, resolve, window_s=int(policy.interval_s), drift=drift)

    return build


def prometheus_provider(
    client: httpx.AsyncClient, url: str, selector: str
) -> Callable[[rollout.Policy], analysis.Provider]:
    """A provider factory: PromQL over the routers' and monitors' metrics, windowed per policy."""

    def build(policy: rollout.Policy) -> analysis.Provider:
        return PrometheusProvider(client, url, window_s=int(policy.interval_s), selector=selector)

    return build


def analysis_provider(
    settings: OperatorSettings,
    client: httpx.AsyncClient,
    resolve: Resolver,
    drift: DriftSource | None = None,
) -> Callable[[rollout.Policy], analysis.Provider]:
    """The provider factory ``settings.analysis_provider`` names: the pods over HTTP, or PromQL.

    ``drift`` (the HTTP provider only) merges the pods' windows for the drift score; PromQL keeps
    the worst pod's score (Prometheus holds verdicts, not counts).
    """
    if settings.analysis_provider == "prometheus" and settings.prometheus_url is not None:
        return prometheus_provider(client, settings.prometheus_url, settings.prometheus_selector)
    return http_provider(client, resolve, drift)


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
            provider=analysis_provider(settings, client, resolve, profile_drift_source(cluster)),
            fleet=HttpProvider(client, resolve, drift=profile_drift_source(cluster)).fleet,
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
