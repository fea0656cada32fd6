"""Properties of ``rollout.step`` over random histories (hypothesis).

Random sequences of (time passing, spec.model changes or "model not ready", commands with ids drawn
from a small pool so they repeat, analysis ticks that pass, fail, hold, or arrive stale), under
a handful of policies. After every step we check:

- weights: the canary weight is exactly its step's weight in a canary step and 0 otherwise (so it
  never exceeds the step weight), 0 after an abort or rollback, never goes down within a rollout
  while it is stepping, and stable + canary weights add up to 100;
- promotion on analysis only after every step of this rollout was entered and passed;
- stable never disappears once set;
- idempotence: stepping again with the same inputs changes nothing and decides nothing;
- the status stores the state: write → JSON wire → read returns it;
- a command whose id was applied already changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from driftline.operator.analysis import AnalysisResult, Outcome, ShadowThresholds, Thresholds
from driftline.operator.api.deployment import DeploymentStatus
from driftline.operator.rollout import (
    VERBS,
    Command,
    DecisionKind,
    Policy,
    RolloutState,
    ShadowPolicy,
    Stage,
    Step,
    step,
    traffic,
)
from driftline.operator.rollout_status import state_from_status, write_status

T0 = datetime(2026, 1, 1, tzinfo=UTC)

POLICIES = [
    Policy(
        steps=(Step(10, 20.0), Step(50, 20.0), Step(100, 20.0)),
        interval_s=10.0,
        progress_deadline_s=90.0,
        drain_s=5.0,
    ),
    Policy(
        steps=(Step(5, 0.0), Step(30, 10.0, approval=True), Step(60)),
        interval_s=5.0,
        failure_limit=2,
        on_failure="pause",
        progress_deadline_s=60.0,
        drain_s=0.0,
    ),
    Policy(
        shadow=ShadowPolicy(50, 30.0, ShadowThresholds(10, 0.9)),
        steps=(Step(20, 10.0),),
        interval_s=10.0,
        failure_limit=1,
        thresholds=Thresholds(no_data="fail"),
    ),
    Policy(strategy="direct"),
]

OUTCOMES: dict[str, tuple[str, Outcome, str]] = {
    "pass": ("Successful", "pass", "AnalysisPassed"),
    "fail": ("Failed", "fail", "ErrorRateTooHigh"),
    "hold": ("NoData", "hold", "NoData"),
}

EVENTS = st.tuples(
    st.sampled_from([0, 1, 3, 7, 11, 25, 61]),  # seconds passing
    st.sampled_from(["v1", "v1", "v2", "v2", "v3", None]),  # spec.model (None: not ready)
    st.one_of(
        st.none(), st.tuples(st.sampled_from(VERBS), st.sampled_from(["c1", "c2", "c3", "c4"]))
    ),
    st.sampled_from([None, "pass", "pass", "pass", "fail", "hold", "stale"]),
)


def _tick(kind: str | None, now: datetime) -> AnalysisResult | None:
    if kind is None:
        return None
    if kind == "stale":
        return AnalysisResult(
            now - timedelta(seconds=500), "Successful", "pass", "AnalysisPassed", "old"
        )
    verdict, outcome, reason = OUTCOMES[kind]
    return AnalysisResult(now, verdict, outcome, reason, kind)  # type: ignore[arg-type]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_index=st.integers(0, len(POLICIES) - 1), events=st.lists(EVENTS, max_size=30))
def test_rollout_invariants(policy_index: int, events: list[tuple]) -> None:  # type: ignore[type-arg]
    policy = POLICIES[policy_index]
    state = RolloutState()
    status: DeploymentStatus | None = None
    now = T0
    visited: set[int] = set()
    for dt, desired, raw_command, tick_kind in events:
        now += timedelta(seconds=dt)
        commands = [Command(raw_command[0], raw_command[1])] if raw_command else []
        tick = _tick(tick_kind, now)
        nxt, decisions = step(state, policy, desired, now=now, analysis=tick, commands=commands)
        kinds = [d.kind for d in decisions]

        # idempotence and the status as the store
        assert step(nxt, policy, desired, now=now, analysis=tick, commands=commands) == (nxt, ())
        written = write_status(status, nxt, decisions, policy, now=now, generation=1)
        status = DeploymentStatus.model_validate(written.to_wire())
        if nxt.message:
            assert state_from_status(status, policy) == nxt

        # a command already applied changes nothing
        if commands and commands[0].id in state.commands:
            assert (nxt, decisions) == step(state, policy, desired, now=now, analysis=tick)

        # weights
        if nxt.stage == Stage.CANARY:
            assert nxt.step is not None
            assert nxt.weight == policy.steps[nxt.step].weight
        else:
            assert nxt.weight == 0
        if nxt.stage == Stage.ABORTED:
            assert traffic(nxt).canary is None and traffic(nxt).canary_weight == 0
        restarted = {DecisionKind.ROLLOUT_STARTED, DecisionKind.RETRIED}
        if (
            state.stage == Stage.CANARY
            and nxt.stage == Stage.CANARY
            and state.target == nxt.target
            and not restarted & set(kinds)
        ):
            assert nxt.weight >= state.weight
        t = traffic(nxt)
        if nxt.stable is not None:
            assert t.stable_weight + t.canary_weight == 100
        assert 0 <= t.canary_weight <= 100

        # stable never disappears
        if state.stable is not None:
            assert nxt.stable is not None

        # promotion on analysis only after every step
        if DecisionKind.ROLLOUT_STARTED in kinds:
            visited = set()
        if state.stage == Stage.CANARY and state.step is not None:
            visited.add(state.step)
        for d in decisions:
            if d.kind == DecisionKind.PROMOTED and d.reason in ("AllStepsPassed", "Approved"):
                assert visited >= set(range(len(policy.steps))), (visited, d)
                event(f"promoted on analysis ({d.reason})")
                assert state.last_analysis is not None or tick is not None
        if nxt.stage == Stage.CANARY and nxt.step is not None:
            visited.add(nxt.step)
        state = nxt
