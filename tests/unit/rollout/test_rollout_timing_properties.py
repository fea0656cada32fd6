"""Timing properties over generated policies (hypothesis), driven through the edge-loop simulator.

- Liveness: with healthy traffic every rollout is promoted, after entering every step in order,
  and no later than the sum over steps of max(pause, interval) plus one interval of slack per step.
- Safety: with a canary failing every check, traffic is back on stable (weight 0) at the
  ``failureLimit + 1``-th tick, i.e. within ``(failureLimit + 1) * interval`` of the rollout start
  (plus the tick granularity of the simulator), and never advances a step before that.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.operator.analysis import Measurements
from driftline.operator.rollout import Policy, Stage, Step

from .conftest import Sim, healthy


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    n = draw(st.integers(1, 4))
    weights = sorted(draw(st.sets(st.integers(1, 100), min_size=n, max_size=n)))
    steps = tuple(
        Step(w, draw(st.one_of(st.none(), st.sampled_from([0.0, 5.0, 12.0, 30.0]))))
        for w in weights
    )
    return Policy(
        steps=steps,
        interval_s=draw(st.sampled_from([3.0, 5.0, 10.0])),
        failure_limit=draw(st.integers(0, 2)),
        progress_deadline_s=600.0,
        drain_s=draw(st.sampled_from([0.0, 5.0])),
    )


def _start(policy: Policy, measure: object) -> Sim:
    sim = Sim(policy, measure, desired="v1")  # type: ignore[arg-type]
    sim.tick()
    sim.now += timedelta(seconds=1)
    sim.desired = "v2"
    return sim


@settings(max_examples=30, deadline=None)
@given(policies())
def test_healthy_rollouts_are_promoted_in_bounded_time(policy: Policy) -> None:
    sim = _start(policy, healthy)
    t0 = sim.t
    bound = sum(
        max(policy.step_pause_s(i), policy.interval_s) + policy.interval_s + 1
        for i in range(len(policy.steps))
    )
    sim.run(bound + 5, until=lambda s: s.state.stage == Stage.IDLE and s.state.stable == "v2")
    assert sim.state.stable == "v2", (policy, sim.kinds())
    promoted_at = sim.first("Promoted")[0]
    assert promoted_at - t0 <= bound
    steps = [d for _, d in sim.log if d.kind.value == "StepAdvanced"]
    assert len(steps) == len(policy.steps) - 1
    assert "RolledBack" not in sim.kinds()


@settings(max_examples=30, deadline=None)
@given(policies())
def test_failing_canaries_go_back_to_weight_zero_within_the_failure_budget(policy: Policy) -> None:
    def measure(role: str, model: str, now: datetime) -> Measurements:
        return (
            Measurements(requests=400, errors=200) if model == "v2" else healthy(role, model, now)
        )

    sim = _start(policy, measure)
    t0 = sim.t
    budget = (policy.failure_limit + 1) * policy.interval_s + 1
    sim.run(budget + 5, until=lambda s: s.state.stage == Stage.ABORTED)
    t, decision = sim.first("RolledBack")
    assert decision.reason == "ErrorRateTooHigh"
    assert t - t0 <= budget
    assert sim.state.weight == 0
    assert "StepAdvanced" not in sim.kinds()
    assert sim.kinds().count("AnalysisFailed") == policy.failure_limit
