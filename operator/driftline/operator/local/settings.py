"""``LocalSettings``: every knob of ``driftline up`` and its companion commands.

Who uses it: the local-mode commands (:mod:`driftline.operator.local.commands`) build exactly one
instance from flags and ``DRIFTLINE_LOCAL_*`` environment variables (a flag wins) and pass it down;
nothing else reads the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from driftline.operator.local.state import DEFAULT_DIR


class LocalSettings(BaseSettings):
    """Settings of local mode (env prefix ``DRIFTLINE_LOCAL_``)."""

    model_config = SettingsConfigDict(
        env_prefix="DRIFTLINE_LOCAL_", extra="forbid", frozen=True, use_attribute_docstrings=True
    )

    state_dir: Path = DEFAULT_DIR
    """The state directory (default ``.driftline`` in the current folder)."""
    port: int = Field(default=8000, ge=0, le=65535)
    """Router port of the first Deployment on 127.0.0.1 (0 = any free port); others get free
    ports, printed at start."""
    tick_s: float = Field(default=0.5, gt=0, le=60)
    """Seconds between two passes of the control loop."""
    ready_timeout_s: float = Field(default=60.0, gt=0)
    """How long a child may take to answer its readiness probe after a start; then it is killed
    and restarted (counted)."""
    stop_timeout_s: float = Field(default=10.0, gt=0)
    """How long a stopping child may take after SIGTERM before it is killed."""
    max_restarts: int = Field(default=5, ge=0)
    """Crashes in a row before a child is given up (a successful start resets the count)."""
