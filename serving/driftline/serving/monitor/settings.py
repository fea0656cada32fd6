"""``MonitorSettings``: every knob of ``driftline monitor``, from flags or ``DRIFTLINE_MONITOR_*``.

Who uses it: the ``monitor`` command builds exactly one instance (flags given on the command line
win over the environment) and passes it down; nothing else reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class MonitorSettings(BaseSettings):
    """Settings of one monitor sidecar process (env prefix ``DRIFTLINE_MONITOR_``)."""

    model_config = SettingsConfigDict(
        env_prefix="DRIFTLINE_MONITOR_",
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )

    profile: Path
    """Reference profile written by ``driftline profile`` (JSON)."""
    host: str = "127.0.0.1"
    """Address to bind; the server reaches the sidecar over localhost."""
    port: int = Field(default=8081, ge=0, le=65535)
    """TCP port to bind (0 picks a free port)."""
    window_kind: Literal["tumbling", "sliding"] = "tumbling"
    """Tumbling (consecutive windows) or sliding (the last rows or seconds)."""
    window_rows: int | None = Field(default=None, ge=1)
    """Window size in rows (default 10000 when no ``window_seconds``)."""
    window_seconds: float | None = Field(default=None, gt=0)
    """Window length in seconds of prediction time (instead of rows)."""
    window_panes: int = Field(default=10, ge=1, le=1000)
    """Panes per sliding window: its resolution."""
    reservoir: int = Field(default=2048, ge=0, le=1_000_000)
    """Rows sampled per window for sample-based checks."""
    min_samples: int = Field(default=500, ge=1)
    """Values a feature (and rows a window or segment) needs before it is judged."""
    alpha: float = Field(default=0.05, gt=0, lt=1)
    """Family-wise error (bonferroni) or false discovery rate (fdr)."""
    correction: Literal["bonferroni", "fdr", "none"] = "bonferroni"
    """Multiple-testing correction over features x segments."""
    numeric_effect: Literal["wasserstein", "ks", "psi", "jensen_shannon"] = "wasserstein"
    """Effect-size gate of numeric features."""
    numeric_threshold: float | None = Field(default=None, ge=0)
    """Gate value (default: wasserstein 0.1, ks 0.1, psi 0.2, jensen_shannon 0.1)."""
    categorical_effect: Literal["jensen_shannon", "psi"] = "jensen_shannon"
    """Effect-size gate of categorical features."""
    categorical_threshold: float | None = Field(default=None, ge=0)
    """Gate value (default: jensen_shannon 0.1, psi 0.2)."""
    min_drifted: int = Field(default=1, ge=1)
    """Drifted features that make a window drift."""
    features: str | None = None
    """Comma-separated input features to test (default: every profiled feature)."""
    max_variants: int = Field(default=8, ge=1, le=64)
    """Variants tracked; records of more variants are dropped and counted."""
    feedback_capacity: int = Field(default=200_000, ge=1, le=50_000_000)
    """Predictions kept for joining delayed labels (oldest forgotten first)."""
    feedback_max_age_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    """Seconds after a prediction during which its label is accepted."""
    task: Literal["auto", "classification", "regression"] = "auto"
    """What the model predicts (auto: classification when an output has 2+ columns)."""
    score_output: str | None = None
    """Output tensor with the score (classification) or value (regression); default
    ``probabilities`` or the only output."""
    score_column: int = Field(default=1, ge=0)
    """Column of the score output (the positive class of a binary classifier)."""
    label_output: str | None = None
    """Output tensor with the predicted class (default ``label``, else argmax of the score)."""
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Largest request body in bytes; more is a 413."""
    max_feedback_items: int = Field(default=100_000, ge=1)
    """Most feedback items per request."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Log level."""

    @model_validator(mode="after")
    def _one_window_size(self) -> MonitorSettings:
        if self.window_rows is not None and self.window_seconds is not None:
            raise ValueError("give window_rows or window_seconds, not both")
        return self
