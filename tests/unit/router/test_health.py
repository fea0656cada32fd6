"""Passive health: ejection after connect failures, doubling back-off, reset on success."""

from __future__ import annotations

import pytest

from driftline.serving.router.health import (
    HEALTHY,
    HealthPolicy,
    available,
    on_connect_failure,
    on_success,
)


def test_one_failure_ejects_for_the_base_time_by_default() -> None:
    policy = HealthPolicy(base_ejection_s=5, max_ejection_s=60)
    health, ejected = on_connect_failure(HEALTHY, 100.0, policy)
    assert ejected
    assert not available(health, 104.9)
    assert available(health, 105.0)


def test_ejections_in_a_row_double_up_to_the_ceiling() -> None:
    policy = HealthPolicy(base_ejection_s=5, max_ejection_s=30)
    health = HEALTHY
    durations = []
    now = 0.0
    for _ in range(5):
        health, _ = on_connect_failure(health, now, policy)
        durations.append(health.ejected_until - now)
        now = health.ejected_until
    assert durations == [5, 10, 20, 30, 30]


def test_success_resets_the_back_off() -> None:
    policy = HealthPolicy(base_ejection_s=5)
    health, _ = on_connect_failure(HEALTHY, 0.0, policy)
    health, _ = on_connect_failure(health, 5.0, policy)
    assert on_success(health) == HEALTHY
    again, _ = on_connect_failure(on_success(health), 20.0, policy)
    assert again.ejected_until == 25.0


def test_several_failures_needed_when_configured() -> None:
    policy = HealthPolicy(failures_to_eject=3)
    health = HEALTHY
    results = []
    for _ in range(3):
        health, ejected = on_connect_failure(health, 0.0, policy)
        results.append(ejected)
    assert results == [False, False, True]


@pytest.mark.parametrize(
    "kwargs",
    [{"failures_to_eject": 0}, {"base_ejection_s": 0}, {"base_ejection_s": 9, "max_ejection_s": 1}],
)
def test_rejecting_a_bad_policy(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        HealthPolicy(**kwargs)  # type: ignore[arg-type]
