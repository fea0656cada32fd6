"""The ``RetrainPolicy`` kind: when to retrain, how, and how the new Model earns promotion.

Triggers (drift breach, schedule, performance below a bound, manual) start a Kubernetes Job that
trains and writes an artifact; the operator registers a new Model from the ``output`` templates,
validates it against the champion, and either promotes it (a rollout on the Deployment) or waits
for approval. Pure: pydantic only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Final, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from driftline.operator import names
from driftline.operator.api.meta import (
    ApiModel,
    Duration,
    EnvVar,
    KubernetesName,
    ResourceRequirements,
    StatusBase,
    cel_rules,
)
from driftline.operator.api.resource import Resource
from driftline.operator.names import KindNames

__all__ = [
    "CRON_PATTERN",
    "TEMPLATE_PLACEHOLDERS",
    "DriftTrigger",
    "JobTemplate",
    "OutputTemplate",
    "PerformanceTrigger",
    "RetrainPolicy",
    "RetrainPolicyPhase",
    "RetrainPolicySpec",
    "RetrainPolicyStatus",
    "RetrainRun",
    "TriggerRecord",
    "Triggers",
    "Validation",
]

CRON_PATTERN: Final = (
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
    r"|([0-9*,/?LW#A-Za-z-]+ ){4}[0-9*,/?LW#A-Za-z-]+)$"
)
"""Five space-separated cron fields (as a Kubernetes CronJob takes them) or an ``@daily``-style
macro; the operator's scheduler parses the details."""

TEMPLATE_PLACEHOLDERS: Final = ("deployment", "family", "run", "timestamp")
"""Placeholders the ``output`` templates may use, as ``{name}``."""

_TEMPLATE_PATTERN: Final = r"^([^{}]|\{(" + "|".join(TEMPLATE_PLACEHOLDERS) + r")\})+$"


class DriftTrigger(ApiModel):
    """Retrain when a DriftMonitor reports a breach (its ``action`` must be ``retrain``)."""

    monitor: KubernetesName
    """Name of the DriftMonitor (same namespace)."""


class PerformanceTrigger(ApiModel):
    """Retrain when measured quality crosses a bound."""

    monitor: KubernetesName
    """Name of the DriftMonitor that measures performance (its ``spec.performance``)."""

    threshold: float | None = None
    """Bound on the monitor's metric (lowest accuracy/auc, highest mae/rmse). Default: the
    monitor's own ``performance.threshold``."""


class Triggers(ApiModel):
    """What starts a retraining run; any one suffices."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            {
                "rule": "has(self.drift) || has(self.schedule) || has(self.performance) || "
                "(has(self.manual) && self.manual)",
                "message": "at least one trigger is needed: drift, schedule, performance or "
                "manual: true",
            }
        )
    )

    drift: DriftTrigger | None = None
    """Retrain on a drift breach."""

    schedule: Annotated[str, StringConstraints(pattern=CRON_PATTERN, max_length=256)] | None = None
    """Retrain on a cron schedule (UTC), e.g. ``0 3 * * 1`` or ``@daily``."""

    performance: PerformanceTrigger | None = None
    """Retrain when quality from delayed labels crosses a bound."""

    manual: bool = True
    """Allow ``kubectl driftline retrain`` (default true)."""

    @model_validator(mode="after")
    def _at_least_one(self) -> Triggers:
        if not (self.drift or self.schedule or self.performance or self.manual):
            raise ValueError(
                "at least one trigger is needed: drift, schedule, performance or manual: true"
            )
        return self


class JobTemplate(ApiModel):
    """The training Job.

    It receives ``DRIFTLINE_OUTPUT_URI`` (where to write the ONNX file),
    ``DRIFTLINE_RUN`` and ``DRIFTLINE_CHAMPION_MODEL`` in its environment, and must write the
    artifact, its ``.sha256`` and an optional ``metrics.json`` beside it.
    """

    image: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    """Container image that trains."""

    command: Annotated[list[str], Field(max_length=64)] = Field(default_factory=list)
    """Entrypoint override; default: the image's."""

    args: Annotated[list[str], Field(max_length=256)] = Field(default_factory=list)
    """Arguments to the entrypoint."""

    env: Annotated[list[EnvVar], Field(max_length=128)] = Field(default_factory=list)
    """Extra environment variables (literal or from Secrets)."""

    resources: ResourceRequirements | None = None
    """Resources of the training container."""

    service_account_name: KubernetesName | None = None
    """Service account the Job runs as (e.g. for data and artifact-store access)."""

    backoff_limit: Annotated[int, Field(ge=0, le=100)] = 1
    """Pod retries before the Job fails (default 1)."""

    active_deadline_seconds: Annotated[int, Field(ge=1)] = 3600
    """Seconds the Job may run before it is killed (default 3600)."""


class OutputTemplate(ApiModel):
    """How the trained artifact and its Model are named.

    Templates may use ``{deployment}``,
    ``{family}``, ``{run}`` (the run's number) and ``{timestamp}`` (UTC, ``YYYYMMDDhhmmss``).
    """

    model_name: Annotated[str, StringConstraints(pattern=_TEMPLATE_PATTERN, max_length=200)] = (
        "{family}-r{run}"
    )
    """Name of the Model to create (default ``{family}-r{run}``)."""

    storage_uri: Annotated[str, StringConstraints(pattern=_TEMPLATE_PATTERN, max_length=2048)]
    """Where the Job writes the ONNX file, e.g. ``s3://models/{family}/{run}/model.onnx``."""


class Validation(ApiModel):
    """How a trained model earns promotion against the champion.

    The champion is the Model live on the Deployment; the comparison uses the offline metrics
    both report in ``lineage.metrics``.
    """

    metric: Annotated[str, StringConstraints(min_length=1, max_length=128)] = "accuracy"
    """Offline metric to compare (default ``accuracy``); higher is better unless it is ``mae``,
    ``rmse``, ``logloss`` or ends in ``_error``/``_loss``."""

    min_improvement: float = 0.0
    """How much better than the champion the challenger must be, in metric units (default 0)."""

    must_beat_champion: bool = True
    """Reject a challenger that is not at least ``minImprovement`` better (default true); false
    only records the comparison."""


RetrainPolicyPhase = Literal[
    "Idle", "Training", "Validating", "AwaitingApproval", "Promoting", "Failed"
]
"""Where the current run is; ``Idle`` between runs."""


class RetrainPolicySpec(ApiModel):
    """The desired state of a RetrainPolicy."""

    deployment: KubernetesName
    """Name of the Driftline Deployment (same namespace) whose model is retrained."""

    triggers: Triggers
    """What starts a run."""

    job: JobTemplate
    """The training Job."""

    output: OutputTemplate
    """Names of the produced artifact and Model."""

    validation: Validation = Field(default_factory=Validation)
    """Champion/challenger comparison."""

    promotion: Literal["auto", "manual"] = "manual"
    """``manual`` (wait for ``kubectl driftline approve``; default) or ``auto`` (start the rollout
    as soon as validation passes; the rollout's own analysis still guards it)."""

    cooldown: Duration = "1h"
    """Least time between the start of two runs, so a persistent drift does not retrain in a
    loop (default ``1h``)."""

    max_concurrent: Annotated[int, Field(ge=1, le=10)] = 1
    """Runs in flight at once (default 1); further triggers wait."""

    history_limit: Annotated[int, Field(ge=1, le=100)] = 10
    """Finished runs kept in ``status.runs`` and as Jobs (default 10)."""


class TriggerRecord(ApiModel):
    """One trigger that fired."""

    kind: Literal["drift", "schedule", "performance", "manual"]
    """Which trigger."""

    time: datetime
    """When it fired."""

    reason: str | None = None
    """Details, e.g. the drift score or the metric value."""


class RetrainRun(ApiModel):
    """One retraining run."""

    run: Annotated[int, Field(ge=1)]
    """Run number, increasing per policy (the ``{run}`` placeholder)."""

    job: str | None = None
    """Name of the training Job."""

    trigger: Literal["drift", "schedule", "performance", "manual"]
    """What started it."""

    started: datetime
    """When the Job was created."""

    finished: datetime | None = None
    """When the run reached an outcome."""

    outcome: Literal[
        "Running", "Succeeded", "Promoted", "Rejected", "AwaitingApproval", "Failed"
    ] = "Running"
    """``Running``, ``Succeeded`` (validated, not promoted), ``Promoted``, ``Rejected`` (lost
    against the champion), ``AwaitingApproval`` or ``Failed`` (Job failed or bad artifact)."""

    model: str | None = None
    """The Model created from the artifact."""

    metrics: dict[str, float] = Field(default_factory=dict)
    """Offline metrics of the challenger (and ``champion.<metric>`` for the comparison)."""

    message: str | None = None
    """Why it ended this way."""


class RetrainPolicyStatus(StatusBase):
    """Runs, triggers and what comes next."""

    phase: RetrainPolicyPhase | None = None
    """``Idle``, ``Training``, ``Validating``, ``AwaitingApproval``, ``Promoting`` or
    ``Failed``."""

    last_trigger: TriggerRecord | None = None
    """The most recent trigger that fired (it may have been deferred by the cooldown)."""

    last_run: RetrainRun | None = None
    """The most recent run."""

    runs: Annotated[list[RetrainRun], Field(max_length=100)] = Field(default_factory=list)
    """Recent runs, oldest first, at most ``historyLimit``."""

    next_scheduled: datetime | None = None
    """Next time the schedule trigger fires."""


class RetrainPolicy(Resource[RetrainPolicySpec, RetrainPolicyStatus]):
    """A ``RetrainPolicy``: retraining triggers, the training Job, validation and promotion."""

    kind_names: ClassVar[KindNames] = names.RETRAIN_POLICY
    kind: Literal["RetrainPolicy"] = "RetrainPolicy"
    """``RetrainPolicy``."""
