"""The split decision: observed shares match the weights; sticky users move monotonically."""

from __future__ import annotations

import random
import string

import pytest

from driftline.serving.router.table import (
    RouteTable,
    mirrored,
    pick,
    route,
    sticky_draw,
    table_from_mapping,
)

PICKS = 10_000
TOLERANCE_PP = 2.0


def _table(canary_weight: int, mirror: int = 0) -> RouteTable:
    data: dict[str, object] = {
        "version": 1,
        "stable": {"model_version": "1", "weight": 100 - canary_weight, "endpoints": ["h:1"]},
        "canary": {"model_version": "2", "weight": canary_weight, "endpoints": ["h:2"]},
    }
    if mirror:
        data["shadow"] = {"model_version": "3", "mirror_percent": mirror, "endpoints": ["h:3"]}
    return table_from_mapping(data)


@pytest.mark.parametrize("canary_weight", [0, 1, 10, 25, 50, 90, 100])
def test_random_split_is_within_2pp_of_the_weights(canary_weight: int) -> None:
    rng = random.Random(20261122 + canary_weight)
    table = _table(canary_weight)
    canary = sum(pick(table, rng.random()) == "canary" for _ in range(PICKS))
    assert abs(100.0 * canary / PICKS - canary_weight) <= TOLERANCE_PP


@pytest.mark.parametrize("canary_weight", [5, 10, 50])
def test_sticky_split_over_many_users_is_within_2pp(canary_weight: int) -> None:
    rng = random.Random(7)
    table = _table(canary_weight)
    users = ["".join(rng.choices(string.ascii_letters, k=12)) for _ in range(PICKS)]
    canary = sum(pick(table, sticky_draw(user)) == "canary" for user in users)
    assert abs(100.0 * canary / PICKS - canary_weight) <= TOLERANCE_PP


def test_a_sticky_user_keeps_the_variant_while_weights_do_not_change() -> None:
    table = _table(30)
    for user in (f"user-{i}" for i in range(500)):
        first = pick(table, sticky_draw(user))
        assert all(pick(table, sticky_draw(user)) == first for _ in range(5))


def test_sticky_users_move_only_stable_to_canary_as_the_canary_grows() -> None:
    users = [f"user-{i}" for i in range(2000)]
    previous = {user: "stable" for user in users}
    for weight in [0, 1, 5, 10, 20, 35, 50, 75, 99, 100]:
        table = _table(weight)
        now = {user: pick(table, sticky_draw(user)) for user in users}
        moved_back = [u for u in users if previous[u] == "canary" and now[u] == "stable"]
        assert not moved_back, f"users left the canary at weight {weight}: {moved_back[:3]}"
        previous = now
    assert set(previous.values()) == {"canary"}


def test_sticky_draw_is_deterministic_and_in_range() -> None:
    assert sticky_draw("alice") == sticky_draw("alice")
    assert sticky_draw("alice") != sticky_draw("bob")
    draws = [sticky_draw(str(i)) for i in range(1000)]
    assert all(0.0 <= d < 1.0 for d in draws)


def test_weight_extremes() -> None:
    assert pick(_table(0), 0.0) == "stable"
    assert pick(_table(100), 0.999999) == "canary"
    assert pick(_table(10), 0.0999) == "canary"
    assert pick(_table(10), 0.1) == "stable"


@pytest.mark.parametrize("u", [-0.1, 1.0, 2.0, float("nan")])
def test_rejecting_a_draw_outside_the_unit_interval(u: float) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        pick(_table(10), u)


@pytest.mark.parametrize("percent", [0, 10, 50, 100])
def test_mirror_share_is_within_2pp(percent: int) -> None:
    rng = random.Random(percent)
    table = _table(10, mirror=percent) if percent else _table(10)
    hits = sum(mirrored(table, rng.random()) for _ in range(PICKS))
    assert abs(100.0 * hits / PICKS - percent) <= TOLERANCE_PP


def test_a_variant_without_healthy_endpoints_falls_back_to_stable() -> None:
    assert route("canary", {"stable", "canary"}) == "canary"
    assert route("canary", {"stable"}) == "stable"
    assert route("stable", set()) == "stable"
