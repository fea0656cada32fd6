"""``ServerSettings``: every knob of ``driftline serve``, from flags or ``DRIFTLINE_SERVE_*`` env.

Who uses it: the ``serve`` command builds exactly one instance (flags given on the command line win
over the environment) and passes it down; nothing else reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseSettings):
    """Settings of one model server process (env prefix ``DRIFTLINE_SERVE_``)."""

    model_config = SettingsConfigDict(
        env_prefix="DRIFTLINE_SERVE_",
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
        protected_namespaces=(),
    )

    model: Path
    """Path of the ONNX model file to serve."""
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """Model name in the protocol's URLs (``/v2/models/NAME``)."""
    version: str = Field(default="1", min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """Model version (``/v2/models/NAME/versions/VERSION``); default ``1``."""
    variant: str = Field(default="stable", min_length=1)
    """Variant this server plays in a rollout (``stable``, ``canary``, ``shadow``); goes into
    the prediction records."""
    host: str = "127.0.0.1"
    """Address to bind; ``0.0.0.0`` to accept connections from other hosts (in a pod)."""
    port: int = Field(default=8080, ge=0, le=65535)
    """TCP port to bind (0 picks a free port)."""
    max_batch_size: int = Field(default=64, ge=1, le=65536)
    """Most rows one model run may hold when concurrent requests are batched (1 disables
    batching)."""
    max_delay_ms: float = Field(default=0.0, ge=0.0, le=1000.0)
    """Milliseconds the first queued request may wait for company; 0 (default) batches whatever
    queued while the previous run executed, adding no idle latency."""
    max_request_rows: int = Field(default=1024, ge=1)
    """Largest batch one request may carry; more is a 400."""
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Largest request body in bytes; more is a 413."""
    non_finite: Literal["reject", "allow"] = "reject"
    """Policy for NaN/inf in float inputs (from overflow or binary data): ``reject`` answers 400."""
    monitor_url: str | None = None
    """Base URL of the monitor sidecar (e.g. ``http://127.0.0.1:9100``); prediction records are
    POSTed to it. Unset: no records."""
    records_queue_rows: int = Field(default=65536, ge=1)
    """Most record rows held for the monitor; beyond that rows are dropped and counted."""
    records_flush_rows: int = Field(default=4096, ge=1)
    """Send records as soon as this many rows are queued."""
    records_flush_ms: float = Field(default=200.0, gt=0.0)
    """Send queued records at least this often, in milliseconds."""
    intra_op_threads: int = Field(default=1, ge=0)
    """ONNX Runtime threads within one operator (0 = one per core)."""
    inter_op_threads: int = Field(default=1, ge=0)
    """ONNX Runtime threads across operators (0 = default)."""
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"
    """ONNX Runtime graph optimization level."""
    offload: bool = False
    """Run the model in a worker thread instead of on the event loop (useful with spare
    cores and slow models)."""
    shutdown_timeout_s: float = Field(default=10.0, ge=0.0)
    """Seconds in-flight requests may take to finish after SIGTERM."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Log level of the process."""

    @model_validator(mode="after")
    def _check_flush(self) -> ServerSettings:
        if self.records_flush_rows > self.records_queue_rows:
            raise ValueError("records_flush_rows must not exceed records_queue_rows")
        if self.monitor_url is not None and not self.monitor_url.startswith(
            ("http://", "https://")
        ):
            raise ValueError("monitor_url must start with http:// or https://")
        return self
