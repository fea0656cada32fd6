"""A DriftMonitor's status from a fleet verdict: the pure half of the DriftMonitor controller.

Owns: how a merged-window verdict (``driftline.serving.drift.decide.Verdict``, judged over a
variant's pods by ``analysis_http.fleet_drift``) becomes ``DriftMonitorStatus`` (per-feature
results, the prediction's result, per-segment results, the overall score, phase, and the
``Drifted`` / kstatus conditions), which evaluations are a transition worth an Event
(``DriftDetected`` / ``DriftRecovered``), and when the breach action fires (once per breach).

Conditions: ``Ready`` follows kstatus (True once a window was judged, drifted or not: the monitor
is doing its job; ``Reconciling`` while the window is below ``minSamples``; ``Stalled`` when it
cannot evaluate), and ``Drifted`` says the verdict (True with reason ``DriftDetected``; False
with ``NoDrift`` or ``InsufficientData``). The score is the largest whole-window effect divided
by its threshold (1.0 = at the bound), as the CRD documents.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Final, Literal

from driftline.operator.api.driftmonitor import (
    DriftMonitor,
    DriftMonitorPhase,
    DriftMonitorStatus,
    FeatureResult,
    SegmentResult,
)
from driftline.operator.api.meta import Condition, ConditionStatus, parse_duration
from driftline.operator.conditions import ReadinessState, derive_conditions, set_condition
from driftline.serving.drift.decide import FeatureVerdict, Status, Verdict

DRIFTED: Final = "Drifted"
"""The condition type carrying the verdict."""
LARGE: Final = 1e300
"""Stands for an infinite statistic (JSON has no infinity)."""

Transition = Literal["DriftDetected", "DriftRecovered"]
"""The Event reasons of a verdict change."""


def _finite(value: float) -> float:
    if math.isnan(value):
        return 0.0
    return max(-LARGE, min(LARGE, value))


def feature_result(v: FeatureVerdict) -> FeatureResult:
    """One feature's verdict as the CRD reports it: the gating effect, corrected p, bound. Pure."""
    p = v.p_adjusted if math.isfinite(v.p_adjusted) else None
    return FeatureResult(
        name=v.name,
        test=f"{v.test}+{v.effect}",
        statistic=_finite(v.effect_value),
        p_value=p,
        threshold=_finite(v.threshold),
        drifted=v.status is Status.DRIFT,
    )


def _ratio(v: FeatureVerdict) -> float | None:
    if not (math.isfinite(v.threshold) and v.threshold > 0) or math.isnan(v.effect_value):
        return None
    return _finite(v.effect_value / v.threshold)


def score(features: Sequence[FeatureVerdict]) -> float | None:
    """The largest effect / threshold over the judged features (None when none was judged)."""
    ratios = [
        r
        for v in features
        if v.status is not Status.NOT_ENOUGH_DATA
        if (r := _ratio(v)) is not None
    ]
    return max(ratios) if ratios else None


def segment_results(verdict: Verdict) -> list[SegmentResult]:
    """Per ``feature=value`` segment of the verdict: samples, drifted features, score. Pure."""
    by_segment: dict[str, list[FeatureVerdict]] = {}
    for v in verdict.features:
        if v.segment is not None:
            by_segment.setdefault(v.segment, []).append(v)
    out: list[SegmentResult] = []
    for segment, parts in by_segment.items():
        feature, _, value = segment.partition("=")
        drifted = [v.name for v in parts if v.status is Status.DRIFT]
        out.append(
            SegmentResult(
                feature=feature,
                value=value,
                samples=max(v.n_current for v in parts),
                drifted=bool(drifted),
                score=score(parts),
                drifted_features=drifted,
            )
        )
    return out


def _conditions(
    old: Sequence[Condition],
    state: ReadinessState,
    drifted: bool,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    ready = derive_conditions(
        old, state, reason=reason, message=message, generation=generation, now=now
    )
    return set_condition(
        ready,
        Condition(
            type=DRIFTED,
            status=ConditionStatus.TRUE if drifted else ConditionStatus.FALSE,
            reason=reason,
            message=message,
            observed_generation=generation,
            last_transition_time=now,
        ),
        now,
    )


def evaluated_status(
    monitor: DriftMonitor, verdict: Verdict, model: str, now: datetime
) -> DriftMonitorStatus:
    """The status after judging one merged window of the monitored variant. Pure.

    Args:
        monitor: the DriftMonitor (its old status keeps ``lastAction`` and transition times).
        verdict: the merged window's verdict under the monitor's decision config.
        model: the Model the window was compared with.
        now: the evaluation time (timezone-aware).
    """
    old = monitor.status or DriftMonitorStatus()
    whole = [v for v in verdict.features if v.segment is None]
    inputs = [feature_result(v) for v in whole if v.role == "input"]
    prediction = next((feature_result(v) for v in whole if v.role == "prediction"), None)
    phase: DriftMonitorPhase
    if verdict.status is Status.NOT_ENOUGH_DATA:
        phase, state, reason = "InsufficientData", ReadinessState.PROGRESSING, "InsufficientData"
        message = (
            f"{verdict.rows} predictions in the window of {monitor.spec.variant} "
            f"(minSamples {monitor.spec.min_samples})"
        )
    elif verdict.status is Status.DRIFT:
        phase, state, reason = "Drifted", ReadinessState.CURRENT, "DriftDetected"
        message = (
            f"{monitor.spec.variant} of {monitor.spec.deployment} drifted over {verdict.rows} "
            f"predictions: {', '.join(verdict.drifted) or 'features'}"
        )
    else:
        phase, state, reason = "Healthy", ReadinessState.CURRENT, "NoDrift"
        message = (
            f"no drift in {verdict.rows} predictions of {monitor.spec.variant} "
            f"of {monitor.spec.deployment}"
        )
    generation = monitor.metadata.generation
    return old.model_copy(
        update={
            "observed_generation": generation,
            "conditions": _conditions(
                old.conditions, state, phase == "Drifted", reason, message, generation, now
            ),
            "message": message,
            "phase": phase,
            "model": model,
            "last_evaluated": now,
            "window_samples": verdict.rows,
            "drifted": phase == "Drifted",
            "score": score(whole),
            "features": inputs,
            "prediction": prediction,
            "segments": segment_results(verdict),
        }
    )


def failed_status(
    monitor: DriftMonitor, reason: str, message: str, now: datetime
) -> DriftMonitorStatus:
    """The status when the window cannot be judged (no Deployment, Model, profile or pods). Pure.

    ``Stalled`` only for reasons that need a change to the objects (``reason`` ends in
    ``NotFound`` or is ``NoProfile``); a monitor whose pods do not answer yet is ``Reconciling``.
    """
    old = monitor.status or DriftMonitorStatus()
    permanent = reason.endswith("NotFound") or reason == "NoProfile"
    state = ReadinessState.STALLED if permanent else ReadinessState.PROGRESSING
    generation = monitor.metadata.generation
    return old.model_copy(
        update={
            "observed_generation": generation,
            "conditions": _conditions(
                old.conditions, state, False, reason, message, generation, now
            ),
            "message": message,
            "phase": "Failed" if permanent else "Pending",
            "last_evaluated": now,
            "drifted": False,
        }
    )


def transition(old: DriftMonitorStatus | None, new: DriftMonitorStatus) -> Transition | None:
    """The Event a new status deserves: drift appeared or went away (None: no change). Pure.

    ``InsufficientData`` and failures are not a recovery: only a judged healthy window after a
    drifted one is.
    """
    was = old is not None and old.drifted
    if new.drifted and not was:
        return "DriftDetected"
    if was and new.phase == "Healthy":
        return "DriftRecovered"
    return None


def action_due(monitor: DriftMonitor, new: DriftMonitorStatus) -> bool:
    """Whether the breach action fires now: on a transition into drift, once per breach. Pure."""
    return transition(monitor.status, new) == "DriftDetected"


def due(monitor: DriftMonitor, now: datetime) -> bool:
    """Whether the monitor is due for an evaluation. Pure.

    Due when never evaluated, when its generation changed, or once ``spec.interval`` passed
    since the last evaluation.
    """
    old = monitor.status
    if old is None or old.last_evaluated is None:
        return True
    if old.observed_generation != monitor.metadata.generation:
        return True
    return (now - old.last_evaluated).total_seconds() >= parse_duration(monitor.spec.interval)
