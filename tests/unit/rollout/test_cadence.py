"""The timer cadence: a Deployment is reconciled at its rollout's next wake, or one resync later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from driftline.operator.cadence import (
    LISTEN_SHARE,
    MAX_TICK_S,
    listen_s,
    next_due_in_s,
    tick_action,
    timer_tick_s,
)
from driftline.operator.rollout import Policy, RolloutState, Stage, wake_at

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_tick_is_at_most_max_tick_and_never_longer_than_the_resync() -> None:
    assert timer_tick_s(15.0) == MAX_TICK_S
    assert timer_tick_s(0.3) == 0.3


def test_due_at_the_wake_when_it_comes_before_the_resync() -> None:
    assert next_due_in_s(T0 + timedelta(seconds=2), T0, 15.0) == 2.0
    assert next_due_in_s(T0 + timedelta(seconds=40), T0, 15.0) == 15.0
    assert next_due_in_s(None, T0, 15.0) == 15.0
    assert next_due_in_s(T0 - timedelta(seconds=3), T0, 15.0) == 0.0  # overdue: at once


@pytest.mark.parametrize(
    ("due_in", "expected"),
    [(None, 0.0), (-1.0, 0.0), (0.0, 0.0), (0.4, 0.4), (1.0, 1.0), (1.01, None), (14.0, None)],
)
def test_a_tick_reconciles_now_sleeps_to_a_near_wake_or_skips(
    due_in: float | None, expected: float | None
) -> None:
    assert tick_action(due_in, 1.0) == expected


def test_a_canary_step_is_due_at_its_analysis_tick_not_at_the_resync() -> None:
    policy = Policy(interval_s=2.0)
    state = RolloutState(
        stable="m-v1",
        target="m-v2",
        stage=Stage.CANARY,
        step=0,
        weight=10,
        stage_started_at=T0,
        progress_at=T0,
    )
    assert next_due_in_s(wake_at(state, policy, T0), T0, 15.0) == pytest.approx(2.0)


def test_an_idle_tick_listens_for_pokes_for_most_of_the_tick() -> None:
    assert listen_s(None, 1.0) == pytest.approx(LISTEN_SHARE)
    assert 0 < LISTEN_SHARE < 1  # a gap remains before the next (sharp) tick
    assert listen_s(0.4, 1.0) == 0.4  # a wake in this tick: until then (a poke cuts it short)
    assert listen_s(0.0, 1.0) == 0.0  # due now: no wait
