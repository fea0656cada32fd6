"""Start-up of the sidecar process: settings -> profile -> service -> HTTP server.

Who calls it: the ``driftline monitor`` command, with the one :class:`MonitorSettings` it built.
"""

from __future__ import annotations

import json
import time

import numpy as np
from prometheus_client import CollectorRegistry

from driftline.serving.drift.decide import (
    DEFAULT_THRESHOLDS,
    Correction,
    DecisionConfig,
    DecisionError,
    Rule,
)
from driftline.serving.drift.profile import Profile, ProfileError, profile_from_json
from driftline.serving.http import run_event_loop
from driftline.serving.monitor.app import create_handler, serve_until_stopped
from driftline.serving.monitor.metrics import MonitorMetrics
from driftline.serving.monitor.service import ExtractError, MonitorConfig, MonitorService
from driftline.serving.monitor.settings import MonitorSettings
from driftline.serving.monitor.window import WindowError, WindowKind, WindowSpec


class MonitorStartError(RuntimeError):
    """The sidecar cannot start; the message names the setting or file."""


def load_profile(settings: MonitorSettings) -> Profile:
    """Read and validate the profile file.

    Raises:
        MonitorStartError: naming the file and the problem.
    """
    try:
        doc = json.loads(settings.profile.read_text())
        return profile_from_json(doc)
    except OSError as exc:
        raise MonitorStartError(f"--profile {settings.profile}: {exc.strerror or exc}") from exc
    except (ValueError, ProfileError) as exc:
        raise MonitorStartError(f"--profile {settings.profile}: {exc}") from exc


def monitor_config(settings: MonitorSettings, profile: Profile) -> MonitorConfig:
    """The service config from the settings.

    Raises:
        MonitorStartError: naming the setting that cannot work.
    """
    sources = [(s.name, s.source) for s in profile.layout.numeric] + [
        (c.name, c.source) for c in profile.layout.categorical
    ]
    predictions = frozenset(n for n, src in sources if src is not None and src.kind == "output")
    chosen = frozenset(n.strip() for n in (settings.features or "").split(",") if n.strip())
    unknown = sorted(chosen - {n for n, _ in sources})
    if unknown:
        raise MonitorStartError(
            f"--features: unknown feature(s) {unknown}; the profile has {[n for n, _ in sources]}"
        )
    try:
        rows = settings.window_rows
        if rows is None and settings.window_seconds is None:
            rows = 10_000
        window = WindowSpec(
            kind=WindowKind(settings.window_kind),
            rows=rows,
            seconds=settings.window_seconds,
            panes=settings.window_panes,
            reservoir=settings.reservoir,
        )
        decision = DecisionConfig(
            alpha=settings.alpha,
            correction=Correction(settings.correction),
            min_samples=settings.min_samples,
            numeric=Rule(
                settings.numeric_effect,
                settings.numeric_threshold
                if settings.numeric_threshold is not None
                else DEFAULT_THRESHOLDS[settings.numeric_effect],
            ),
            categorical=Rule(
                settings.categorical_effect,
                settings.categorical_threshold
                if settings.categorical_threshold is not None
                else DEFAULT_THRESHOLDS[settings.categorical_effect],
            ),
            min_drifted=settings.min_drifted,
            predictions=predictions,
            features=chosen,
        )
    except (WindowError, DecisionError) as exc:
        raise MonitorStartError(str(exc)) from exc
    return MonitorConfig(
        window=window,
        decision=decision,
        max_variants=settings.max_variants,
        feedback_capacity=settings.feedback_capacity,
        feedback_max_age=settings.feedback_max_age_s,
        task=settings.task,
        score_output=settings.score_output,
        score_column=settings.score_column,
        label_output=settings.label_output,
    )


def run(settings: MonitorSettings) -> None:
    """Load the profile, build the service and serve until SIGTERM.

    Raises:
        MonitorStartError: when the profile or a setting cannot be used (before binding).
    """
    profile = load_profile(settings)
    config = monitor_config(settings, profile)
    try:
        service = MonitorService(profile, config, time.time, np.random.default_rng())
    except ExtractError as exc:
        raise MonitorStartError(f"--profile {settings.profile}: {exc}") from exc
    registry = CollectorRegistry()
    metrics = MonitorMetrics.build(registry)
    handler = create_handler(service, metrics, registry, settings.max_feedback_items)

    def ready(port: int) -> None:
        print(
            f"driftline monitor: listening on http://{settings.host}:{port} "
            f"(profile {profile.reference_sha256[:12]}…)",
            flush=True,
        )

    run_event_loop(
        serve_until_stopped(handler, settings.host, settings.port, settings.max_body_bytes, ready)
    )
