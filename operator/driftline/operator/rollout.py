"""The rollout state machine: (state, policy, desired model, analysis, commands, now) → next state.

Owns progressive delivery's decisions for both the Kubernetes operator and local mode: when a
rollout starts, when a shadow phase or a canary step passes, when to promote, roll back, pause,
or give up on a stuck rollout, and what each ``kubectl driftline`` command does. It is pure: plain
frozen values in, plain values out, no clock (``now`` is a parameter), no I/O. The edge (kopf
handlers, the local control loop) stores ``RolloutState`` in ``Deployment.status`` (see
``driftline.operator.rollout_status``), so a restarted operator resumes at the same step, and turns
each ``Decision`` into an Event, a ``status.history`` line and a metric.

Lifecycle (the README's ``## Rollouts`` draws it)::

    Idle ──desired≠stable──► [Shadow] ──► Canary step 1 … step n ──► Promoting ──► Idle (new stable)
                                 │              │                       │ abort
                                 └──failure─────┴──► Aborted (weight 0) ◄┘ (once stable is back)

Promotion without rolling the stable in place (Flagger's way): ``Promoting`` routes 100% to the
canary (it runs the new model and passed analysis) while the stable slot rolls to the new model,
and waits for the edge's readiness fact (``rolled_out``: the stable slot is fully rolled out and
ready on that model) before routing 100% back to stable and draining the canary. An edge that
does not roll slots in place (local mode keeps processes by model) passes ``rolled_out=None``
and promotion completes at once.

Idempotence: ``step`` consumes an analysis tick once (ticks at or before the last consumed one, or
measured before the current step began, are ignored) and a command once (by id), so re-running
``step`` on its own output with the same inputs returns the same state and no decisions.

Usage::

    from driftline.operator import rollout

    policy = rollout.Policy(steps=(rollout.Step(10, 60), rollout.Step(50, 60), rollout.Step(100)))
    state = rollout.RolloutState()                       # or rollout_status.state_from_status(...)
    state, decisions = rollout.step(state, policy, desired="churn-v1", now=now)   # first deploy
    state, decisions = rollout.step(state, policy, desired="churn-v2", now=now)   # canary 10%
    request = rollout.analysis_request(state, policy)    # what to measure, once due
    result = None
    if request and now >= rollout.analysis_due(state, policy):
        result = await analysis.measure_and_judge(provider, ..., request.thresholds, at=now)
    commands = [rollout.parse_command(annotation)] if annotation else []
    state, decisions = rollout.step(
        state, policy, desired="churn-v2", now=now, analysis=result, commands=commands
    )
    rollout.traffic(state)               # what the router and the serving variants must look like
    rollout.wake_at(state, policy, now)  # when to call step() again without new input
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, Literal

from driftline.operator.analysis import (
    AnalysisResult,
    ShadowThresholds,
    Thresholds,
    VariantRole,
)
from driftline.operator.names import ANNOTATION_COMMAND

__all__ = [
    "DEFAULT_DRAIN_S",
    "MAX_REMEMBERED_COMMANDS",
    "PAUSE_ANALYSIS_FAILED",
    "PAUSE_APPROVAL",
    "PAUSE_DEADLINE",
    "PAUSE_MANUAL",
    "PAUSE_NO_DATA",
    "PROMOTE_POLL_S",
    "VERBS",
    "AnalysisRequest",
    "Command",
    "Decision",
    "DecisionKind",
    "DrainSlot",
    "Policy",
    "RolloutState",
    "ShadowPolicy",
    "Stage",
    "Step",
    "Traffic",
    "Verb",
    "analysis_due",
    "analysis_request",
    "cast_verb",
    "command_blocker",
    "command_patch",
    "new_command_id",
    "parse_command",
    "step",
    "traffic",
    "wake_at",
]

DEFAULT_DRAIN_S: Final = 30.0
"""Seconds a removed variant keeps running with no traffic, so requests in flight finish and every
router replica has picked up the new route table (``spec.rollout.drain``; Argo Rollouts' default
``scaleDownDelaySeconds`` is the same 30 s)."""

PAUSE_NO_DATA: Final = "NoData"
"""Automatic hold: the last tick had too little data under ``noData: pause``; clears itself when a
tick with data arrives. The only pause a human need not lift."""
PAUSE_MANUAL: Final = "ManualPause"
"""``kubectl driftline pause``; lifted by ``resume``."""
PAUSE_APPROVAL: Final = "AwaitingApproval"
"""A step with ``approval: true`` passed; ``resume`` approves the next step, ``promote`` all."""
PAUSE_ANALYSIS_FAILED: Final = "AnalysisFailed"
"""``onFailure: pause`` and the failure limit was exceeded; the weight is held for a human."""
PAUSE_DEADLINE: Final = "ProgressDeadlineExceeded"
"""``onFailure: pause`` and the progress deadline passed; the weight is held for a human."""

PROMOTE_POLL_S: Final = 1.0
"""Longest wait between two readiness checks of the stable slot while ``Promoting`` (never more
than one analysis interval): the promotion ends about this soon after the stable is ready."""

MAX_REMEMBERED_COMMANDS: Final = 16
"""Command ids remembered in status: an old annotation value re-applied (a restored backup, a
script re-run) is still recognised, while the status stays small."""

_HUMAN_PAUSES: Final = frozenset(
    {PAUSE_MANUAL, PAUSE_APPROVAL, PAUSE_ANALYSIS_FAILED, PAUSE_DEADLINE}
)


# ------------------------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class Step:
    """One canary step: route ``weight`` percent to the canary, hold, analyse.

    Attributes:
        weight: percent of traffic to the canary, 1..100.
        pause_s: seconds to hold the weight (analysis runs meanwhile); None = one analysis interval.
        approval: after the step passes, wait for ``resume`` (or ``promote``).
    """

    weight: int
    pause_s: float | None = None
    approval: bool = False


@dataclass(frozen=True)
class ShadowPolicy:
    """The optional shadow phase before the first canary step.

    Attributes:
        percent: percent of requests mirrored to the shadow.
        duration_s: the least time the phase lasts.
        thresholds: compared predictions needed and the agreement bound.
    """

    percent: int = 100
    duration_s: float = 300.0
    thresholds: ShadowThresholds = field(default_factory=ShadowThresholds)


def _default_steps() -> tuple[Step, ...]:
    return (Step(10, 60.0), Step(50, 60.0), Step(100, 60.0))


@dataclass(frozen=True)
class Policy:
    """``spec.rollout`` as plain values, durations in seconds.

    ``rollout_status.policy_from_spec`` builds it from the API model; defaults equal the API's.

    Attributes:
        strategy: ``canary`` (phases and analysis) or ``direct`` (switch at once).
        shadow: the shadow phase; None skips it.
        steps: canary steps, weights strictly ascending.
        thresholds: the analysis bounds and the ``noData`` policy.
        interval_s: seconds between analysis ticks.
        failure_limit: failed ticks tolerated in a row; one more fails the rollout.
        on_failure: ``rollback`` (weight 0, canary removed) or ``pause`` (hold the weight).
        progress_deadline_s: longest a rollout may go without progress (a passing tick, a new step,
            a resume) while not paused by a human; then it fails with ``ProgressDeadlineExceeded``.
        drain_s: seconds a removed variant keeps running with no traffic.
    """

    strategy: Literal["canary", "direct"] = "canary"
    shadow: ShadowPolicy | None = None
    steps: tuple[Step, ...] = _default_steps()
    thresholds: Thresholds = field(default_factory=Thresholds)
    interval_s: float = 30.0
    failure_limit: int = 0
    on_failure: Literal["rollback", "pause"] = "rollback"
    progress_deadline_s: float = 600.0
    drain_s: float = DEFAULT_DRAIN_S

    def __post_init__(self) -> None:
        """Reject a policy the machine cannot run (the API validates the same at the edge)."""
        if not self.steps:
            raise ValueError("steps: at least one canary step is needed")
        weights = [s.weight for s in self.steps]
        if any(not 1 <= w <= 100 for w in weights):
            raise ValueError(f"steps: every weight must be within 1..100, got {weights}")
        if any(b <= a for a, b in itertools.pairwise(weights)):
            raise ValueError(f"steps: weights must be strictly ascending, got {weights}")
        if self.interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {self.interval_s}")

    def step_pause_s(self, index: int) -> float:
        """Seconds step ``index`` holds its weight (one interval when unset)."""
        pause = self.steps[index].pause_s
        return self.interval_s if pause is None else pause


# -------------------------------------------------------------------------------------------- state


class Stage(StrEnum):
    """Where a Deployment is in its rollout lifecycle."""

    IDLE = "Idle"
    """Only stable serves; no rollout in progress (the target may still be draining)."""
    SHADOW = "Shadow"
    """The target receives mirrored traffic; its answers are compared and discarded."""
    CANARY = "Canary"
    """The target receives ``weight`` percent of live traffic at step ``step``."""
    PROMOTING = "Promoting"
    """The target passed: the canary scales to full size, then serves 100% (where the edge
    reports slot readiness); after ``drain`` the stable slot rolls to the
    target (or back to the old stable after an abort); once that slot is fully rolled out and
    ready, everything goes back to stable and the canary drains."""
    ABORTED = "Aborted"
    """The rollout of ``target`` failed or was aborted; all traffic is on stable. Stays until the
    desired model changes, ``retry``, or ``promote``."""


@dataclass(frozen=True)
class DrainSlot:
    """A variant slot (the cluster's ``<dep>-canary`` or ``<dep>-shadow``) kept with no traffic.

    When a rollout ends (promotion, rollback, abort, revert, supersede) the slot that carried the
    target loses its traffic. Its pods keep running, at weight 0 and at the size they had, until
    ``RolloutState.drain_until``, so requests in flight finish and routers still holding the old
    route table reach live pods; then the plan stops rendering it and it is pruned.

    Attributes:
        role: the slot: ``canary`` or ``shadow``.
        model: the Model its pods run (the promoted model after a promotion, the target after a
            rollback).
        percent: the weight (canary) or mirror percent (shadow) it served last: sizes it while it
            drains.
    """

    role: Literal["canary", "shadow"]
    model: str
    percent: int


@dataclass(frozen=True)
class RolloutState:
    """The rollout state of one Deployment: a plain value stored in its status.

    Attributes:
        stable: the Model serving stable traffic (None before the first deploy).
        target: the Model being rolled out (Shadow, Canary) or that was aborted (Aborted).
        stage: the lifecycle stage.
        step: the canary step index (Canary; in Aborted, the step it failed at); None in Shadow.
        weight: percent of live traffic routed to ``target``.
        mirror: percent of requests mirrored to ``target`` (Shadow only).
        pause: why an active rollout is paused (one of the ``PAUSE_*`` reasons) or None.
        reason: CamelCase cause of the last transition (``ErrorRateTooHigh``, ``AllStepsPassed``…).
        message: one line for humans about the last transition, with its numbers.
        started_at: when the current rollout began.
        stage_started_at: when the current shadow phase or step began (holds count from here).
        progress_at: the last progress (step start, passing tick, resume): the deadline counts
            from here.
        failures: failed ticks in a row in this rollout.
        last_analysis: the last analysis tick consumed.
        commands: ids of the last ``MAX_REMEMBERED_COMMANDS`` commands applied, newest last: a
            command whose id is among them is not applied again.
        draining: a Model that lost its traffic and keeps running until ``drain_until`` (local
            mode keeps its processes; history reports it drained).
        drain_until: when ``draining`` (and ``drain_slot``) may be removed.
        drain_slot: the variant slot kept at weight 0 until ``drain_until`` (the plan renders it;
            None when no slot lost traffic, e.g. a direct rollout).
        previous: while ``Promoting``, the Model the stable slot ran before (an abort rolls the
            slot back to it); None otherwise, and once an abort has rolled it back
            (``reverting``). While ``Promoting``, ``stable`` is the Model the stable slot must
            run now: ``previous`` until the canary's 100% has drained it, then the target.
    """

    stable: str | None = None
    target: str | None = None
    stage: Stage = Stage.IDLE
    step: int | None = None
    weight: int = 0
    mirror: int = 0
    pause: str | None = None
    reason: str | None = None
    message: str = ""
    started_at: datetime | None = None
    stage_started_at: datetime | None = None
    progress_at: datetime | None = None
    failures: int = 0
    last_analysis: AnalysisResult | None = None
    commands: tuple[str, ...] = ()
    draining: str | None = None
    drain_until: datetime | None = None
    drain_slot: DrainSlot | None = None
    previous: str | None = None

    @property
    def active(self) -> bool:
        """True while a rollout is in progress (Shadow or Canary, paused or not)."""
        return self.stage in (Stage.SHADOW, Stage.CANARY)

    @property
    def reverting(self) -> bool:
        """True while ``Promoting`` back to the old stable (an abort during the promotion)."""
        return self.stage == Stage.PROMOTING and self.previous is None


# ----------------------------------------------------------------------------------------- commands

Verb = Literal["promote", "abort", "retry", "pause", "resume"]
"""The commands ``kubectl driftline`` sends."""


@dataclass(frozen=True)
class Command:
    """A human command; applied once, by ``id`` (the state remembers recent ids).

    Attributes:
        verb: what to do.
        id: unique per command sent (``kubectl driftline`` uses a timestamp and random suffix).
    """

    verb: Verb
    id: str

    def annotation_value(self) -> str:
        """The ``driftline.dev/command`` annotation value: ``<verb>:<id>``."""
        return f"{self.verb}:{self.id}"


VERBS: Final[tuple[Verb, ...]] = ("promote", "abort", "retry", "pause", "resume")
"""Every command verb, in the order ``kubectl driftline --help`` lists them."""

_COMMAND_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def parse_command(value: str) -> Command:
    """Parse the ``driftline.dev/command`` annotation (``<verb>:<id>``, e.g. ``promote:17637-a1``).

    Args:
        value: the annotation's value, as read from the object.

    Returns:
        The command.

    Raises:
        ValueError: naming the annotation and what is wrong (unknown verb, missing or malformed
            id). The caller reports it (an Event) and carries on: a bad annotation never stops
            reconciling.
    """
    verb, sep, ident = value.strip().partition(":")
    where = f"annotation {ANNOTATION_COMMAND}={value!r}"
    if not sep:
        raise ValueError(f"{where}: expected '<verb>:<id>', e.g. 'promote:1763776800-a1b2'")
    if verb not in VERBS:
        raise ValueError(f"{where}: unknown verb {verb!r}; expected one of {', '.join(VERBS)}")
    if not _COMMAND_ID.fullmatch(ident):
        raise ValueError(
            f"{where}: the id must be 1-63 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return Command(cast_verb(verb), ident)


def command_patch(command: Command) -> dict[str, dict[str, dict[str, str]]]:
    """The merge-patch body ``kubectl driftline <verb>`` sends to the Deployment.

    An annotation, not a spec field: GitOps tools (Argo CD, Flux) do not revert it, and the
    generation does not change, so observedGeneration stays honest.

    Args:
        command: the command.

    Returns:
        ``{"metadata": {"annotations": {"driftline.dev/command": "<verb>:<id>"}}}``.
    """
    return {"metadata": {"annotations": {ANNOTATION_COMMAND: command.annotation_value()}}}


def new_command_id(now: datetime, entropy: str) -> str:
    """A command id: unix seconds and a caller-supplied random token (``1763776800-a1b2c3``).

    Pure: the caller passes the clock and the randomness (e.g. ``secrets.token_hex(3)``), so the
    id sorts by time and two users pressing the same button in one second still differ.

    Args:
        now: the current time (timezone-aware).
        entropy: letters and digits, e.g. ``secrets.token_hex(3)``.

    Returns:
        An id ``parse_command`` accepts.
    """
    ident = f"{int(now.timestamp())}-{entropy}"
    if not _COMMAND_ID.fullmatch(ident):
        raise ValueError(f"entropy {entropy!r} makes an invalid command id {ident!r}")
    return ident


def cast_verb(verb: str) -> Verb:
    """Narrow a checked verb string to ``Verb`` (raises ValueError for anything else)."""
    for known in VERBS:
        if verb == known:
            return known
    raise ValueError(f"unknown verb {verb!r}; expected one of {', '.join(VERBS)}")


# ---------------------------------------------------------------------------------------- decisions


class DecisionKind(StrEnum):
    """What a decision did; the edge maps each to an Event reason and a history action."""

    DEPLOYED = "Deployed"
    """First model of a Deployment went live (no rollout: there is nothing to compare with)."""
    ROLLOUT_STARTED = "RolloutStarted"
    SHADOW_STARTED = "ShadowStarted"
    STEP_ADVANCED = "StepAdvanced"
    ANALYSIS_FAILED = "AnalysisFailed"
    """A tick failed but the failure limit is not yet exceeded."""
    PAUSED = "Paused"
    RESUMED = "Resumed"
    PROMOTION_STARTED = "PromotionStarted"
    """The target passed: the canary serves 100% while the stable slot rolls to it."""
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    """Automatic: analysis failures, the progress deadline, or the spec reverted to stable."""
    ABORTED = "Aborted"
    """Manual: ``kubectl driftline abort``."""
    RETRIED = "Retried"
    SUPERSEDED = "Superseded"
    """A new desired model replaced the one being rolled out."""
    REVERTED = "Reverted"
    """The spec went back to the stable model after an abort: the Deployment is healthy again."""
    DRAINED = "Drained"
    """A variant that lost its traffic was removed."""
    COMMAND_IGNORED = "CommandIgnored"


_WARNINGS: Final = frozenset(
    {DecisionKind.ANALYSIS_FAILED, DecisionKind.ROLLED_BACK, DecisionKind.ABORTED}
)


@dataclass(frozen=True)
class Decision:
    """One decision, as a plain value the edge turns into an Event, a history line and metrics.

    Attributes:
        kind: what happened.
        reason: CamelCase cause (``AnalysisPassed``, ``ErrorRateTooHigh``, ``ManualPromote``…);
            rollbacks are counted by it.
        message: the numbers behind it, for humans.
        from_model: the model traffic moves away from (usually stable).
        to_model: the model concerned (the target).
        weight: the canary weight after the decision.
    """

    kind: DecisionKind
    reason: str
    message: str
    from_model: str | None = None
    to_model: str | None = None
    weight: int = 0

    @property
    def rollback(self) -> bool:
        """True when traffic went back to stable (``driftline_rollbacks_total{reason}`` counts it).

        Automatic rollbacks, manual aborts and spec reverts mid-rollout; not a supersede (the new
        rollout replaces the old one) and not a hold under ``onFailure: pause``.
        """
        return self.kind in (DecisionKind.ROLLED_BACK, DecisionKind.ABORTED)

    @property
    def warning(self) -> bool:
        """True when the Event should be of type Warning (failures and rollbacks)."""
        return self.kind in _WARNINGS or (
            self.kind == DecisionKind.PAUSED and self.reason not in (PAUSE_MANUAL, PAUSE_APPROVAL)
        )


# -------------------------------------------------------------------------------------------- views


@dataclass(frozen=True)
class Traffic:
    """What must run and how traffic splits, derived from the state (the plan's input).

    Attributes:
        stable: the stable Model (None before the first deploy).
        stable_weight: percent of live traffic to stable (100 - canary_weight).
        canary: the canary Model, when one takes live traffic (or is held at its weight).
        canary_weight: percent of live traffic to the canary.
        shadow: the shadow Model during a shadow phase.
        mirror_percent: percent of requests mirrored to the shadow.
        draining: Models that keep running with no traffic until drained.
    """

    stable: str | None
    stable_weight: int
    canary: str | None
    canary_weight: int
    shadow: str | None
    mirror_percent: int
    draining: tuple[str, ...]


def traffic(state: RolloutState) -> Traffic:
    """The serving topology the state asks for.

    Args:
        state: the rollout state.

    Returns:
        Which Models run and the weights and mirror percent the router must apply.
    """
    canary = state.target if state.stage in (Stage.CANARY, Stage.PROMOTING) else None
    shadow = state.target if state.stage == Stage.SHADOW else None
    weight = state.weight if canary else 0
    draining = (
        (state.draining,)
        if state.draining and state.draining not in (state.stable, canary, shadow)
        else ()
    )
    return Traffic(
        stable=state.stable,
        stable_weight=100 - weight if state.stable else 0,
        canary=canary,
        canary_weight=weight,
        shadow=shadow,
        mirror_percent=state.mirror if shadow else 0,
        draining=draining,
    )


@dataclass(frozen=True)
class AnalysisRequest:
    """What one analysis tick must measure and judge now.

    Attributes:
        candidate_role: ``shadow`` or ``canary``.
        candidate_model: the Model under test.
        stable_model: the stable Model (relative checks compare against it).
        thresholds: the bounds.
        shadow: the agreement bound during a shadow phase; None in canary steps.
    """

    candidate_role: VariantRole
    candidate_model: str
    stable_model: str
    thresholds: Thresholds
    shadow: ShadowThresholds | None


def analysis_request(state: RolloutState, policy: Policy) -> AnalysisRequest | None:
    """What to measure for the next tick; None when no analysis runs (idle, aborted, human pause).

    Args:
        state: the rollout state.
        policy: the rollout policy.

    Returns:
        The request, or None.
    """
    if not state.active or state.pause in _HUMAN_PAUSES or not state.target or not state.stable:
        return None
    shadow = state.stage == Stage.SHADOW
    return AnalysisRequest(
        candidate_role="shadow" if shadow else "canary",
        candidate_model=state.target,
        stable_model=state.stable,
        thresholds=policy.thresholds,
        shadow=policy.shadow.thresholds if shadow and policy.shadow else None,
    )


def analysis_due(state: RolloutState, policy: Policy) -> datetime | None:
    """When the next analysis tick is due: one interval after the step began or the last tick.

    Args:
        state: the rollout state.
        policy: the rollout policy.

    Returns:
        The due time, or None when no analysis runs.
    """
    if analysis_request(state, policy) is None or state.stage_started_at is None:
        return None
    since = state.stage_started_at
    if state.last_analysis is not None and state.last_analysis.at > since:
        since = state.last_analysis.at
    return since + timedelta(seconds=policy.interval_s)


def wake_at(state: RolloutState, policy: Policy, now: datetime) -> datetime | None:
    """The earliest time ``step`` may change something without a new spec or command.

    The edge schedules its next call for then (or earlier); a time at or before ``now`` means
    "now" (an analysis tick is due, a drain or the deadline has expired). Covers: the next analysis
    tick, the end of the current hold (only while still ahead: once it has passed, the step waits
    for the next tick), the progress deadline and the end of a drain.

    Args:
        state: the rollout state.
        policy: the rollout policy.
        now: the current time.

    Returns:
        The time, or None when nothing is scheduled (idle with nothing draining, aborted, paused by
        a human). While ``Promoting`` it is at most ``PROMOTE_POLL_S`` ahead: the stable slot's
        readiness is an outside fact, polled.
    """
    times: list[datetime] = []
    if (state.draining or state.drain_slot) and state.drain_until:
        times.append(state.drain_until)
    settled = _route_settled_at(state, policy)
    if settled is not None:
        times.append(settled)
    elif state.stage == Stage.PROMOTING:
        times.append(now + timedelta(seconds=min(PROMOTE_POLL_S, policy.interval_s)))
        if state.pause is None and state.progress_at is not None:
            times.append(state.progress_at + timedelta(seconds=policy.progress_deadline_s))
    due = analysis_due(state, policy)
    if due is not None:
        times.append(due)
        if state.stage_started_at is not None:
            hold_end = state.stage_started_at + timedelta(seconds=_hold_s(state, policy))
            if hold_end > now:
                times.append(hold_end)
        if state.progress_at is not None:
            times.append(state.progress_at + timedelta(seconds=policy.progress_deadline_s))
    return min(times) if times else None


# ------------------------------------------------------------------------------------------ helpers


def _hold_s(state: RolloutState, policy: Policy) -> float:
    if state.stage == Stage.SHADOW and policy.shadow is not None:
        return policy.shadow.duration_s
    if state.stage == Stage.CANARY and state.step is not None and state.step < len(policy.steps):
        return policy.step_pause_s(state.step)
    return policy.interval_s


def _step_label(index: int, policy: Policy) -> str:
    return f"step {index + 1}/{len(policy.steps)}, weight {policy.steps[index].weight}%"


class _Log:
    """Collects decisions during one ``step`` call."""

    def __init__(self) -> None:
        self.items: list[Decision] = []

    def add(
        self, state: RolloutState, kind: DecisionKind, reason: str, message: str, *, src: str | None
    ) -> None:
        self.items.append(Decision(kind, reason, message, src, state.target, state.weight))


def _drain_end(now: datetime, policy: Policy) -> datetime:
    return now + timedelta(seconds=max(policy.drain_s, 0.0))


def _drain(
    state: RolloutState,
    model: str | None,
    slot: DrainSlot | None,
    now: datetime,
    policy: Policy,
) -> RolloutState:
    """Mark ``model`` as draining (unless it still serves or drains already) and ``slot`` as kept.

    Both end at one ``drain_until``: starting a new drain restarts the clock for both.
    """
    s = state
    if model is not None and model not in (s.stable, s.target) and model != s.draining:
        s = replace(s, draining=model, drain_until=_drain_end(now, policy))
    if slot is not None:
        s = replace(s, drain_slot=slot, drain_until=_drain_end(now, policy))
    return s


def _vacated(state: RolloutState) -> DrainSlot | None:
    """The slot the target serves from now, which loses its traffic when the rollout ends."""
    if state.target is None:
        return None
    if state.stage in (Stage.CANARY, Stage.PROMOTING):
        return DrainSlot("canary", state.target, state.weight)
    if state.stage == Stage.SHADOW:
        return DrainSlot("shadow", state.target, state.mirror)
    return None


def _closed(state: RolloutState, reason: str, message: str) -> RolloutState:
    """``state`` with no rollout in progress: only stable serves, every rollout timer cleared.

    The one place that spells out "Idle" (first deploy, direct switch, promotion, spec revert),
    so no transition forgets a field.
    """
    return replace(
        state,
        target=None,
        stage=Stage.IDLE,
        step=None,
        weight=0,
        mirror=0,
        pause=None,
        reason=reason,
        message=message,
        stage_started_at=None,
        progress_at=None,
        failures=0,
    )


def _enter_stage(
    state: RolloutState, policy: Policy, now: datetime, *, index: int | None
) -> RolloutState:
    """Begin the shadow phase (``index`` None) or canary step ``index``, with fresh timers.

    An index past the last step (the policy changed since) clamps to the last step; a shadow phase
    the policy no longer has becomes step 1.
    """
    if index is None and policy.shadow is None:
        index = 0
    if index is not None:
        index = min(max(index, 0), len(policy.steps) - 1)
    if index is None:
        percent = policy.shadow.percent if policy.shadow else 0
        return replace(
            state,
            stage=Stage.SHADOW,
            step=None,
            weight=0,
            mirror=percent,
            pause=None,
            stage_started_at=now,
            progress_at=now,
            failures=0,
        )
    return replace(
        state,
        stage=Stage.CANARY,
        step=index,
        weight=policy.steps[index].weight,
        mirror=0,
        pause=None,
        stage_started_at=now,
        progress_at=now,
        failures=0,
    )


def _start(
    state: RolloutState, policy: Policy, desired: str, now: datetime, log: _Log
) -> RolloutState:
    """Start a rollout of ``desired`` over the current stable."""
    stable = state.stable
    if policy.strategy == "direct":
        message = f"switched from {stable} to {desired} at once (strategy direct)"
        done = _closed(replace(state, stable=desired, started_at=now), "DirectRollout", message)
        done = _drain(done, stable, None, now, policy)
        log.items.append(
            Decision(DecisionKind.PROMOTED, "DirectRollout", done.message, stable, desired, 0)
        )
        return done
    first = None if policy.shadow is not None else 0
    started = _enter_stage(
        replace(state, target=desired, started_at=now, reason="RolloutStarted", last_analysis=None),
        policy,
        now,
        index=first,
    )
    if first is None:
        message = f"rolling out {desired} over {stable}: shadow, {started.mirror}% mirrored"
    else:
        message = f"rolling out {desired} over {stable}: {_step_label(0, policy)}"
    started = replace(started, message=message)
    log.add(started, DecisionKind.ROLLOUT_STARTED, "ModelChanged", message, src=stable)
    if first is None:
        log.add(started, DecisionKind.SHADOW_STARTED, "ShadowPhase", message, src=stable)
    return started


def _promote(
    state: RolloutState,
    policy: Policy,
    now: datetime,
    reason: str,
    log: _Log,
    rolled_out: Mapping[str, str] | None,
) -> RolloutState:
    """The target passed (or ``promote``): start ``Promoting``, or finish at once (see ``step``).

    ``Promoting`` first routes 100% to the canary and leaves the stable slot on its Model for
    ``drain`` (every router picks up the table, requests in flight to stable finish); only then
    does the stable slot roll (``_advance_promoting``).
    """
    old, new = state.stable, state.target
    if rolled_out is None:
        message = f"{new} promoted to stable, replacing {old} ({reason})"
        done = _closed(replace(state, stable=new, previous=None), reason, message)
        done = _drain(done, old, _vacated(state), now, policy)
        log.items.append(Decision(DecisionKind.PROMOTED, reason, message, old, new, 0))
        return done
    message = (
        f"promoting {new} ({reason}): the canary scales to the stable variant's size, then "
        f"serves 100%; the stable variant rolls from {old} to {new} once its traffic has drained"
    )
    promoting = replace(
        state,
        stage=Stage.PROMOTING,
        previous=old,
        step=None,
        weight=state.weight,
        mirror=0,
        pause=None,
        reason=reason,
        message=message,
        stage_started_at=now,
        progress_at=now,
        failures=0,
    )
    log.items.append(
        Decision(DecisionKind.PROMOTION_STARTED, reason, message, old, new, promoting.weight)
    )
    return promoting


def _revert_promotion(
    state: RolloutState, now: datetime, *, kind: DecisionKind, reason: str, log: _Log
) -> RolloutState:
    """Abort during ``Promoting``: the stable slot goes back to ``previous`` (``reverting``).

    The canary (the target, fully ready: it served through the promotion) keeps 100% until the
    stable slot is fully rolled out and ready on ``previous`` again, which is at once when it has
    not started rolling yet; then everything goes back to stable and the rollout ends
    ``Aborted`` (see ``_finish_promotion``).
    """
    target, previous = state.target, state.previous
    message = (
        f"aborted the promotion of {target} ({reason}): all traffic goes back to {previous} "
        f"once the stable variant is fully ready on it; until then {target}'s canary serves"
    )
    reverted = replace(
        state,
        stable=previous,
        previous=None,
        pause=None,
        reason=reason,
        message=message,
        progress_at=now,
    )
    log.items.append(Decision(kind, reason, message, target, target, state.weight))
    return reverted


def _finish_promotion(
    state: RolloutState, policy: Policy, now: datetime, log: _Log
) -> RolloutState:
    """The stable slot is fully rolled out and ready: all traffic to it, the canary drains."""
    slot = _vacated(state)
    if not state.reverting:
        old, new, why = state.previous, state.target, state.reason or "Promoted"
        message = f"{new} promoted to stable, replacing {old} ({why})"
        done = _closed(replace(state, stable=new, previous=None), why, message)
        done = _drain(done, None, slot, now, policy)
        log.items.append(Decision(DecisionKind.PROMOTED, why, message, old, new, 0))
        return done
    message = (
        f"{state.stable} is fully ready on the stable variant again: all traffic on it; "
        f"{state.target} removed ({state.reason})"
    )
    done = replace(
        state,
        stage=Stage.ABORTED,
        weight=0,
        mirror=0,
        pause=None,
        message=message,
        stage_started_at=None,
        progress_at=None,
        failures=0,
    )
    return _drain(done, None, slot, now, policy)


def _route_settled_at(state: RolloutState, policy: Policy) -> datetime | None:
    """While ``Promoting`` and the stable slot not yet rolling: when it may start rolling.

    None while the canary still scales up (it does not serve 100% yet: nothing drains).
    """
    if state.stage != Stage.PROMOTING or state.reverting or state.stable == state.target:
        return None
    if state.weight < 100:
        return None
    if state.stage_started_at is None:
        return None
    return state.stage_started_at + timedelta(seconds=max(policy.drain_s, 0.0))


def _scale_up_canary(
    state: RolloutState,
    policy: Policy,
    now: datetime,
    rolled_out: Mapping[str, str],
    log: _Log,
) -> RolloutState:
    """Before the canary takes 100%: wait until it runs at the stable variant's size.

    A canary was sized for its step's weight (a 10% canary of a 10-pod fleet runs 1 pod); a
    ``promote`` at a low weight, or one from the shadow phase, would send everything to it while
    its autoscaler caught up. ``Promoting`` renders it at full size at once and keeps the step's
    weight until the edge reports it fully rolled out and ready at that size
    (``rolled_out["canary"]``); then it takes 100% and the stable slot's drain begins. The
    progress deadline bounds the wait: past it the promotion is held, traffic unchanged.
    """
    if rolled_out.get("canary") == state.target:
        message = (
            f"{state.target}'s canary runs at full size: it serves 100%; the stable variant "
            f"rolls from {state.previous} to {state.target} once its traffic has drained"
        )
        full = replace(state, weight=100, stage_started_at=now, progress_at=now, message=message)
        log.add(full, DecisionKind.STEP_ADVANCED, "CanaryScaledUp", message, src=state.previous)
        return full
    if state.pause is not None or state.progress_at is None:
        return state
    if now - state.progress_at < timedelta(seconds=policy.progress_deadline_s):
        return state
    message = (
        f"{state.target}'s canary is not fully ready at the stable variant's size after "
        f"{policy.progress_deadline_s:g}s (progressDeadline); traffic stays at "
        f"{state.weight}% on it"
    )
    held = replace(state, pause=PAUSE_DEADLINE, message=message)
    log.add(held, DecisionKind.PAUSED, PAUSE_DEADLINE, message, src=state.previous)
    return held


def _advance_promoting(
    state: RolloutState,
    policy: Policy,
    now: datetime,
    rolled_out: Mapping[str, str] | None,
    log: _Log,
) -> RolloutState:
    """Roll the stable slot once its traffic drained; finish once it is ready; mind the deadline.

    Past ``progressDeadline`` (counted from the start of the stable slot's roll) the rollout is
    held (``Degraded``, ``ProgressDeadlineExceeded``) whatever ``onFailure`` says: the canary,
    which passed, keeps serving 100%, and rolling the model back would need the same stable
    roll that is stuck. It still finishes by itself once the stable slot is ready; ``abort``
    rolls the slot back to ``previous``.
    """
    if rolled_out is None:
        return _finish_promotion(state, policy, now, log)
    if state.weight < 100 and not state.reverting:
        return _scale_up_canary(state, policy, now, rolled_out, log)
    settled = _route_settled_at(state, policy)
    if settled is not None:
        if now < settled:
            return state  # 100% on the canary; the old stable pods finish their requests
        message = (
            f"{state.target}'s canary serves 100%; the stable variant rolls from "
            f"{state.previous} to {state.target}"
        )
        return replace(state, stable=state.target, progress_at=now, message=message)
    if rolled_out.get("stable") == state.stable:
        return _finish_promotion(state, policy, now, log)
    if state.pause is not None or state.progress_at is None:
        return state
    if now - state.progress_at < timedelta(seconds=policy.progress_deadline_s):
        return state
    message = (
        f"the stable variant is not fully rolled out and ready on {state.stable} after "
        f"{policy.progress_deadline_s:g}s (progressDeadline); {state.target}'s canary serves 100%"
    )
    held = replace(state, pause=PAUSE_DEADLINE, message=message)
    log.add(held, DecisionKind.PAUSED, PAUSE_DEADLINE, message, src=state.previous)
    return held


def _roll_back(
    state: RolloutState,
    policy: Policy,
    now: datetime,
    *,
    kind: DecisionKind,
    reason: str,
    message: str,
    log: _Log,
) -> RolloutState:
    """All traffic back to stable; the target stops serving (drained) and is remembered."""
    target = state.target
    done = replace(
        state,
        stage=Stage.ABORTED,
        weight=0,
        mirror=0,
        pause=None,
        reason=reason,
        message=message,
        stage_started_at=None,
        progress_at=None,
        draining=target,
        drain_until=_drain_end(now, policy),
        drain_slot=_vacated(state),
    )
    log.items.append(Decision(kind, reason, message, target, target, 0))
    return done


def _fail(
    state: RolloutState, policy: Policy, now: datetime, reason: str, message: str, log: _Log
) -> RolloutState:
    """The rollout failed (failure limit or deadline): roll back or hold, per ``on_failure``."""
    if policy.on_failure == "rollback":
        return _roll_back(
            state,
            policy,
            now,
            kind=DecisionKind.ROLLED_BACK,
            reason=reason,
            message=f"rolled back {state.target} to {state.stable}: {message}",
            log=log,
        )
    pause = PAUSE_DEADLINE if reason == PAUSE_DEADLINE else PAUSE_ANALYSIS_FAILED
    held = replace(
        state,
        pause=pause,
        reason=reason,
        message=f"held {state.target} at {state.weight}% for a human (onFailure: pause): {message}",
    )
    log.add(held, DecisionKind.PAUSED, reason, held.message, src=state.stable)
    return held


# ----------------------------------------------------------------------------------------- commands


def _ignored(state: RolloutState, command: Command, why: str, log: _Log) -> RolloutState:
    log.add(
        state, DecisionKind.COMMAND_IGNORED, "NotApplicable", f"{command.verb}: {why}", src=None
    )
    return state


def _next(
    state: RolloutState,
    policy: Policy,
    now: datetime,
    reason: str,
    log: _Log,
    rolled_out: Mapping[str, str] | None,
) -> RolloutState:
    """Leave the current stage: shadow → step 1, step i → step i+1, last step → promote."""
    index = 0 if state.stage == Stage.SHADOW or state.step is None else state.step + 1
    if index >= len(policy.steps):
        return _promote(state, policy, now, reason, log, rolled_out)
    moved = _enter_stage(state, policy, now, index=index)
    message = f"{state.target}: {_step_label(index, policy)} ({reason})"
    moved = replace(moved, reason=reason, message=message)
    log.add(moved, DecisionKind.STEP_ADVANCED, reason, message, src=state.stable)
    return moved


def command_blocker(state: RolloutState, verb: Verb) -> str | None:
    """Why ``verb`` does not apply to ``state``, or None when it does.

    The one statement of each command's applicability: ``step`` records a ``CommandIgnored``
    decision with this text, and ``kubectl driftline`` warns with it right after sending.

    Args:
        state: the rollout state.
        verb: the command.

    Returns:
        A short phrase (``"no rollout to promote"``) or None.
    """
    human = state.pause in _HUMAN_PAUSES
    if state.stage == Stage.PROMOTING:
        if verb == "abort" and not state.reverting:
            return None
        if verb == "abort":
            return "already rolling the stable variant back"
        return "a promotion is in progress (only abort applies)"
    rules: dict[Verb, tuple[bool, str]] = {
        "promote": (
            state.target is not None and state.stage != Stage.IDLE,
            "no rollout to promote",
        ),
        "abort": (state.active, "no rollout in progress"),
        "retry": (
            state.active or (state.stage == Stage.ABORTED and state.target is not None),
            "no rollout to retry",
        ),
        "pause": (state.active and not human, "no running rollout to pause"),
        "resume": (state.active and human, "no paused rollout to resume"),
    }
    applies, why = rules[verb]
    return None if applies else why


def _command(
    state: RolloutState,
    policy: Policy,
    command: Command,
    now: datetime,
    log: _Log,
    rolled_out: Mapping[str, str] | None,
) -> RolloutState:
    if command.id in state.commands:
        return state
    s = replace(state, commands=(*state.commands, command.id)[-MAX_REMEMBERED_COMMANDS:])
    verb = command.verb
    blocker = command_blocker(s, verb)
    if blocker is not None:
        return _ignored(s, command, blocker, log)
    if verb == "promote":
        return _promote(s, policy, now, "ManualPromote", log, rolled_out)
    if verb == "abort" and s.stage == Stage.PROMOTING:
        return _revert_promotion(s, now, kind=DecisionKind.ABORTED, reason="ManualAbort", log=log)
    if verb == "abort":
        return _roll_back(
            s,
            policy,
            now,
            kind=DecisionKind.ABORTED,
            reason="ManualAbort",
            message=f"aborted {s.target} by command; all traffic on {s.stable}",
            log=log,
        )
    if verb == "retry":
        retried = _enter_stage(s, policy, now, index=s.step)
        where = "shadow" if retried.step is None else _step_label(retried.step, policy)
        message = f"retrying {retried.target} from {where}"
        retried = replace(retried, reason="ManualRetry", message=message)
        log.add(retried, DecisionKind.RETRIED, "ManualRetry", message, src=s.stable)
        return retried
    if verb == "pause":
        paused = replace(s, pause=PAUSE_MANUAL, reason=PAUSE_MANUAL, message="paused by command")
        log.add(paused, DecisionKind.PAUSED, PAUSE_MANUAL, paused.message, src=s.stable)
        return paused
    # resume
    if s.pause == PAUSE_APPROVAL:
        return _next(replace(s, pause=None), policy, now, "Approved", log, rolled_out)
    resumed = _enter_stage(s, policy, now, index=s.step)
    resumed = replace(resumed, reason="ManualResume", message=f"resumed {s.target}")
    log.add(resumed, DecisionKind.RESUMED, "ManualResume", resumed.message, src=s.stable)
    return resumed


# ------------------------------------------------------------------------------------ desired model


def _reconcile_desired(
    state: RolloutState, policy: Policy, desired: str | None, now: datetime, log: _Log
) -> RolloutState:
    if desired is None:
        return state
    if state.stage == Stage.PROMOTING:
        if desired == state.previous:  # None once reverting
            return _revert_promotion(
                state, now, kind=DecisionKind.ROLLED_BACK, reason="SpecReverted", log=log
            )
        return state  # any other change waits until the promotion ends (then applies at once)
    if state.stable is None:
        message = f"{desired} deployed (first model: nothing to compare with)"
        done = _closed(replace(state, stable=desired, started_at=now), "InitialDeploy", message)
        log.items.append(
            Decision(DecisionKind.DEPLOYED, "InitialDeploy", done.message, None, desired)
        )
        return done
    if desired == state.stable:
        if state.active:
            return _to_idle(
                state, policy, now, kind=DecisionKind.ROLLED_BACK, reason="SpecReverted", log=log
            )
        if state.stage == Stage.ABORTED:
            return _to_idle(
                state, policy, now, kind=DecisionKind.REVERTED, reason="SpecReverted", log=log
            )
        return state
    if desired == state.target:
        return state
    if state.active:
        old = state.target
        message = f"{desired} supersedes {old} mid-rollout"
        log.items.append(
            Decision(DecisionKind.SUPERSEDED, "ModelChanged", message, old, desired, 0)
        )
        cleared = replace(state, target=None, stage=Stage.IDLE, weight=0, mirror=0, pause=None)
        state = _drain(cleared, old, _vacated(state), now, policy)
    return _start(state, policy, desired, now, log)


def _to_idle(
    state: RolloutState,
    policy: Policy,
    now: datetime,
    *,
    kind: DecisionKind,
    reason: str,
    log: _Log,
) -> RolloutState:
    """The spec asks for the stable model again: close the rollout, everything on stable."""
    target = state.target
    message = f"spec.model is {state.stable} again: {target} removed, all traffic on stable"
    idle = _drain(_closed(state, reason, message), target, _vacated(state), now, policy)
    log.items.append(Decision(kind, reason, message, target, state.stable, 0))
    return idle


# ---------------------------------------------------------------------------------- time & analysis


def _fresh(state: RolloutState, result: AnalysisResult | None) -> bool:
    """A tick is consumed once, and only when measured after the current stage began."""
    if result is None or state.stage_started_at is None or result.at <= state.stage_started_at:
        return False
    return state.last_analysis is None or result.at > state.last_analysis.at


def _consume(
    state: RolloutState, policy: Policy, result: AnalysisResult, now: datetime, log: _Log
) -> RolloutState:
    s = replace(state, last_analysis=result)
    if s.pause in _HUMAN_PAUSES:
        return s  # informational while a human holds the rollout
    if result.outcome == "pass":
        s = replace(s, failures=0, progress_at=result.at)
        if s.pause == PAUSE_NO_DATA:
            s = replace(s, pause=None, reason="DataArrived", message=result.message)
            log.add(s, DecisionKind.RESUMED, "DataArrived", result.message, src=s.stable)
        return s
    if result.outcome == "hold":
        if s.pause != PAUSE_NO_DATA:
            message = f"waiting for data: {result.message}"
            s = replace(s, pause=PAUSE_NO_DATA, reason=PAUSE_NO_DATA, message=message)
            log.add(s, DecisionKind.PAUSED, PAUSE_NO_DATA, message, src=s.stable)
        return s
    failures = s.failures + 1
    s = replace(s, failures=failures, pause=None if s.pause == PAUSE_NO_DATA else s.pause)
    if failures > policy.failure_limit:
        why = f"{result.message} ({failures} failed tick(s) > failureLimit {policy.failure_limit})"
        return _fail(s, policy, now, result.reason, why, log)
    message = f"analysis failed ({failures}/{policy.failure_limit} tolerated): {result.message}"
    s = replace(s, reason=result.reason, message=message)
    log.add(s, DecisionKind.ANALYSIS_FAILED, result.reason, message, src=s.stable)
    return s


def _advance(
    state: RolloutState,
    policy: Policy,
    result: AnalysisResult | None,
    now: datetime,
    log: _Log,
    rolled_out: Mapping[str, str] | None,
) -> RolloutState:
    s = state
    if _fresh(s, result):
        assert result is not None  # narrowed by _fresh
        s = _consume(s, policy, result, now, log)
    if not s.active or s.pause in _HUMAN_PAUSES or s.stage_started_at is None:
        return s
    if s.progress_at is not None and now - s.progress_at >= timedelta(
        seconds=policy.progress_deadline_s
    ):
        message = f"no progress for {policy.progress_deadline_s:g}s (progressDeadline) at " + (
            "shadow" if s.step is None else _step_label(s.step, policy)
        )
        return _fail(s, policy, now, PAUSE_DEADLINE, message, log)
    if s.pause is not None:
        return s  # NoData hold: wait for a tick with data
    last = s.last_analysis
    passed = (
        last is not None
        and last.at > s.stage_started_at
        and last.outcome == "pass"
        and s.failures == 0
    )
    if not passed or now - s.stage_started_at < timedelta(seconds=_hold_s(s, policy)):
        return s
    if s.stage == Stage.SHADOW:
        return _next(s, policy, now, "ShadowPassed", log, rolled_out)
    assert s.step is not None  # a canary stage always has a step
    if policy.steps[s.step].approval:
        message = f"{s.target}: {_step_label(s.step, policy)} passed; waiting for approval"
        held = replace(s, pause=PAUSE_APPROVAL, reason=PAUSE_APPROVAL, message=message)
        log.add(held, DecisionKind.PAUSED, PAUSE_APPROVAL, message, src=s.stable)
        return held
    reason = "AllStepsPassed" if s.step + 1 >= len(policy.steps) else "AnalysisPassed"
    return _next(s, policy, now, reason, log, rolled_out)


def _finish_drain(state: RolloutState, now: datetime, log: _Log) -> RolloutState:
    if state.draining is None and state.drain_slot is None:
        return state
    if state.drain_until is not None and now < state.drain_until:
        return state
    if state.draining is not None:
        message = f"{state.draining} drained and removed"
        log.items.append(
            Decision(DecisionKind.DRAINED, "Drained", message, state.draining, None, state.weight)
        )
    return replace(state, draining=None, drain_until=None, drain_slot=None)


# --------------------------------------------------------------------------------------------- step


def step(
    state: RolloutState,
    policy: Policy,
    desired: str | None,
    *,
    now: datetime,
    analysis: AnalysisResult | None = None,
    commands: Iterable[Command] = (),
    rolled_out: Mapping[str, str] | None = None,
) -> tuple[RolloutState, tuple[Decision, ...]]:
    """Advance one Deployment's rollout by one reconcile.

    Order within a call: commands (in the order given, each once), then the desired model (start,
    supersede, or revert to stable), then the analysis tick and time (the progress deadline, the
    end of the current hold), then the promotion (``Promoting`` ends when ``rolled_out`` says the
    stable slot is ready; a spec change that waited for it applies right after), then drains
    that are due.

    Args:
        state: the stored state (``RolloutState()`` for a new Deployment).
        policy: the rollout policy from the spec.
        desired: ``spec.model`` when that Model is ready; None when it is not (nothing starts, and
            a rollout in progress continues).
        now: the current time (timezone-aware).
        analysis: the latest analysis tick, if one ran; consumed once.
        commands: commands read from the object (usually zero or one); each applies once, by id.
        rolled_out: the readiness fact, per variant slot (``stable``): the Model that slot is
            fully rolled out and ready on (apps/v1: observedGeneration >= generation, updated ==
            replicas == ready, no old pods), absent while it rolls. With a mapping (the
            operator), promotion goes through ``Promoting`` and ends when ``rolled_out["stable"]``
            is the promoted Model. None: the edge does not roll slots in place (local mode runs a
            Model's processes by name), so promotion completes in the call that decides it.

    Returns:
        The next state and the decisions taken, in order. Calling again with the returned state and
        the same inputs returns the same state and no decisions.

    Raises:
        ValueError: when ``now`` is naive (status times are compared as UTC instants).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (status times are UTC)")
    log = _Log()
    s = state
    for command in commands:
        s = _command(s, policy, command, now, log, rolled_out)
    s = _reconcile_desired(s, policy, desired, now, log)
    if s.active:
        s = _advance(s, policy, analysis, now, log, rolled_out)
    if s.stage == Stage.PROMOTING:
        s = _advance_promoting(s, policy, now, rolled_out, log)
        if s.stage != Stage.PROMOTING:  # ended: a spec change that waited applies now
            s = _reconcile_desired(s, policy, desired, now, log)
    if s.draining is not None and s.draining in (s.stable, s.target if s.active else None):
        s = replace(s, draining=None)  # live again: never drain what serves
    slot = s.drain_slot
    if slot is not None and s.active and slot.role == s.stage.value.lower():
        s = replace(s, drain_slot=None)  # the slot carries the (new) target again
    if s.draining is None and s.drain_slot is None:
        s = replace(s, drain_until=None)
    s = _finish_drain(s, now, log)  # last: a drain that starts and ends now is done in this call
    return s, tuple(log.items)
