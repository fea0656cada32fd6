"""We test these aspects of rollout commands (``kubectl driftline promote|abort|retry|…``):

- the ``driftline.dev/command`` annotation parser: accepted forms and errors that name the problem;
- each verb's effect in each stage, and that a command not applicable is ignored but consumed;
- each command applies once, by id, even though the annotation stays on the object;
- retry after an abort resumes at the failed step; retry in a running step restarts its analysis.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from driftline.operator import names
from driftline.operator.analysis import Measurements
from driftline.operator.rollout import (
    VERBS,
    Command,
    RolloutState,
    Stage,
    command_patch,
    new_command_id,
    parse_command,
    step,
    traffic,
)

from .conftest import T0, Sim, healthy, policy

SimFactory = Callable[..., Sim]


@pytest.mark.parametrize("verb", VERBS)
def test_parsing_every_verb(verb: str) -> None:
    command = parse_command(f"{verb}:1763776800-a1b2")
    assert (command.verb, command.id) == (verb, "1763776800-a1b2")
    assert parse_command(command.annotation_value()) == command


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("promote", "expected '<verb>:<id>'"),
        ("deploy:1", "unknown verb 'deploy'"),
        ("promote:", "the id must be"),
        ("promote:-x", "the id must be"),
        ("promote:a b", "the id must be"),
        ("promote:" + "x" * 64, "the id must be"),
    ],
)
def test_rejecting_malformed_annotations(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as info:
        parse_command(value)
    assert names.ANNOTATION_COMMAND in str(info.value)


def test_annotation_key_lives_in_names() -> None:
    assert names.ANNOTATION_COMMAND == "driftline.dev/command"


def test_the_patch_kubectl_driftline_sends() -> None:
    ident = new_command_id(T0, "a1b2c3")
    assert ident == f"{int(T0.timestamp())}-a1b2c3"
    patch = command_patch(Command("promote", ident))
    assert patch == {"metadata": {"annotations": {"driftline.dev/command": f"promote:{ident}"}}}
    value = patch["metadata"]["annotations"][names.ANNOTATION_COMMAND]
    assert parse_command(value) == Command("promote", ident)
    with pytest.raises(ValueError, match="invalid command id"):
        new_command_id(T0, "no spaces")


def _canary_at_step_2(sim: SimFactory) -> Sim:
    s = sim()
    s.desired = "v2"
    s.run(25)
    assert (s.state.stage, s.state.step) == (Stage.CANARY, 1)
    return s


def test_promote_skips_the_remaining_steps(sim: SimFactory) -> None:
    s = _canary_at_step_2(sim)
    s.send("promote", "p1")
    (decision,) = s.tick()
    assert (decision.kind.value, decision.reason) == ("Promoted", "ManualPromote")
    assert s.state.stable == "v2" and s.state.stage == Stage.IDLE


def test_abort_rolls_back_whatever_on_failure_says(sim: SimFactory) -> None:
    s = sim(on_failure="pause")
    s.desired = "v2"
    s.run(25)
    s.send("abort", "a1")
    (decision,) = s.tick()
    assert (decision.kind.value, decision.reason) == ("Aborted", "ManualAbort")
    assert decision.warning and decision.rollback
    assert s.state.stage == Stage.ABORTED and s.state.weight == 0
    assert s.status is not None and s.status.phase == "Degraded"


def test_a_command_applies_once_although_the_annotation_stays(sim: SimFactory) -> None:
    s = _canary_at_step_2(sim)
    s.send("pause", "same-id")
    s.run(50)
    s.send("resume", "r1")
    s.run(5)
    s.send("pause", "same-id")  # an old id, re-sent: ignored without a decision
    s.run(5)
    kinds = [d.kind.value for _, d in s.log if d.kind.value in ("Paused", "Resumed")]
    assert kinds == ["Paused", "Resumed"]
    assert s.state.commands == ("same-id", "r1")
    assert s.state.pause is None


def test_pause_and_resume(sim: SimFactory) -> None:
    s = _canary_at_step_2(sim)
    s.send("pause", "p1")
    (paused,) = s.tick()
    assert (paused.kind.value, paused.reason, paused.warning) == ("Paused", "ManualPause", False)
    assert s.status is not None and s.status.phase == "Paused"
    s.run(400)  # the deadline does not run while a human holds the rollout
    assert (s.state.stage, s.state.step, s.state.weight) == (Stage.CANARY, 1, 50)
    assert [d.kind.value for _, d in s.log][-1] == "Paused"
    s.send("resume", "r1")
    (resumed,) = s.tick()
    assert resumed.kind.value == "Resumed"
    s.run(100, until=lambda x: x.state.stage == Stage.IDLE)
    assert s.state.stable == "v2"


def test_retry_after_abort_resumes_at_the_failed_step(sim: SimFactory) -> None:
    broken = {"on": True}

    def measure(role: str, model: str, now: datetime) -> Measurements:
        if model == "v2" and broken["on"] and (now - T0).total_seconds() > 25:
            return Measurements(requests=400, errors=100)
        return healthy(role, model, now)

    s = sim(measure)
    s.desired = "v2"
    s.run(60, until=lambda x: x.state.stage == Stage.ABORTED)
    assert s.state.step == 1
    broken["on"] = False  # fixed whatever was wrong (e.g. a dependency)
    s.send("retry", "again-1")
    (decision,) = s.tick()
    assert (decision.kind.value, decision.reason) == ("Retried", "ManualRetry")
    assert (s.state.stage, s.state.step, s.state.weight, s.state.failures) == (
        Stage.CANARY,
        1,
        50,
        0,
    )
    assert traffic(s.state).draining == ()  # serving again: never drained under its feet
    s.run(100, until=lambda x: x.state.stage == Stage.IDLE)
    assert s.state.stable == "v2"


def test_retry_in_a_running_step_restarts_its_analysis(sim: SimFactory) -> None:
    s = _canary_at_step_2(sim)
    started = s.state.stage_started_at
    s.send("retry", "r")
    (decision,) = s.tick()
    assert decision.kind.value == "Retried"
    assert s.state.stage_started_at == s.now and s.now != started
    assert s.state.step == 1


@pytest.mark.parametrize("verb", VERBS)
def test_commands_without_a_rollout_are_ignored_but_consumed(verb: str) -> None:
    p = policy()
    idle = RolloutState(stable="v1", message="v1 deployed")
    state, decisions = step(idle, p, "v1", now=T0, commands=[Command(verb, "c1")])  # type: ignore[arg-type]
    assert [d.kind.value for d in decisions] == ["CommandIgnored"]
    assert verb in decisions[0].message
    assert state == RolloutState(stable="v1", message="v1 deployed", commands=("c1",))
    # a rollout starting later does not see the stale command
    _, decisions = step(state, p, "v2", now=T0, commands=[Command(verb, "c1")])  # type: ignore[arg-type]
    assert [d.kind.value for d in decisions] == ["RolloutStarted"]


def test_promote_after_an_abort_forces_the_model(sim: SimFactory) -> None:
    bad = Measurements(requests=400, errors=100)
    s = sim(lambda r, m, n: bad if m == "v2" else healthy(r, m, n))
    s.desired = "v2"
    s.run(60, until=lambda x: x.state.stage == Stage.ABORTED)
    s.send("promote", "force")
    (decision,) = s.tick()
    assert (decision.kind.value, decision.reason) == ("Promoted", "ManualPromote")
    assert s.state.stable == "v2" and traffic(s.state).draining == ("v1",)
