"""Status conditions: set one without losing its history, and derive the kstatus trio.

Every Driftline kind reports ``Ready`` (positive polarity), ``Reconciling`` and ``Stalled``
(abnormal-true), so kstatus (Flux, Helm ``--wait``), Argo CD and ``kubectl wait`` read them without
configuration (``docs``: rollouts-analysis-and-gitops §3-§4). This module is the one place that
decides how the three relate:

=============  =======  ===========  =======  ===============
state          Ready    Reconciling  Stalled  kstatus
=============  =======  ===========  =======  ===============
``current``    True     False        False    Current
``progressing``False    True         False    InProgress
``stalled``    False    False        True     Failed
=============  =======  ===========  =======  ===============

Pure: no clock (``now`` is a parameter), no I/O; the handlers and local mode call it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum

from driftline.operator.api.meta import Condition, ConditionStatus, ConditionType

__all__ = [
    "KStatus",
    "ReadinessState",
    "derive_conditions",
    "find",
    "is_true",
    "kstatus",
    "set_condition",
]


class ReadinessState(StrEnum):
    """The three states an object can be in, from which the kstatus trio follows."""

    CURRENT = "current"
    """Doing what the spec asks: Ready=True."""

    PROGRESSING = "progressing"
    """Working towards the spec (rollout stepping, awaiting approval or pods): Reconciling=True."""

    STALLED = "stalled"
    """Cannot progress without a change (rolled back, deadline exceeded, invalid spec):
    Stalled=True."""


class KStatus(StrEnum):
    """The results of kstatus' ``Compute`` that Driftline objects can reach."""

    IN_PROGRESS = "InProgress"
    FAILED = "Failed"
    CURRENT = "Current"
    TERMINATING = "Terminating"


def _to_second(now: datetime) -> datetime:
    """metav1.Time has one-second precision; an aware UTC time keeps comparisons honest."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    return now.astimezone(UTC).replace(microsecond=0)


def find(conditions: Sequence[Condition], type_: str) -> Condition | None:
    """The condition of ``type_``, or None."""
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Sequence[Condition], type_: str) -> bool:
    """Whether the condition of ``type_`` exists with status True."""
    found = find(conditions, type_)
    return found is not None and found.status is ConditionStatus.TRUE


def set_condition(
    conditions: Sequence[Condition], new: Condition, now: datetime
) -> list[Condition]:
    """Set ``new`` in ``conditions``, keeping one condition per type.

    ``lastTransitionTime`` moves to ``now`` only when the status flips (or the type is new);
    a change of reason, message or observedGeneration alone keeps the old time, as the
    ``metav1.Condition`` contract says. ``new.last_transition_time`` is ignored.

    Args:
        conditions: the current conditions (not modified).
        new: the condition to set.
        now: the current time (timezone-aware); truncated to whole seconds.

    Returns:
        A new list: the existing order, with ``new`` in place of its type or appended.
    """
    old = find(conditions, new.type)
    when = (
        old.last_transition_time
        if old is not None and old.status == new.status
        else _to_second(now)
    )
    updated = new.model_copy(update={"last_transition_time": when})
    if old is None:
        return [*conditions, updated]
    return [updated if c.type == new.type else c for c in conditions]


def derive_conditions(
    conditions: Sequence[Condition],
    state: ReadinessState,
    *,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """Set ``Ready``, ``Reconciling`` and ``Stalled`` consistently for ``state``.

    Args:
        conditions: the current conditions (other types are kept untouched).
        state: where the object is.
        reason: CamelCase cause, e.g. ``RolloutInProgress``, ``AnalysisFailed``, ``Succeeded``.
        message: one line for humans (step, weight, the failing number).
        generation: the ``metadata.generation`` acted on (``observedGeneration``).
        now: the current time (timezone-aware).

    Returns:
        The new list of conditions.
    """
    wanted = {
        ConditionType.READY: state is ReadinessState.CURRENT,
        ConditionType.RECONCILING: state is ReadinessState.PROGRESSING,
        ConditionType.STALLED: state is ReadinessState.STALLED,
    }
    result = list(conditions)
    for type_, true in wanted.items():
        result = set_condition(
            result,
            Condition(
                type=type_.value,
                status=ConditionStatus.TRUE if true else ConditionStatus.FALSE,
                reason=reason,
                message=message,
                observed_generation=generation,
                last_transition_time=_to_second(now),
            ),
            now,
        )
    return result


def kstatus(
    *,
    generation: int | None,
    observed_generation: int | None,
    conditions: Sequence[Condition],
    deleting: bool = False,
) -> KStatus:
    """What kstatus (Flux, Helm ``--wait``) computes for a Driftline object.

    The rules in kstatus' order: deletion → Terminating; an observed generation behind the spec →
    InProgress; Reconciling=True → InProgress; Stalled=True → Failed; Ready False/Unknown →
    InProgress; otherwise Current. Used by tests to prove the conditions say what we mean, and by
    ``kubectl driftline status``.

    Args:
        generation: ``metadata.generation``.
        observed_generation: ``status.observedGeneration`` (None when absent: check skipped).
        conditions: ``status.conditions``.
        deleting: whether ``metadata.deletionTimestamp`` is set.

    Returns:
        The kstatus result.
    """
    if deleting:
        return KStatus.TERMINATING
    if observed_generation is not None and observed_generation != generation:
        return KStatus.IN_PROGRESS
    if is_true(conditions, ConditionType.RECONCILING):
        return KStatus.IN_PROGRESS
    if is_true(conditions, ConditionType.STALLED):
        return KStatus.FAILED
    ready = find(conditions, ConditionType.READY)
    if ready is not None and ready.status is not ConditionStatus.TRUE:
        return KStatus.IN_PROGRESS
    return KStatus.CURRENT
