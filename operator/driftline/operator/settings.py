"""``OperatorSettings``: the one settings object of the ``driftline operator`` process.

Built once in the CLI from flags and ``DRIFTLINE_OPERATOR_*`` environment variables, then passed
down; nothing else reads the environment. ``configure_kopf`` translates it into kopf's own settings
in one place, with the reason for every value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from driftline.operator import __version__, names
from driftline.operator.analysis_prometheus import DEFAULT_SELECTOR

if TYPE_CHECKING:  # kopf is imported only by the process that runs the operator
    import kopf


class OperatorSettings(BaseSettings):
    """Settings of the operator process (env prefix ``DRIFTLINE_OPERATOR_``)."""

    model_config = SettingsConfigDict(
        env_prefix="DRIFTLINE_OPERATOR_",
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )

    namespaces: Annotated[tuple[str, ...], NoDecode] = ()
    """Namespaces (or glob patterns) to watch; empty means every namespace (cluster-wide)."""

    standalone: bool = False
    """Run without kopf peering. Only for a single replica: two standalone replicas both act."""

    peering_name: str = names.PEERING_NAME
    """The kopf peering object replicas coordinate through (cluster-wide ``ClusterKopfPeering``)."""

    priority: int = 0
    """Peering priority: the replica with the highest priority acts, the others pause."""

    metrics_host: str = "0.0.0.0"
    """Address the Prometheus ``/metrics`` endpoint binds to (all interfaces in a pod)."""

    metrics_port: int = Field(default=8080, ge=0, le=65535)
    """Port of the ``/metrics`` endpoint; 0 turns it off."""

    liveness_port: int = Field(default=0, ge=0, le=65535)
    """Port of kopf's ``/healthz`` liveness endpoint; 0 turns it off."""

    api_retry_attempts: int = Field(default=6, ge=1, le=50)
    """Tries per Kubernetes API call on conflicts, 429, 5xx and connection errors."""

    api_retry_base_delay: float = Field(default=0.1, gt=0, le=60)
    """Seconds before the first retry of an API call; doubles per retry (capped at 5 s)."""

    image: str = f"ghcr.io/driftline/driftline:{__version__}"
    """Image of the serving and router pods when a Deployment sets no ``spec.pod.image``."""

    resync_interval: float = Field(default=15.0, gt=0, le=3600)
    """Seconds between level-based re-reconciles of every Deployment (children readiness, drift)."""

    temporary_error_delay: float = Field(default=10.0, gt=0, le=3600)
    """Seconds kopf waits before re-running a handler after a temporary failure."""

    watch_timeout: float = Field(default=300.0, gt=0, le=3600)
    """Seconds a watch request lasts before kopf reconnects (server-side timeout)."""

    analysis_provider: Literal["http", "prometheus"] = "http"
    """Where rollout analysis reads its numbers: ``http`` (every router and monitor pod,
    directly; default) or ``prometheus`` (PromQL over the same metrics; needs
    ``prometheus_url``)."""

    prometheus_url: str | None = None
    """Base URL of the Prometheus HTTP API, e.g. ``http://prometheus.monitoring.svc:9090``."""

    prometheus_selector: str = DEFAULT_SELECTOR
    """PromQL label matchers that pick one Deployment's series, with ``{namespace}`` and
    ``{deployment}`` placeholders inside quotes."""

    @field_validator("prometheus_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        """An http(s) URL with a host: anything else fails here, not at the first tick."""
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http(s) URL with a host, got {value!r}")
        return value

    @field_validator("prometheus_selector")
    @classmethod
    def _selector_template(cls, value: str) -> str:
        """Only the ``{namespace}`` and ``{deployment}`` placeholders are allowed."""
        try:
            value.format(namespace="ns", deployment="dep")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(
                f"only {{namespace}} and {{deployment}} placeholders are allowed ({e!r})"
            ) from None
        return value

    @model_validator(mode="after")
    def _prometheus_needs_url(self) -> OperatorSettings:
        if self.analysis_provider == "prometheus" and self.prometheus_url is None:
            raise ValueError("prometheus_url: required when analysis_provider is 'prometheus'")
        return self

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: object) -> object:
        """Accept ``a,b`` from the environment (not JSON) as well as a list."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @property
    def clusterwide(self) -> bool:
        """Whether the operator watches every namespace."""
        return not self.namespaces


def configure_kopf(kopf_settings: kopf.OperatorSettings, settings: OperatorSettings) -> None:
    """Tune kopf for Driftline: our own keys, peering, retries and watch timeouts.

    Called from the ``@kopf.on.startup`` handler; every value has its reason beside it.
    """
    import kopf

    # Our finalizer and bookkeeping annotations carry our group, not kopf.zalando.org: a user
    # reading an object sees who put them there, and two kopf operators never share keys.
    kopf_settings.persistence.finalizer = names.FINALIZER
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=names.ANNOTATIONS_PREFIX
    )
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=names.ANNOTATIONS_PREFIX, key="last-handled-configuration"
    )
    # Peering: only the highest-priority replica acts, so two replicas never both reconcile.
    kopf_settings.peering.name = settings.peering_name
    kopf_settings.peering.standalone = settings.standalone
    kopf_settings.peering.priority = settings.priority
    kopf_settings.peering.clusterwide = settings.clusterwide
    kopf_settings.peering.mandatory = not settings.standalone
    # A server-side watch timeout makes kopf reconnect periodically (proxies drop idle streams).
    kopf_settings.watching.server_timeout = settings.watch_timeout
    kopf_settings.watching.client_timeout = settings.watch_timeout + 60
    # Handler failures without their own delay come back after this many seconds.
    kopf_settings.execution.default_backoff = settings.temporary_error_delay
    # API errors on kopf's own requests: short, bounded backoffs (our client has its own budget).
    kopf_settings.networking.error_backoffs = (0.5, 1, 2, 5, 10)
    # The resync timer spends most of each tick listening for pokes (``cadence``) and returns as
    # soon as kopf stops it (deletion, exit). kopf's defaults give a running timer ten loop cycles
    # to exit, then re-check only after 60 s: a deleted Deployment would keep its finalizer that
    # long. Wait up to 0.5 s for it instead, and re-check one mid-reconcile every second.
    kopf_settings.background.instant_exit_timeout = 0.5
    kopf_settings.background.cancellation_polling = 1.0
    # Events: we post our decisions explicitly (kopf.event); log lines are not Events.
    kopf_settings.posting.enabled = True
    kopf_settings.posting.loggers = False
    kopf_settings.posting.reporting_component = names.FIELD_MANAGER
