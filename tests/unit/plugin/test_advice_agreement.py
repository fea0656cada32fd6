"""``kubectl driftline``'s advice and the operator's command rules agree, state by state.

We test this aspect: for states covering every stage and pause reason, the plugin's advice (read
from the status the operator wrote) is None exactly when ``rollout.step`` applies the command, and
otherwise names the same reason the operator records in its ``CommandIgnored`` decision.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from driftline.operator.api import Deployment
from driftline.operator.plugin import advice
from driftline.operator.rollout import (
    PAUSE_ANALYSIS_FAILED,
    PAUSE_APPROVAL,
    PAUSE_DEADLINE,
    PAUSE_MANUAL,
    PAUSE_NO_DATA,
    VERBS,
    Command,
    DecisionKind,
    Policy,
    RolloutState,
    Stage,
    Verb,
    step,
)
from driftline.operator.rollout_status import write_status

NOW = datetime(2026, 1, 1, tzinfo=UTC)
EARLIER = NOW - timedelta(seconds=5)
POLICY = Policy()

STATES = {
    "idle": RolloutState(stable="v1", started_at=EARLIER),
    "idle-draining": RolloutState(
        stable="v2", draining="v1", drain_until=NOW + timedelta(seconds=9)
    ),
    "aborted": RolloutState(stable="v1", target="v2", stage=Stage.ABORTED, step=0),
    "shadow": RolloutState(
        stable="v1",
        target="v2",
        stage=Stage.SHADOW,
        mirror=50,
        stage_started_at=EARLIER,
        progress_at=EARLIER,
    ),
    **{
        f"canary-{pause or 'running'}": RolloutState(
            stable="v1",
            target="v2",
            stage=Stage.CANARY,
            step=0,
            weight=10,
            pause=pause,
            stage_started_at=EARLIER,
            progress_at=EARLIER,
        )
        for pause in (
            None,
            PAUSE_NO_DATA,
            PAUSE_MANUAL,
            PAUSE_APPROVAL,
            PAUSE_ANALYSIS_FAILED,
            PAUSE_DEADLINE,
        )
    },
}


def _deployment(state: RolloutState) -> Deployment:
    status = write_status(None, state, (), POLICY, now=NOW, generation=1)
    return Deployment.model_validate(
        {
            "metadata": {"name": "churn", "namespace": "ml", "generation": 1},
            "spec": {"model": state.target or state.stable},
            "status": status.to_wire(),
        }
    )


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("name", sorted(STATES))
def test_advice_matches_the_state_machine(name: str, verb: Verb) -> None:
    state = STATES[name]
    desired = state.target if state.active else state.stable
    _, decisions = step(state, POLICY, desired, now=NOW, commands=[Command(verb, "c1")])
    ignored = [d for d in decisions if d.kind == DecisionKind.COMMAND_IGNORED]
    note = advice(verb, _deployment(state))
    if ignored:
        assert note is not None
        assert ignored[0].message.removeprefix(f"{verb}: ") in note
    else:
        assert note is None, note
