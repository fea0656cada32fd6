"""How a Deployment's status reads in a terminal: ``driftline status`` and its kubectl twin.

Who uses it: local mode's ``driftline status`` (over the state directory) and the kubectl plugin's
``status`` (over the object read from the API server) call the same two functions, so both show
the same text. Pure: a parsed :class:`~driftline.operator.api.Deployment` and ``now`` in, a string
out; no clock, no I/O.

Example (:func:`render_deployment`)::

    Deployment churn: Progressing (generation 2, observed 2)
      endpoint    http://127.0.0.1:8000/v2/models/churn/infer
      stable      churn-v1   weight  90%   replicas 1/1
      canary      churn-v2   weight  10%   replicas 1/1
      rollout     step 1/3 since 12s; started 40s ago
      analysis    Successful 3s ago: error rate 0 <= 0.01; p99 latency ratio 1.1 <= 2
      conditions  Ready=False (RolloutInProgress)  Reconciling=True  Stalled=False
      message     step 1/3, weight 10%
      history     (last 5 of 7)
        12:00:01  RolloutStarted  churn-v2  ShadowPassed: ...
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from driftline.operator.api import Deployment
from driftline.operator.api.deployment import DeploymentStatus

__all__ = ["ago", "render_deployment", "render_table"]


def ago(then: datetime | None, now: datetime) -> str:
    """``then`` relative to ``now`` in a compact form (``12s``, ``3m4s``, ``2h1m``, ``-``)."""
    if then is None:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60}m"


def _conditions(status: DeploymentStatus) -> str:
    parts = []
    for kind in ("Ready", "Reconciling", "Stalled"):
        cond = status.condition(kind)
        if cond is None:
            continue
        reason = f" ({cond.reason})" if cond.status != "False" or kind == "Ready" else ""
        parts.append(f"{kind}={cond.status}{reason}")
    return "  ".join(parts) or "-"


def render_deployment(deployment: Deployment, now: datetime, *, history: int = 5) -> str:
    """The status of one Deployment as a block of text.

    Args:
        deployment: the parsed object (spec and status).
        now: the current time (relative times are computed against it).
        history: how many of the latest history entries to show.

    Returns:
        Lines without a trailing newline.
    """
    meta, spec = deployment.metadata, deployment.spec
    status = deployment.status or DeploymentStatus()
    generation = meta.generation if meta.generation is not None else "-"
    observed = status.observed_generation if status.observed_generation is not None else "-"
    lines = [
        f"Deployment {meta.name}: {status.phase or 'Pending'} "
        f"(generation {generation}, observed {observed})",
        f"  {'spec':<11} model {spec.model}",
    ]
    if status.endpoint:
        lines.append(f"  {'endpoint':<11} {status.endpoint}")
    for v in status.variants:
        weight = f"mirror {v.weight:>3}%" if v.name == "shadow" else f"weight {v.weight:>3}%"
        lines.append(
            f"  {v.name:<11} {v.model:<12} {weight}   replicas {v.ready_replicas}/{v.replicas}"
        )
    rollout = []
    if status.current_step is not None:
        rollout.append(
            f"step {status.current_step + 1}/{len(spec.rollout.steps)} "
            f"since {ago(status.step_started_at, now)}"
        )
    elif status.shadow_model:
        rollout.append(f"shadow since {ago(status.step_started_at, now)}")
    if status.rollout_started_at is not None and (status.canary_model or status.shadow_model):
        rollout.append(f"started {ago(status.rollout_started_at, now)} ago")
    if status.pause_reason:
        rollout.append(f"paused: {status.pause_reason}")
    if rollout:
        lines.append(f"  {'rollout':<11} " + "; ".join(rollout))
    if status.analysis is not None:
        a = status.analysis
        checks = "; ".join(
            f"{c.name} {'-' if c.value is None else f'{c.value:.4g}'}"
            f" {'ok' if c.passed else 'FAIL'} (bound {c.threshold:g}, n={c.samples})"
            for c in a.checks
        )
        lines.append(
            f"  {'analysis':<11} {a.verdict} {ago(a.time, now)} ago"
            + (f", failed ticks {a.failed_ticks}" if a.failed_ticks else "")
            + (f": {checks}" if checks else "")
        )
    lines.append(f"  {'conditions':<11} {_conditions(status)}")
    if status.message:
        lines.append(f"  {'message':<11} {status.message}")
    entries = status.history[-history:] if history > 0 else []
    if entries:
        lines.append(f"  {'history':<11} (last {len(entries)} of {len(status.history)})")
        for e in entries:
            text = f"{e.reason}: {e.message}" if e.message else e.reason
            lines.append(f"    {e.time:%H:%M:%S}  {e.action:<14} {e.model:<12} {text}")
    return "\n".join(lines)


def render_table(deployments: Sequence[Deployment], now: datetime) -> str:
    """One line per Deployment (``driftline status`` without a name), like ``kubectl get``."""
    header = (
        f"{'NAME':<16} {'PHASE':<12} {'STABLE':<14} {'CANARY':<14} {'WEIGHT':>6}  {'AGE':>6}  "
        "MESSAGE"
    )
    rows = [header]
    for d in deployments:
        s = d.status or DeploymentStatus()
        candidate = s.canary_model or (f"{s.shadow_model} (shadow)" if s.shadow_model else "-")
        rows.append(
            f"{d.metadata.name:<16} {s.phase or 'Pending':<12} {s.stable_model or '-':<14} "
            f"{candidate:<14} {s.canary_weight:>5}%  {ago(s.rollout_started_at, now):>6}  "
            f"{s.message or ''}"
        )
    return "\n".join(rows)
