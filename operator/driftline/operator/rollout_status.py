"""The one mapping between the API models and the rollout machine's plain values.

Owns three conversions, so no other module reinterprets rollout fields:

- ``policy_from_spec``: ``spec.rollout`` (pydantic, durations as strings) → ``rollout.Policy``.
- ``state_from_status`` / ``write_status``: ``Deployment.status`` ⇄ ``rollout.RolloutState``.
  The status is the store: whatever ``write_status`` writes, ``state_from_status`` reads back to
  an equal state, so a restarted operator (or another ``driftline`` process in local mode)
  resumes exactly.
- ``summarize``: state → ``phase`` (``Healthy|Progressing|Paused|Degraded``), the kstatus
  readiness (``Ready``/``Reconciling``/``Stalled`` through ``driftline.operator.conditions``) and
  one message line.

Pure: pydantic models in, pydantic models out; the caller passes ``now`` and the generation.

Usage (one reconcile, at the edge)::

    policy = rollout_status.policy_from_spec(dep.spec.rollout)
    state = rollout_status.state_from_status(dep.status, policy)
    raw = annotations.get(names.ANNOTATION_COMMAND)
    commands = [rollout.parse_command(raw)] if raw else []   # ValueError → Event, carry on
    state, decisions = rollout.step(state, policy, desired, now=now, analysis=tick,
                                    commands=commands)
    status = rollout_status.write_status(dep.status, state, decisions, policy, now=now,
                                         generation=dep.metadata.generation,
                                         spec_model=dep.spec.model)
    # then: patch status, emit one Event per decision, metrics (rollbacks by decision.reason)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from driftline.operator import conditions
from driftline.operator.analysis import (
    AnalysisResult,
    CheckResult,
    CheckVerdict,
    PerformanceBound,
    ShadowThresholds,
    Thresholds,
)
from driftline.operator.api.deployment import (
    MAX_HISTORY,
    Analysis,
    AnalysisCheck,
    AnalysisStatus,
    DeploymentPhase,
    DeploymentStatus,
    HistoryEntry,
    Rollout,
    RolloutRecord,
    Variant,
    VariantStatus,
)
from driftline.operator.api.deployment import (
    DrainSlot as DrainSlotRecord,
)
from driftline.operator.api.meta import parse_duration
from driftline.operator.conditions import ReadinessState
from driftline.operator.rollout import (
    PAUSE_ANALYSIS_FAILED,
    PAUSE_DEADLINE,
    Decision,
    DrainSlot,
    Policy,
    RolloutState,
    ShadowPolicy,
    Stage,
    Step,
    traffic,
)

__all__ = [
    "Summary",
    "history_entries",
    "policy_from_spec",
    "state_from_status",
    "summarize",
    "thresholds_from_spec",
    "write_status",
]

_STALLED_PAUSES: Final = frozenset({PAUSE_ANALYSIS_FAILED, PAUSE_DEADLINE})
"""Pauses that mean "failed, held for a human": Degraded and Stalled, not merely Paused."""


# ------------------------------------------------------------------------------------ spec → policy


def thresholds_from_spec(spec: Analysis) -> Thresholds:
    """``spec.rollout.analysis`` as the judge's plain thresholds."""
    performance = (
        PerformanceBound(spec.performance.metric, spec.performance.max_drop)
        if spec.performance is not None
        else None
    )
    return Thresholds(
        min_samples=spec.min_samples,
        max_error_rate=spec.max_error_rate,
        max_latency_p99_ms=spec.max_latency_p99_ms,
        max_latency_ratio=spec.max_latency_ratio,
        max_drift_score=spec.max_drift_score,
        max_prediction_shift=spec.max_prediction_shift,
        performance=performance,
        no_data=spec.no_data,
    )


def policy_from_spec(spec: Rollout) -> Policy:
    """``spec.rollout`` as the state machine's plain policy (durations in seconds).

    Args:
        spec: the validated rollout spec.

    Returns:
        The policy.
    """
    shadow = (
        ShadowPolicy(
            percent=spec.shadow.percent,
            duration_s=parse_duration(spec.shadow.duration),
            thresholds=ShadowThresholds(spec.shadow.min_samples, spec.shadow.min_agreement),
        )
        if spec.shadow is not None
        else None
    )
    return Policy(
        strategy=spec.strategy,
        shadow=shadow,
        steps=tuple(
            Step(
                weight=s.weight,
                pause_s=parse_duration(s.pause) if s.pause is not None else None,
                approval=s.approval,
            )
            for s in spec.steps
        ),
        thresholds=thresholds_from_spec(spec.analysis),
        interval_s=parse_duration(spec.analysis.interval),
        failure_limit=spec.analysis.failure_limit,
        on_failure=spec.on_failure,
        progress_deadline_s=parse_duration(spec.progress_deadline),
        drain_s=parse_duration(spec.drain),
    )


# ----------------------------------------------------------------------------------- status → state

_FAIL_REASONS: Final = {
    "errorRate": "ErrorRateTooHigh",
    "latencyP99Ms": "LatencyTooHigh",
    "latencyRatio": "LatencyRatioTooHigh",
    "driftScore": "DriftScoreTooHigh",
    "predictionShift": "PredictionShiftTooHigh",
    "performance": "PerformanceDropped",
    "shadowAgreement": "ShadowAgreementTooLow",
}


def _check_from_status(check: AnalysisCheck) -> CheckResult:
    verdict: CheckVerdict = (
        "pass" if check.passed else ("inconclusive" if check.value is None else "fail")
    )
    default_reason = {
        "pass": "Passed",
        "inconclusive": "NotEnoughData",
        "fail": _FAIL_REASONS.get(check.name, "Failed"),
    }[verdict]
    return CheckResult(
        metric=check.name,
        value=check.value,
        threshold=check.threshold,
        verdict=verdict,
        reason=check.reason or default_reason,
        message=check.message or "",
        samples=check.samples,
    )


def _analysis_from_status(status: AnalysisStatus, policy: Policy, stage: Stage) -> AnalysisResult:
    verdict = "NoData" if status.verdict == "Inconclusive" else status.verdict
    outcome = status.outcome
    if outcome is None:  # written by an older operator: recompute from the policy
        if verdict == "Successful":
            outcome = "pass"
        elif verdict == "Failed":
            outcome = "fail"
        else:
            no_data = policy.thresholds.no_data
            outcome = "hold" if no_data == "pause" or stage == Stage.SHADOW else no_data
    reason = (
        status.reason
        or {
            "Successful": "AnalysisPassed",
            "Failed": "Failed",
            "NoData": "NoData",
        }[verdict]
    )
    return AnalysisResult(
        at=status.time,
        verdict=verdict,
        outcome=outcome,
        reason=reason,
        message=status.message or "",
        checks=tuple(_check_from_status(c) for c in status.checks),
    )


def state_from_status(status: DeploymentStatus | None, policy: Policy) -> RolloutState:
    """Read the rollout state back from a Deployment's status.

    Args:
        status: the stored status; None (or empty) for a new Deployment.
        policy: the current policy (only used to interpret a status written without
            ``rollout.failures``/``analysis.outcome``).

    Returns:
        The state ``write_status`` stored, or ``RolloutState()`` for a new Deployment.
    """
    if status is None:
        return RolloutState()
    record = status.rollout
    if record is None:  # written by hand or by an older operator: infer from the visible fields
        stage = (
            Stage.CANARY
            if status.canary_model
            else Stage.SHADOW
            if status.shadow_model
            else Stage.IDLE
        )
        record = RolloutRecord(stage=stage.value, target=status.canary_model or status.shadow_model)
    stage = Stage(record.stage)
    target = record.target
    last = (
        _analysis_from_status(status.analysis, policy, stage)
        if status.analysis is not None
        else None
    )
    return RolloutState(
        stable=status.stable_model,
        target=target,
        stage=stage,
        step=status.current_step,
        weight=status.canary_weight,
        mirror=record.mirror_percent,
        pause=status.pause_reason,
        reason=record.reason,
        message=status.message or "",
        started_at=status.rollout_started_at,
        stage_started_at=status.step_started_at,
        progress_at=record.progress_at,
        failures=record.failures,
        last_analysis=last,
        commands=tuple(record.commands),
        draining=record.draining,
        drain_until=record.drain_until,
        drain_slot=(
            DrainSlot(record.drain_slot.role, record.drain_slot.model, record.drain_slot.percent)
            if record.drain_slot is not None
            else None
        ),
        previous=record.previous,
    )


# ----------------------------------------------------------------------------------- state → status


@dataclass(frozen=True)
class Summary:
    """How the state reads for humans and for GitOps tools.

    Attributes:
        phase: ``Healthy``, ``Progressing``, ``Paused`` or ``Degraded`` (Argo CD's vocabulary).
        readiness: drives ``Ready``/``Reconciling``/``Stalled``.
        reason: CamelCase reason carried by the three conditions.
        message: one line: what is live, what is happening, and why.
    """

    phase: DeploymentPhase
    readiness: ReadinessState
    reason: str
    message: str


def _where(state: RolloutState, policy: Policy) -> str:
    if state.stage == Stage.SHADOW:
        return f"shadow {state.target} ({state.mirror}% mirrored)"
    step = state.step if state.step is not None else 0
    total = len(policy.steps)
    return f"canary {state.target} step {step + 1}/{total}, weight {state.weight}%"


def summarize(state: RolloutState, policy: Policy, *, spec_model: str | None = None) -> Summary:
    """Phase, kstatus readiness, reason and message for a state.

    ============================  ===========  ===========  ===========================
    state                         phase        readiness    reason
    ============================  ===========  ===========  ===========================
    idle, stable serving          Healthy      current      Succeeded
    no model yet, or spec.model   Progressing  progressing  AwaitingModel
    not yet ready to roll out
    shadow / canary stepping      Progressing  progressing  RolloutInProgress
    held: NoData, manual, gate    Paused       progressing  the pause reason
    held after failure/deadline   Degraded     stalled      AnalysisFailed / Deadline…
    promoting (stable rolling)    Progressing  progressing  Promoting / RollingBack
    promoting past the deadline   Degraded     stalled      ProgressDeadlineExceeded
    aborted (rolled back)         Degraded     stalled      the rollback reason
    ============================  ===========  ===========  ===========================

    Args:
        state: the rollout state.
        policy: the policy (for step counts).
        spec_model: ``spec.model``, when known. While it names a Model that is neither stable nor
            being rolled out (the edge passed ``desired=None`` because it is not ready), the
            Deployment is not Ready: ``kubectl wait --for=condition=Ready`` must mean "the model
            in the spec serves", never "the previous one still does".

    Returns:
        The summary.
    """
    if (
        spec_model is not None
        and state.stable is not None
        and spec_model not in (state.stable, state.target)
        and state.stage in (Stage.IDLE, Stage.ABORTED)
    ):
        return Summary(
            "Progressing",
            ReadinessState.PROGRESSING,
            "AwaitingModel",
            f"waiting for Model {spec_model} to be ready; {state.stable} serving",
        )
    if state.stage == Stage.IDLE:
        if state.stable is None:
            return Summary(
                "Progressing",
                ReadinessState.PROGRESSING,
                "AwaitingModel",
                "waiting for the Model to be ready",
            )
        return Summary(
            "Healthy", ReadinessState.CURRENT, "Succeeded", f"{state.stable} serving 100%"
        )
    if state.stage == Stage.PROMOTING:
        if state.pause is not None:
            return Summary("Degraded", ReadinessState.STALLED, state.pause, state.message)
        reason = "RollingBack" if state.reverting else "Promoting"
        return Summary("Progressing", ReadinessState.PROGRESSING, reason, state.message)
    if state.stage == Stage.ABORTED:
        message = state.message or f"rollout of {state.target} aborted"
        return Summary("Degraded", ReadinessState.STALLED, state.reason or "RolledBack", message)
    where = _where(state, policy)
    if state.pause is None:
        return Summary("Progressing", ReadinessState.PROGRESSING, "RolloutInProgress", f"{where}")
    detail = f"{where}: {state.message}" if state.message else where
    if state.pause in _STALLED_PAUSES:
        return Summary("Degraded", ReadinessState.STALLED, state.pause, detail)
    return Summary("Paused", ReadinessState.PROGRESSING, state.pause, detail)


def _check_to_status(check: CheckResult) -> AnalysisCheck:
    return AnalysisCheck(
        name=check.metric,
        value=check.value,
        threshold=check.threshold,
        passed=check.verdict == "pass",
        samples=check.samples,
        reason=check.reason,
        message=check.message or None,
    )


def _analysis_to_status(result: AnalysisResult, failures: int) -> AnalysisStatus:
    return AnalysisStatus(
        time=result.at,
        verdict=result.verdict,
        failed_ticks=failures,
        checks=[_check_to_status(c) for c in result.checks],
        outcome=result.outcome,
        reason=result.reason,
        message=result.message or None,
    )


def history_entries(decisions: Sequence[Decision], now: datetime) -> list[HistoryEntry]:
    """One ``status.history`` line per decision.

    Args:
        decisions: the decisions of one ``rollout.step``.
        now: when they were taken.

    Returns:
        The entries, in order.
    """
    return [
        HistoryEntry(
            time=now,
            model=d.to_model or d.from_model or "",
            action=d.kind.value,
            reason=d.reason,
            message=d.message or None,
        )
        for d in decisions
    ]


def _variants(previous: Sequence[VariantStatus], state: RolloutState) -> list[VariantStatus]:
    """Name, model and weight from the state; replica counts kept from the edge's last write."""
    t = traffic(state)
    wanted: list[tuple[Variant, str | None, int]] = [
        ("stable", t.stable, t.stable_weight),
        ("canary", t.canary, t.canary_weight),
        ("shadow", t.shadow, 0),
    ]
    old = {(v.name, v.model): v for v in previous}
    out: list[VariantStatus] = []
    for name, model, weight in wanted:
        if model is None:
            continue
        kept = old.get((name, model))
        out.append(
            VariantStatus(
                name=name,
                model=model,
                weight=weight,
                replicas=kept.replicas if kept else 0,
                ready_replicas=kept.ready_replicas if kept else 0,
            )
        )
    return out


def write_status(
    status: DeploymentStatus | None,
    state: RolloutState,
    decisions: Sequence[Decision],
    policy: Policy,
    *,
    now: datetime,
    generation: int | None,
    spec_model: str | None = None,
) -> DeploymentStatus:
    """Store the state in a Deployment's status, with phase, conditions, variants and history.

    Fields the rollout does not own (``endpoint``, other condition types, variant replica counts)
    are kept from ``status``.

    Args:
        status: the current status (None for a new Deployment).
        state: the state ``rollout.step`` returned.
        decisions: the decisions it returned (appended to ``history``, oldest dropped past 50).
        policy: the policy (for the summary's step counts).
        now: the current time (condition transitions, history times).
        generation: the ``metadata.generation`` acted on (``observedGeneration``); None keeps it.
        spec_model: ``spec.model`` (see ``summarize``): pass it so a spec naming a Model that is
            not ready yet never reads as Ready.

    Returns:
        The new status.
    """
    base = status if status is not None else DeploymentStatus()
    summary = summarize(state, policy, spec_model=spec_model)
    conds = conditions.derive_conditions(
        base.conditions,
        summary.readiness,
        reason=summary.reason,
        message=summary.message,
        generation=generation if generation is not None else base.observed_generation,
        now=now,
    )
    history = [*base.history, *history_entries(decisions, now)][-MAX_HISTORY:]
    record = RolloutRecord(
        stage=state.stage.value,
        target=state.target,
        mirror_percent=state.mirror,
        reason=state.reason,
        progress_at=state.progress_at,
        failures=state.failures,
        commands=list(state.commands),
        draining=state.draining,
        drain_until=state.drain_until,
        drain_slot=(
            DrainSlotRecord(
                role=state.drain_slot.role,
                model=state.drain_slot.model,
                percent=state.drain_slot.percent,
            )
            if state.drain_slot is not None
            else None
        ),
        previous=state.previous,
    )
    return base.model_copy(
        update={
            "observed_generation": (
                generation if generation is not None else base.observed_generation
            ),
            "conditions": conds,
            "phase": summary.phase,
            "message": state.message if state.message else summary.message,
            "stable_model": state.stable,
            "canary_model": (
                state.target if state.stage in (Stage.CANARY, Stage.PROMOTING) else None
            ),
            "shadow_model": state.target if state.stage == Stage.SHADOW else None,
            "canary_weight": state.weight,
            "current_step": state.step,
            "rollout_started_at": state.started_at,
            "step_started_at": state.stage_started_at,
            "pause_reason": state.pause,
            "analysis": (
                _analysis_to_status(state.last_analysis, state.failures)
                if state.last_analysis is not None
                else None
            ),
            "variants": _variants(base.variants, state),
            "history": history,
            "rollout": record,
        }
    )
