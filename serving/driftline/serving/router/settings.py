"""``RouterSettings``: every knob of ``driftline route``, from flags or ``DRIFTLINE_ROUTE_*``.

Who uses it: the ``route`` command builds exactly one :class:`RouterSettings` (flags override the
environment) and passes it down; nothing else in the router reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from driftline.serving.router.configmap import ConfigMapRef, parse_ref
from driftline.serving.router.health import HealthPolicy
from driftline.serving.router.proxy import DEFAULT_FEEDBACK_PATH, ProxyConfig


class RouterSettings(BaseSettings):
    """Settings of one router process (env prefix ``DRIFTLINE_ROUTE_``)."""

    model_config = SettingsConfigDict(
        env_prefix="DRIFTLINE_ROUTE_", extra="forbid", frozen=True, use_attribute_docstrings=True
    )

    table: Path | None = None
    """Route table file (YAML or JSON); watched and reloaded on change."""
    table_configmap: str | None = None
    """``NAMESPACE/NAME[/KEY]``: a ConfigMap key holding the table, watched through the API."""
    kubeconfig: Path | None = None
    """Kubeconfig for ``table_configmap`` outside a pod; none: the pod's service account."""
    table_wait_s: float = Field(default=30.0, ge=0, le=3600)
    """At start, how long to wait for the ConfigMap to hold a table before giving up (seconds)."""
    watch_timeout_s: int = Field(default=300, ge=1, le=3600)
    """The API server ends each ConfigMap watch after this long; the router re-watches."""
    host: str = "127.0.0.1"
    """Address the public and admin ports bind to."""
    port: int = Field(default=8000, ge=0, le=65535)
    """Public port: the Open Inference Protocol, feedback, /stats, /metrics."""
    admin_port: int | None = Field(default=None, ge=0, le=65535)
    """Admin port (GET/PUT /table, /stats, /metrics); none: no admin endpoint."""
    watch_interval_s: float = Field(default=0.5, gt=0, le=60)
    """How often the table file is checked for changes (seconds); a change is live within it."""
    upstream_timeout_s: float = Field(default=10.0, gt=0)
    """How long a forwarded request may take once sent (seconds); then 504."""
    connect_timeout_s: float = Field(default=1.0, gt=0)
    """How long a connect to an upstream may take before it counts as failed (seconds)."""
    shadow_timeout_s: float = Field(default=2.0, gt=0)
    """How long a mirrored copy may take (seconds); then it is counted as a shadow timeout."""
    shadow_max_inflight: int = Field(default=64, ge=1)
    """Mirrored copies in flight at once; more are dropped (shed) and counted."""
    shadow_compare_per_s: int = Field(default=100, ge=1)
    """Shadow/primary answer pairs compared per second at most (per primary); the rest are
    counted as skipped: agreement is estimated from the compared pairs."""
    max_idle_per_endpoint: int = Field(default=128, ge=1)
    """Idle keep-alive connections kept per upstream endpoint."""
    ejection_s: float = Field(default=5.0, gt=0)
    """How long an endpoint is ejected after a connect failure (seconds; doubles in a row)."""
    max_ejection_s: float = Field(default=60.0, gt=0)
    """Ceiling of the doubling ejection time (seconds)."""
    stats_window_s: int = Field(default=60, ge=1)
    """Default window of GET /stats (seconds); ?window= asks for another."""
    stats_max_window_s: int = Field(default=600, ge=1, le=86400)
    """Longest window GET /stats can summarise (seconds); memory grows with it."""
    feedback_path: str = DEFAULT_FEEDBACK_PATH
    """Path of the feedback endpoint, here and on every variant's monitor."""
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Largest request body accepted (bytes); larger ones get 413."""
    log_level: str = "INFO"
    """Python logging level name."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.table is None) == (self.table_configmap is None):
            raise ValueError(
                "give exactly one table source: --table FILE or --table-configmap NAMESPACE/NAME"
            )
        if self.table_configmap is not None:
            parse_ref(self.table_configmap)  # raises ConfigMapError (a ValueError) naming the part
        if self.kubeconfig is not None and self.table_configmap is None:
            raise ValueError("kubeconfig is only used with --table-configmap")
        if self.admin_port is not None and self.admin_port == self.port and self.port != 0:
            raise ValueError("admin_port must differ from port")
        if self.max_ejection_s < self.ejection_s:
            raise ValueError("max_ejection_s must be at least ejection_s")
        if self.stats_window_s > self.stats_max_window_s:
            raise ValueError("stats_window_s must not exceed stats_max_window_s")
        if not self.feedback_path.startswith("/") or self.feedback_path.startswith("/v2"):
            raise ValueError("feedback_path must start with / and not with /v2")
        return self

    def configmap_ref(self) -> ConfigMapRef | None:
        """The parsed ``table_configmap`` (validated at construction), or None."""
        return None if self.table_configmap is None else parse_ref(self.table_configmap)

    def proxy_config(self) -> ProxyConfig:
        """The proxy's share of the settings."""
        return ProxyConfig(
            upstream_timeout_s=self.upstream_timeout_s,
            connect_timeout_s=self.connect_timeout_s,
            shadow_timeout_s=self.shadow_timeout_s,
            shadow_max_inflight=self.shadow_max_inflight,
            shadow_compare_per_s=self.shadow_compare_per_s,
            max_idle_per_endpoint=self.max_idle_per_endpoint,
            health=HealthPolicy(
                base_ejection_s=self.ejection_s, max_ejection_s=self.max_ejection_s
            ),
            stats_window_s=self.stats_window_s,
            stats_max_window_s=self.stats_max_window_s,
            feedback_path=self.feedback_path,
        )
