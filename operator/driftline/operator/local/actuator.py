"""The local actuator's decisions: planned topology -> child processes and the router's table.

Who uses it: the control loop (:mod:`driftline.operator.local.runtime`) calls these pure
functions every tick; the supervisor then starts and stops what they name. In a cluster the
renderer turns the same :class:`~driftline.operator.plan.Topology` into manifests; here it turns
into processes:

- one router per Deployment (``driftline route --table FILE``; the table file is rewritten on every
  change and the router reloads it within half a second);
- per variant, ``replicas`` model servers (``driftline serve``), each a child named after the
  *Model* it serves, not its role: when a canary is promoted its processes simply become the
  stable variant in the next table, nothing restarts;
- the route table lists only variants with at least one ready server: a canary whose servers are
  still loading gets no traffic yet (its share stays on stable) instead of failing requests.

Model versions are reported under the Model's name (``--version churn-v2``, the table's
``model_version``), which is what the analysis compares a measurement with, so a canary is never
judged on its predecessor's numbers.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from driftline.operator.plan import Role, Topology

__all__ = [
    "MONITOR_PROBE",
    "ROUTER_PROBE",
    "SERVER_PROBE",
    "VariantEndpoints",
    "monitor_argv",
    "monitor_name",
    "route_argv",
    "route_table",
    "router_name",
    "serve_argv",
    "server_name",
]

SERVER_PROBE: Final = "/v2/health/ready"
"""A model server is ready when its model is loaded and warmed up."""
ROUTER_PROBE: Final = "/v2/health/live"
"""A router is ready when it answers (its own readiness needs a healthy stable endpoint)."""

DRIFTLINE: Final = (sys.executable, "-m", "driftline.operator")
"""How children are started: the same interpreter and installation as ``driftline up``."""


def server_name(deployment: str, model: str, index: int) -> str:
    """The child name of model server ``index`` of ``model`` in ``deployment``."""
    return f"{deployment}-{model}-{index}"


def monitor_name(deployment: str, model: str) -> str:
    """The child name of the monitor of ``model`` in ``deployment`` (one per variant)."""
    return f"{deployment}-{model}-monitor"


def router_name(deployment: str) -> str:
    """The child name of ``deployment``'s router."""
    return f"{deployment}-router"


def serve_argv(
    topology: Topology,
    *,
    model: str,
    role: Role,
    model_path: Path,
    port: int,
    monitor_url: str | None = None,
) -> tuple[str, ...]:
    """The command line of one model server of ``model`` playing ``role`` (pure)."""
    argv = [
        *DRIFTLINE,
        "serve",
        "--model",
        str(model_path),
        "--name",
        topology.name,
        "--version",
        model,
        "--variant",
        role,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-batch-size",
        str(topology.batching.max_batch_size),
        "--max-delay-ms",
        f"{topology.batching.max_delay_ms:g}",
        "--shutdown-timeout-s",
        "2",
    ]
    if monitor_url is not None:
        argv += ["--monitor-url", monitor_url]
    return tuple(argv)


MONITOR_PROBE: Final = "/healthz"
"""A monitor is ready when it answers (its profile is loaded before its port opens)."""


def monitor_argv(
    topology: Topology, *, profile: Path, port: int, min_samples: int
) -> tuple[str, ...]:
    """The command line of one variant's monitor sidecar (pure).

    A sliding window of the Deployment's ``monitor.window`` rows, judged once it holds
    ``min_samples`` rows (the rollout's analysis ``minSamples``, so a short local rollout gets a
    verdict).
    """
    return (
        *DRIFTLINE,
        "monitor",
        "--profile",
        str(profile),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--window-kind",
        "sliding",
        "--window-rows",
        str(topology.monitor_window),
        "--min-samples",
        str(max(1, min(min_samples, topology.monitor_window))),
    )


def route_argv(table_file: Path, port: int) -> tuple[str, ...]:
    """The command line of a Deployment's router (pure)."""
    return (
        *DRIFTLINE,
        "route",
        "--table",
        str(table_file),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    )


@dataclass(frozen=True)
class VariantEndpoints:
    """What is up for one variant right now.

    Attributes:
        ready: URLs of its model servers that are ready.
        monitor: URL of its monitor, when one runs.
    """

    ready: tuple[str, ...]
    monitor: str | None = None


def route_table(
    topology: Topology, endpoints: Mapping[Role, VariantEndpoints], version: int
) -> dict[str, object] | None:
    """The router's table for the topology, given which servers are ready (pure).

    Args:
        topology: the planned topology.
        endpoints: per role, the ready server URLs and the monitor.
        version: the table version (the caller increments it on every change).

    Returns:
        The table as plain data (the router's YAML/JSON format), or None while the stable
        variant has no ready server (a router cannot start without one).
    """

    def variant(role: Role) -> dict[str, object] | None:
        plan = topology.variant(role)
        up = endpoints.get(role)
        if plan is None or up is None or not up.ready:
            return None
        doc: dict[str, object] = {
            "model_version": plan.model.name,
            "endpoints": list(up.ready),
            "model_name": topology.name,
        }
        if up.monitor is not None:
            doc["monitor"] = up.monitor
        return doc

    stable = variant("stable")
    if stable is None:
        return None
    table: dict[str, object] = {"version": version}
    if topology.sticky_header:
        table["sticky_header"] = topology.sticky_header
    canary = variant("canary")
    canary_plan = topology.variant("canary")
    canary_weight = canary_plan.weight if canary is not None and canary_plan is not None else 0
    stable["weight"] = 100 - canary_weight
    table["stable"] = stable
    if canary is not None:
        canary["weight"] = canary_weight
        table["canary"] = canary
    shadow = variant("shadow")
    shadow_plan = topology.variant("shadow")
    if shadow is not None and shadow_plan is not None:
        shadow["mirror_percent"] = shadow_plan.mirror_percent
        table["shadow"] = shadow
    return table


def replicas(topology: Topology, role: Role) -> int:
    """Processes to run for ``role``: fixed replicas, or the autoscaling minimum (no HPA here)."""
    plan = topology.variant(role)
    if plan is None:
        return 0
    if plan.autoscaling is not None:
        return max(1, plan.autoscaling.min_replicas)
    return plan.replicas


def models_in(topology: Topology, draining: Sequence[str]) -> dict[str, Role | None]:
    """Every Model that must keep processes: role for live variants, None for draining ones."""
    out: dict[str, Role | None] = {m: None for m in draining}
    for v in topology.variants:
        out[v.model.name] = v.role
    return out
