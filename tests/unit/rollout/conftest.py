"""A fake-clock simulator of the edge loop around ``rollout.step`` (what kopf and local mode do).

Each tick: run an analysis when one is due (judging fake measurements), reload the state from the
stored status (as a restarted operator would), step, check that re-running the same step is a
no-op, write the status back through its JSON wire form. No sleeps: time is a value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from driftline.operator.analysis import AnalysisResult, Measurements, judge
from driftline.operator.api.deployment import DeploymentStatus
from driftline.operator.rollout import (
    Command,
    Decision,
    Policy,
    RolloutState,
    Step,
    analysis_due,
    analysis_request,
    step,
)
from driftline.operator.rollout_status import state_from_status, write_status

T0 = datetime(2026, 1, 1, tzinfo=UTC)

Measure = Callable[[str, str, datetime], Measurements]


def healthy(role: str, model: str, now: datetime) -> Measurements:
    """A variant that behaves: traffic, no errors, fast, no drift, agrees with stable."""
    return Measurements(
        requests=400,
        errors=0,
        latency_p50_ms=5.0,
        latency_p99_ms=20.0,
        drift_score=0.02,
        drift_samples=400,
        prediction_counts={"churn": 40, "stay": 360},
        prediction_samples=400,
        shadow_agreement=0.99,
        shadow_compared=400,
        performance={"accuracy": 0.9},
        labelled_samples=400,
    )


def policy(**overrides: object) -> Policy:
    """The scenarios' policy: 3 steps of 20 s, 10 s interval, 120 s deadline, 5 s drain."""
    base: dict[str, object] = {
        "steps": (Step(10, 20.0), Step(50, 20.0), Step(100, 20.0)),
        "interval_s": 10.0,
        "progress_deadline_s": 120.0,
        "drain_s": 5.0,
    }
    base.update(overrides)
    return Policy(**base)  # type: ignore[arg-type]


@dataclass
class Sim:
    """Drives one Deployment's rollout second by second."""

    policy: Policy
    measure: Measure = healthy
    desired: str | None = None
    now: datetime = T0
    state: RolloutState = field(default_factory=RolloutState)
    status: DeploymentStatus | None = None
    annotation: Command | None = None
    log: list[tuple[float, Decision]] = field(default_factory=list)
    ticks: list[AnalysisResult] = field(default_factory=list)
    rolled_out: dict[str, str] | None = None
    """The edge's readiness fact (``step(rolled_out=...)``); None: promotion completes at once."""

    @property
    def t(self) -> float:
        return (self.now - T0).total_seconds()

    def send(self, verb: str, ident: str) -> None:
        """Set the command annotation (it stays set, as on a real object)."""
        self.annotation = Command(verb, ident)  # type: ignore[arg-type]

    def tick(self) -> tuple[Decision, ...]:
        result = None
        request = analysis_request(self.state, self.policy)
        due = analysis_due(self.state, self.policy)
        if request is not None and due is not None and self.now >= due:
            result = judge(
                self.measure(request.candidate_role, request.candidate_model, self.now),
                self.measure("stable", request.stable_model, self.now),
                request.thresholds,
                at=self.now,
                shadow=request.shadow,
            )
            self.ticks.append(result)
        stored = state_from_status(self.status, self.policy)
        assert stored == self.state, "the status must store the whole state"
        commands = [self.annotation] if self.annotation else []
        fact = self.rolled_out
        nxt, decisions = step(
            stored,
            self.policy,
            self.desired,
            now=self.now,
            analysis=result,
            commands=commands,
            rolled_out=fact,
        )
        again, repeated = step(
            nxt,
            self.policy,
            self.desired,
            now=self.now,
            analysis=result,
            commands=commands,
            rolled_out=fact,
        )
        assert (again, repeated) == (nxt, ()), "re-running a step must change nothing"
        status = write_status(self.status, nxt, decisions, self.policy, now=self.now, generation=1)
        self.status = DeploymentStatus.model_validate(status.to_wire())
        self.state = nxt
        self.log.extend((self.t, d) for d in decisions)
        return decisions

    def run(self, seconds: float, until: Callable[[Sim], bool] | None = None) -> None:
        """Tick once a second for ``seconds`` (bounded), or until ``until`` holds."""
        end = self.now + timedelta(seconds=seconds)
        while self.now < end:
            self.tick()
            if until is not None and until(self):
                return
            self.now += timedelta(seconds=1)

    def kinds(self) -> list[str]:
        return [d.kind.value for _, d in self.log]

    def first(self, kind: str) -> tuple[float, Decision]:
        return next((t, d) for t, d in self.log if d.kind.value == kind)


@pytest.fixture
def sim() -> Callable[..., Sim]:
    """Build a simulator already serving ``v1`` (first deploy done at T0)."""

    def build(measure: Measure = healthy, **policy_overrides: object) -> Sim:
        s = Sim(policy(**policy_overrides), measure, desired="v1")
        s.tick()
        s.now += timedelta(seconds=1)
        return s

    return build
