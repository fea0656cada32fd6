"""Conditions: set_condition keeps history; the kstatus trio follows one state.

We test these aspects:
- lastTransitionTime moves only when status flips, not on reason/message changes;
- one condition per type, order kept, input not modified;
- derive_conditions sets Ready/Reconciling/Stalled so that kstatus reads Current, InProgress,
  Failed as rollouts-analysis-and-gitops §4 prescribes;
- kstatus rules in order: terminating, generation not observed, Reconciling, Stalled, Ready.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from driftline.operator.api.meta import Condition, ConditionStatus
from driftline.operator.conditions import (
    KStatus,
    ReadinessState,
    derive_conditions,
    find,
    is_true,
    kstatus,
    set_condition,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5, microseconds=123)


def _cond(type_: str, status: str, reason: str = "Because", when: datetime = T0) -> Condition:
    return Condition(
        type=type_,
        status=ConditionStatus(status),
        reason=reason,
        message="m",
        last_transition_time=when,
    )


def test_appending_a_new_type_stamps_now_to_the_second() -> None:
    out = set_condition([], _cond("Ready", "True", when=T0), T1)
    assert out[0].last_transition_time == T1.replace(microsecond=0)


def test_changing_only_the_reason_keeps_the_transition_time() -> None:
    start = [_cond("Ready", "False", reason="Progressing", when=T0)]
    out = set_condition(start, _cond("Ready", "False", reason="StillProgressing"), T1)
    assert out[0].reason == "StillProgressing"
    assert out[0].last_transition_time == T0


def test_flipping_the_status_moves_the_transition_time() -> None:
    start = [_cond("Ready", "False", when=T0)]
    out = set_condition(start, _cond("Ready", "True"), T1)
    assert out[0].status is ConditionStatus.TRUE
    assert out[0].last_transition_time == T1.replace(microsecond=0)


def test_setting_keeps_one_per_type_and_the_order() -> None:
    start = [_cond("Ready", "False"), _cond("Stalled", "False"), _cond("Custom", "True")]
    out = set_condition(start, _cond("Stalled", "True"), T1)
    assert [c.type for c in out] == ["Ready", "Stalled", "Custom"]
    assert start[1].status is ConditionStatus.FALSE  # input untouched


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        set_condition([], _cond("Ready", "True"), datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("state", "ready", "reconciling", "stalled", "expected"),
    [
        (ReadinessState.CURRENT, True, False, False, KStatus.CURRENT),
        (ReadinessState.PROGRESSING, False, True, False, KStatus.IN_PROGRESS),
        (ReadinessState.STALLED, False, False, True, KStatus.FAILED),
    ],
)
def test_deriving_the_trio_gives_the_kstatus_we_mean(
    state: ReadinessState, ready: bool, reconciling: bool, stalled: bool, expected: KStatus
) -> None:
    out = derive_conditions(
        [_cond("ArtifactVerified", "True")],
        state,
        reason="Why",
        message="what",
        generation=3,
        now=T1,
    )
    assert is_true(out, "Ready") is ready
    assert is_true(out, "Reconciling") is reconciling
    assert is_true(out, "Stalled") is stalled
    assert find(out, "ArtifactVerified") is not None
    assert all(c.observed_generation == 3 for c in out if c.type != "ArtifactVerified")
    assert kstatus(generation=3, observed_generation=3, conditions=out) is expected


def test_moving_from_progressing_to_current_flips_times_once() -> None:
    first = derive_conditions(
        [], ReadinessState.PROGRESSING, reason="A", message="", generation=1, now=T0
    )
    again = derive_conditions(
        first, ReadinessState.PROGRESSING, reason="B", message="", generation=1, now=T1
    )
    assert [c.last_transition_time for c in again] == [T0, T0, T0]
    done = derive_conditions(
        again, ReadinessState.CURRENT, reason="Succeeded", message="", generation=1, now=T1
    )
    times = {c.type: c.last_transition_time for c in done}
    assert times == {
        "Ready": T1.replace(microsecond=0),
        "Reconciling": T1.replace(microsecond=0),
        "Stalled": T0,
    }


def test_kstatus_rule_order() -> None:
    ready = [_cond("Ready", "True")]
    assert kstatus(generation=2, observed_generation=2, conditions=ready) is KStatus.CURRENT
    assert kstatus(generation=2, observed_generation=1, conditions=ready) is KStatus.IN_PROGRESS
    assert (
        kstatus(generation=2, observed_generation=2, conditions=ready, deleting=True)
        is KStatus.TERMINATING
    )
    assert kstatus(generation=2, observed_generation=None, conditions=[]) is KStatus.CURRENT
    both = [_cond("Reconciling", "True"), _cond("Stalled", "True")]
    assert kstatus(generation=1, observed_generation=1, conditions=both) is KStatus.IN_PROGRESS
    not_ready = [_cond("Ready", "False")]
    assert kstatus(generation=1, observed_generation=1, conditions=not_ready) is KStatus.IN_PROGRESS
