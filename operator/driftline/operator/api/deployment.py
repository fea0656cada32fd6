"""The ``Deployment`` kind: serve a Model behind one endpoint and roll new versions out safely.

Changing ``spec.model`` starts a rollout: an optional shadow phase (the new model sees mirrored
traffic, its answers are compared and discarded), then canary steps (weight, pause, analysis), then
promotion; a failed analysis rolls back (or pauses). Status carries the rollout state, so an
operator restart resumes at the same step. Pure: pydantic only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Final, Literal

from pydantic import ConfigDict, Field, StringConstraints, field_validator, model_validator

from driftline.operator import names
from driftline.operator.api.meta import (
    ApiModel,
    Duration,
    KubernetesName,
    ResourceRequirements,
    StatusBase,
    Toleration,
    cel_rules,
)
from driftline.operator.api.resource import Resource
from driftline.operator.names import KindNames

__all__ = [
    "MAX_STEPS",
    "Analysis",
    "AnalysisCheck",
    "AnalysisStatus",
    "Autoscaling",
    "Batching",
    "Deployment",
    "DeploymentPhase",
    "DeploymentSpec",
    "DeploymentStatus",
    "DrainSlot",
    "HistoryEntry",
    "MonitorSettings",
    "PerformanceCheck",
    "PodOverrides",
    "Rollout",
    "RolloutRecord",
    "RolloutStep",
    "RouterSpec",
    "Shadow",
    "Traffic",
    "VariantStatus",
]

MAX_STEPS: Final = 20
"""Canary steps per rollout: more is a schedule nobody reviews; also bounds the CEL rule."""

MAX_HISTORY: Final = 50
"""Entries kept in ``status.history`` (oldest dropped first): the audit trail stays small."""

_STEP_INDICES: Final = ", ".join(str(i) for i in range(1, MAX_STEPS))
# CEL has no range(): a literal index list walks neighbouring pairs, portable to every CEL engine.
_ASCENDING_RULE: Final = (
    f"[{_STEP_INDICES}].all(i, i >= size(self) || self[i].weight > self[i - 1].weight)"
)
_ASCENDING_MESSAGE: Final = (
    f"'steps[' + string([{_STEP_INDICES}].filter(i, i < size(self) && "
    'self[i].weight <= self[i - 1].weight)[0]) + "].weight must be greater than the previous '
    "step's weight (weights must be strictly ascending)\""
)


class Autoscaling(ApiModel):
    """Horizontal autoscaling of each variant (one HorizontalPodAutoscaler per variant).

    Stable and canary scale independently, so a leaking canary never inflates the stable fleet.
    """

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            {
                "rule": "self.minReplicas <= self.maxReplicas",
                "message": "minReplicas must be less than or equal to maxReplicas",
                "fieldPath": ".minReplicas",
            }
        )
    )

    min_replicas: Annotated[int, Field(ge=1, le=1000)] = 1
    """Fewest pods per variant (default 1)."""

    max_replicas: Annotated[int, Field(ge=1, le=1000)]
    """Most pods per variant."""

    target_cpu_utilization_percentage: Annotated[int, Field(ge=1, le=100)] | None = Field(
        default=None, alias="targetCPUUtilizationPercentage"
    )
    """Average CPU utilisation (percent of requests) the autoscaler aims for. Default: 80 when no
    other target is set. Needs ``resources.requests.cpu``."""

    target_requests_per_second: Annotated[float, Field(gt=0)] | None = None
    """Average inference requests per second per pod the autoscaler aims for (a Pods metric
    served by the monitor); unset disables this target."""

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) must be less than or equal to maxReplicas "
                f"({self.max_replicas})"
            )
        return self


class Batching(ApiModel):
    """Dynamic batching: concurrent requests are merged into one ONNX Runtime call."""

    max_batch_size: Annotated[int, Field(ge=1, le=4096)] = 32
    """Most rows per merged call (default 32); 1 disables batching."""

    max_delay_ms: Annotated[float, Field(ge=0, le=1000)] = 2.0
    """Milliseconds the first request of a batch may wait for others (default 2): the latency you
    trade for throughput."""


class Shadow(ApiModel):
    """A shadow phase before the canary: the new model gets a copy of live traffic.

    Its answers are compared with the stable model's and discarded, so users never see them.
    """

    percent: Annotated[int, Field(ge=0, le=100)] = 100
    """Percent of requests mirrored to the shadow (default 100)."""

    duration: Duration = "5m"
    """How long the shadow phase lasts at least (default ``5m``)."""

    min_samples: Annotated[int, Field(ge=0)] = 100
    """Compared predictions needed before the phase can pass (default 100)."""

    min_agreement: Annotated[float, Field(ge=0, le=1)] = 0.95
    """Fraction of compared predictions where shadow and stable agree (same label; for
    regression, within 1% relative) needed to pass (default 0.95)."""


class RolloutStep(ApiModel):
    """One canary step: shift traffic, hold, analyse."""

    weight: Annotated[int, Field(ge=1, le=100)]
    """Percent of traffic routed to the canary during this step (1..100, strictly ascending across
    steps); 100 promotes at the end of the step."""

    pause: Duration | None = None
    """How long to hold this weight (analysis runs meanwhile) before the next step. Default: one
    analysis interval."""

    approval: bool = False
    """Wait after this step until ``kubectl driftline promote`` (default false)."""


class PerformanceCheck(ApiModel):
    """Compare model quality (from delayed labels) between canary and stable."""

    metric: Literal["accuracy", "auc", "mae", "rmse"]
    """Metric computed from joined labels: ``accuracy``/``auc`` (higher is better) or
    ``mae``/``rmse`` (lower is better)."""

    max_drop: Annotated[float, Field(ge=0)] = 0.0
    """How much worse than stable the canary may be, in metric units (default 0: not worse)."""


class Analysis(ApiModel):
    """The checks each analysis tick runs on the canary (or shadow).

    Relative to stable where a ratio makes sense. A check whose bound is unset is skipped.
    """

    interval: Duration = "30s"
    """Time between analysis ticks (default ``30s``)."""

    min_samples: Annotated[int, Field(ge=0)] = 50
    """Canary requests needed in a tick before it is judged; fewer triggers ``noData``
    (default 50)."""

    max_error_rate: Annotated[float, Field(ge=0, le=1)] | None = 0.01
    """Highest fraction of canary requests that may fail with a server error (5xx), 0..1
    (default 0.01). Client errors (4xx) are not counted."""

    max_latency_p99_ms: Annotated[float, Field(gt=0)] | None = None
    """Highest canary p99 latency in milliseconds; unset skips the check."""

    max_latency_ratio: Annotated[float, Field(gt=0)] | None = None
    """Highest canary p99 / stable p99 ratio (e.g. 1.2 = at most 20% slower); unset skips."""

    max_drift_score: Annotated[float, Field(ge=0)] | None = None
    """Highest input drift score the canary's monitor may report; unset skips."""

    max_prediction_shift: Annotated[float, Field(ge=0)] | None = None
    """Highest distance (Jensen-Shannon for labels, PSI for values) between canary and stable
    prediction distributions; unset skips."""

    performance: PerformanceCheck | None = None
    """Compare quality from delayed labels; unset skips."""

    failure_limit: Annotated[int, Field(ge=0)] = 0
    """Failed ticks in a row tolerated before the rollout fails; a passing tick resets the count
    (default 0: the first failure fails the rollout)."""

    no_data: Literal["pass", "pause", "fail"] = "pause"
    """What a tick with fewer than ``minSamples`` requests means: ``pass``, ``pause`` (hold the
    step and wait for traffic; default) or ``fail``."""


class Rollout(ApiModel):
    """How a new model version replaces the stable one."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            {
                "rule": "self.strategy != 'direct' || !has(self.shadow)",
                "message": "shadow needs strategy canary: a direct rollout has no phases",
                "fieldPath": ".shadow",
            }
        )
    )

    strategy: Literal["canary", "direct"] = "canary"
    """``canary`` (shadow, then weighted steps with analysis; default) or ``direct`` (replace at
    once, like a plain Deployment update)."""

    shadow: Shadow | None = None
    """An optional shadow phase before the first canary step; unset skips it."""

    steps: Annotated[
        list[RolloutStep],
        Field(
            min_length=1,
            max_length=MAX_STEPS,
            json_schema_extra=cel_rules(
                {
                    "rule": _ASCENDING_RULE,
                    "message": "step weights must be strictly ascending",
                    "messageExpression": _ASCENDING_MESSAGE,
                }
            ),
        ),
    ] = Field(
        default_factory=lambda: [
            RolloutStep(weight=10, pause="1m"),
            RolloutStep(weight=50, pause="1m"),
            RolloutStep(weight=100, pause="1m"),
        ]
    )
    """Canary steps with strictly ascending weights, at most 20. Default: 10%, 50%, 100%, one minute
    each. After the last step the canary is promoted."""

    analysis: Analysis = Field(default_factory=Analysis)
    """Checks run during shadow and every step."""

    on_failure: Literal["rollback", "pause"] = "rollback"
    """On failed analysis: ``rollback`` (all traffic back to stable; default) or ``pause`` (hold
    the current weight and wait for a human)."""

    progress_deadline: Duration = "10m"
    """Longest a rollout may make no progress (a new step, a passing analysis, a resume), e.g.
    waiting for pods or samples, before it fails with ``ProgressDeadlineExceeded`` (handled per
    ``onFailure``: rolled back, or held and marked Stalled); time paused by a human or waiting for
    approval does not count (default ``10m``)."""

    drain: Duration = "30s"
    """How long a variant that lost its traffic (the canary slot after a promotion or rollback)
    keeps running with no traffic before it is removed, so requests in flight finish and every
    router has the new route table (default ``30s``; ``0s`` removes it at once)."""

    @field_validator("steps")
    @classmethod
    def _ascending_weights(cls, steps: list[RolloutStep]) -> list[RolloutStep]:
        for i in range(1, len(steps)):
            if steps[i].weight <= steps[i - 1].weight:
                raise ValueError(
                    f"steps[{i}].weight ({steps[i].weight}) must be greater than the previous "
                    f"step's weight ({steps[i - 1].weight}); weights must be strictly ascending"
                )
        return steps

    @model_validator(mode="after")
    def _shadow_needs_canary(self) -> Rollout:
        if self.strategy == "direct" and self.shadow is not None:
            raise ValueError("shadow needs strategy canary: a direct rollout has no phases")
        return self


class Traffic(ApiModel):
    """How the router assigns requests to variants."""

    sticky_header: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]+$", max_length=256)] | None
    ) = None
    """Request header whose value pins a caller to one variant (hash of the value), e.g.
    ``x-user-id``; unset assigns every request independently."""


class RouterSpec(ApiModel):
    """The router pods in front of the variants."""

    replicas: Annotated[int, Field(ge=1, le=100)] = 1
    """Router pods (default 1); two or more for availability."""

    resources: ResourceRequirements | None = None
    """Router container resources; default: none set."""


class MonitorSettings(ApiModel):
    """The monitor sidecar beside every serving pod."""

    enabled: bool = True
    """Run the monitor sidecar (default true); without it no drift or prediction analysis runs."""

    window: Annotated[int, Field(ge=10, le=1_000_000)] = 1000
    """Most recent predictions each sidecar keeps per feature (default 1000)."""


class PodOverrides(ApiModel):
    """Settings copied into every serving pod."""

    image: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None
    """Serving image; default: the operator's own image."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    """Node labels the pods must match."""

    tolerations: Annotated[list[Toleration], Field(max_length=32)] = Field(default_factory=list)
    """Taints the pods tolerate."""

    service_account_name: KubernetesName | None = None
    """Service account the pods run as (e.g. for artifact-store credentials)."""

    labels: dict[str, str] = Field(default_factory=dict)
    """Extra labels on the pods."""

    annotations: dict[str, str] = Field(default_factory=dict)
    """Extra annotations on the pods."""


class DeploymentSpec(ApiModel):
    """The desired state of a Deployment: which Model serves, how it scales, how it rolls out."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            {
                "rule": "!(has(self.replicas) && has(self.autoscaling))",
                "message": "replicas and autoscaling are mutually exclusive: set one",
                "fieldPath": ".replicas",
            }
        )
    )

    model: KubernetesName
    """Name of the Model (same namespace) to serve. Changing it starts a rollout."""

    replicas: Annotated[int, Field(ge=0, le=1000)] | None = None
    """Fixed pods per variant; exclusive with ``autoscaling``. Default: 1 when neither is set."""

    autoscaling: Autoscaling | None = None
    """Autoscale each variant; exclusive with ``replicas``."""

    resources: ResourceRequirements | None = None
    """Resources of the model-server container."""

    batching: Batching | None = None
    """Dynamic batching; default: enabled with 32 rows and 2 ms."""

    rollout: Rollout = Field(default_factory=Rollout)
    """How a new model version replaces the stable one."""

    traffic: Traffic | None = None
    """Request stickiness."""

    router: RouterSpec | None = None
    """Router pods; default: one replica."""

    monitor: MonitorSettings | None = None
    """Monitor sidecars; default: enabled with a 1000-prediction window."""

    pod: PodOverrides | None = None
    """Image, node selector, tolerations and service account of the serving pods."""

    @model_validator(mode="after")
    def _replicas_xor_autoscaling(self) -> DeploymentSpec:
        if self.replicas is not None and self.autoscaling is not None:
            raise ValueError("replicas and autoscaling are mutually exclusive: set one")
        return self


DeploymentPhase = Literal["Healthy", "Progressing", "Paused", "Degraded"]
"""Argo CD's vocabulary, so a three-line health check passes it through (``Paused`` →
``Suspended``)."""

Variant = Literal["stable", "canary", "shadow"]
"""The roles a model version plays in a Deployment."""


class VariantStatus(ApiModel):
    """Observed state of one variant."""

    name: Variant
    """``stable``, ``canary`` or ``shadow``."""

    model: str
    """The Model this variant serves."""

    weight: Annotated[int, Field(ge=0, le=100)] = 0
    """Percent of live traffic routed to it (a shadow gets 0: its traffic is mirrored)."""

    replicas: Annotated[int, Field(ge=0)] = 0
    """Pods desired."""

    ready_replicas: Annotated[int, Field(ge=0)] = 0
    """Pods ready."""


class AnalysisCheck(ApiModel):
    """One measured value of the last analysis tick, beside its bound."""

    name: str
    """Check name: ``errorRate``, ``latencyP99Ms``, ``latencyRatio``, ``driftScore``,
    ``predictionShift``, ``performance``, ``shadowAgreement``."""

    value: float | None = None
    """Measured value; unset when there was no data."""

    threshold: float
    """The bound it was judged against."""

    passed: bool
    """Whether the value is within the bound."""

    samples: Annotated[int, Field(ge=0)] = 0
    """Requests or predictions the value is computed from."""

    reason: str | None = None
    """CamelCase cause: ``Passed``, ``NotEnoughData``, or the failure (``ErrorRateTooHigh``…)."""

    message: str | None = None
    """The numbers behind the verdict, for humans (e.g. ``error rate 0.03 > 0.01``)."""


class AnalysisStatus(ApiModel):
    """The result of the most recent analysis tick."""

    time: datetime
    """When the tick ran."""

    verdict: Literal["Successful", "Failed", "Inconclusive", "NoData"]
    """Overall verdict of the tick."""

    failed_ticks: Annotated[int, Field(ge=0)] = 0
    """Failed ticks in a row (a passing tick resets it; compared with ``failureLimit``)."""

    checks: list[AnalysisCheck] = Field(default_factory=list)
    """Each check's value and bound."""

    outcome: Literal["pass", "fail", "hold"] | None = None
    """What the rollout did with the tick after the ``noData`` policy: advance, count a failure,
    or hold (neither)."""

    reason: str | None = None
    """CamelCase cause: ``AnalysisPassed``, ``NoData`` or the first failed check's reason."""

    message: str | None = None
    """One line with the numbers behind the verdict."""


class HistoryEntry(ApiModel):
    """One decision in the audit trail (also emitted as a Kubernetes Event)."""

    time: datetime
    """When it was decided."""

    model: str
    """The Model the decision concerns."""

    action: Literal[
        "RolloutStarted",
        "ShadowStarted",
        "StepAdvanced",
        "Paused",
        "Resumed",
        "PromotionStarted",
        "Promoted",
        "RolledBack",
        "Aborted",
        "Retried",
        "Deployed",
        "AnalysisFailed",
        "Superseded",
        "Reverted",
        "Drained",
        "CommandIgnored",
    ]
    """What happened."""

    reason: str
    """CamelCase cause, e.g. ``AnalysisPassed``, ``ErrorRateTooHigh``, ``ManualPromote``."""

    message: str | None = None
    """The numbers behind the decision, for humans."""


class DrainSlot(ApiModel):
    """A variant kept running with no traffic after a rollout ended, until its drain is over."""

    role: Literal["canary", "shadow"]
    """The variant: ``canary`` or ``shadow``."""

    model: str
    """The Model its pods run."""

    percent: Annotated[int, Field(ge=0, le=100)] = 0
    """The weight (or mirror percent) it served last: sizes it while it drains."""


class RolloutRecord(ApiModel):
    """The rollout state machine's bookkeeping (``driftline.operator.rollout``).

    Kept in status so a restarted operator resumes at the same step. Humans read ``phase`` and
    ``message``; this is for the machine.
    """

    stage: Literal["Idle", "Shadow", "Canary", "Promoting", "Aborted"] = "Idle"
    """Where the rollout is: ``Idle`` (only stable serves), ``Shadow``, ``Canary``, ``Promoting``
    (the canary serves 100% while the stable variant rolls to the promoted Model) or ``Aborted``
    (rolled back; stays until ``spec.model`` changes, ``retry`` or ``promote``)."""

    target: str | None = None
    """The Model being rolled out, or the one that was aborted."""

    mirror_percent: Annotated[int, Field(ge=0, le=100)] = 0
    """Percent of requests mirrored to the shadow during a shadow phase."""

    reason: str | None = None
    """CamelCase cause of the last transition (``AllStepsPassed``, ``ErrorRateTooHigh``…)."""

    progress_at: datetime | None = None
    """Last progress (step start, passing analysis, resume); ``progressDeadline`` counts from
    here."""

    failures: Annotated[int, Field(ge=0)] = 0
    """Failed analysis ticks in a row (compared with ``failureLimit``)."""

    commands: Annotated[list[str], Field(max_length=16)] = Field(default_factory=list)
    """Ids of the last ``driftline.dev/command`` values applied, newest last (each applies once)."""

    draining: str | None = None
    """A Model that lost its traffic and keeps running until ``drainUntil``."""

    drain_until: datetime | None = None
    """When ``draining`` and ``drainSlot`` are removed."""

    drain_slot: DrainSlot | None = None
    """The variant (``canary`` or ``shadow``) kept at weight 0 until ``drainUntil``."""

    previous: str | None = None
    """While ``Promoting``: the Model the stable variant ran before the promotion (an abort rolls
    the stable variant back to it)."""


class DeploymentStatus(StatusBase):
    """What is live, what is being rolled out, and why."""

    phase: DeploymentPhase | None = None
    """``Healthy`` (stable serving, no rollout), ``Progressing`` (rollout advancing),
    ``Paused`` (waiting for approval or traffic) or ``Degraded`` (rolled back or stuck)."""

    stable_model: str | None = None
    """The Model serving the stable variant."""

    canary_model: str | None = None
    """The Model under canary, while a rollout is in its canary phase."""

    shadow_model: str | None = None
    """The Model under shadow, while a rollout is in its shadow phase."""

    canary_weight: Annotated[int, Field(ge=0, le=100)] = 0
    """Percent of traffic currently routed to the canary."""

    current_step: Annotated[int, Field(ge=0)] | None = None
    """Index into ``spec.rollout.steps`` of the step in progress; unset outside the canary phase."""

    rollout_started_at: datetime | None = None
    """When the current rollout began."""

    step_started_at: datetime | None = None
    """When the current step (or shadow phase) began; pauses and deadlines count from here."""

    pause_reason: str | None = None
    """Why the rollout is paused (``AwaitingApproval``, ``NoData``, ``AnalysisFailed``…)."""

    analysis: AnalysisStatus | None = None
    """The last analysis tick."""

    endpoint: str | None = None
    """URL clients send inference requests to (Open Inference Protocol v2)."""

    variants: Annotated[
        list[VariantStatus],
        Field(
            max_length=3,
            json_schema_extra={
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
            },
        ),
    ] = Field(default_factory=list)
    """Replicas and weight per variant."""

    history: Annotated[list[HistoryEntry], Field(max_length=MAX_HISTORY)] = Field(
        default_factory=list
    )
    """The last 50 decisions, oldest first."""

    rollout: RolloutRecord | None = None
    """The rollout state machine's bookkeeping (stage, target, deadline and command ids)."""


class Deployment(Resource[DeploymentSpec, DeploymentStatus]):
    """A Driftline ``Deployment``: serve a Model behind one endpoint, roll versions out safely."""

    kind_names: ClassVar[KindNames] = names.DEPLOYMENT
    kind: Literal["Deployment"] = "Deployment"
    """``Deployment``."""
