"""The monitor's state and behaviour, free of any web framework.

Who calls it: :mod:`driftline.serving.monitor.app` binds these methods to HTTP routes; tests call
them directly. It owns one :class:`~driftline.serving.monitor.window.Windows` per variant, the
:class:`~driftline.serving.monitor.feedback.PredictionLog` for delayed labels, and the ingest
counters. Nothing here raises on bad input from the wire: a malformed frame, a record without a
profiled tensor or an unknown feedback id is counted and skipped.

A restart loses the counts of the open windows (state lives in memory): at most the current
window, since a closed window is re-formed by the next one.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from driftline.serving import records
from driftline.serving.drift import decide, evaluate
from driftline.serving.drift.profile import (
    Layout,
    Profile,
    Source,
    counts_to_json,
    encode_categories,
)
from driftline.serving.monitor.feedback import Feedback, JoinResult, PredictionLog
from driftline.serving.monitor.state import WINDOW_FORMAT
from driftline.serving.monitor.window import Windows, WindowSpec

Float = npt.NDArray[np.float64]
Task = Literal["auto", "classification", "regression"]


class ExtractError(ValueError):
    """A record batch that lacks what the profile needs; the message names it."""


def extract(layout: Layout, batch: records.RecordBatch) -> tuple[Float, npt.NDArray[np.intp]]:
    """Pull the profiled features out of a record batch.

    Returns:
        ``(m, F_num)`` float64 values and ``(m, F_cat)`` category columns.

    Raises:
        ExtractError: when a tensor or column named by a feature's source is missing.
    """
    m = batch.rows
    numeric = np.empty((m, len(layout.numeric)), order="F")  # columns contiguous: cheap sort
    codes = np.empty((m, len(layout.categorical)), dtype=np.intp)

    def column(name: str, source: object) -> npt.NDArray[np.generic]:
        if not isinstance(source, Source):
            raise ExtractError(f"feature {name!r} has no source in the profile")
        tensors = batch.inputs if source.kind == "input" else batch.outputs
        array = tensors.get(source.tensor)
        if array is None:
            raise ExtractError(f"feature {name!r}: no {source.kind} tensor {source.tensor!r}")
        if array.ndim == 1 and source.column == 0:
            return array
        if array.ndim == 2 and source.column < array.shape[1]:
            return array[:, source.column]
        raise ExtractError(
            f"feature {name!r}: {source.kind} {source.tensor!r} of shape {array.shape} "
            f"has no column {source.column}"
        )

    for j, spec in enumerate(layout.numeric):
        col = column(spec.name, spec.source)
        if col.dtype.kind not in "biuf":
            raise ExtractError(f"feature {spec.name!r}: expected numbers, got {col.dtype}")
        numeric[:, j] = col
    for j, spec_c in enumerate(layout.categorical):
        col = column(spec_c.name, spec_c.source)
        codes[:, j] = encode_categories(layout, j, col)
    return numeric, codes


@dataclass(frozen=True)
class MonitorConfig:
    """Behaviour of the monitor (built from ``MonitorSettings`` by the CLI).

    Attributes:
        window: window shape.
        decision: thresholds, alpha, correction, minimum samples.
        max_variants: variants tracked; records of further variants are dropped and counted.
        feedback_capacity: predictions kept for joining delayed labels.
        feedback_max_age: seconds after which a prediction no longer accepts a label.
        task: ``classification``, ``regression`` or ``auto`` (from the outputs).
        score_output: output tensor with the score (classification) or value (regression).
        score_column: its column.
        label_output: output tensor with the predicted class (classification).
    """

    window: WindowSpec = field(default_factory=WindowSpec)
    decision: decide.DecisionConfig = field(default_factory=decide.DecisionConfig)
    max_variants: int = 8
    feedback_capacity: int = 200_000
    feedback_max_age: float = 7 * 24 * 3600.0
    task: Task = "auto"
    score_output: str | None = None
    score_column: int = 1
    label_output: str | None = None


@dataclass(frozen=True)
class IngestResult:
    """What happened to one frame.

    Attributes:
        rows: rows counted into windows.
        dropped: rows dropped, by reason.
        error: why the frame was rejected or its rows dropped (None when accepted).
        variant: the frame's variant (empty when the frame was malformed).
    """

    rows: int
    dropped: Mapping[str, int]
    error: str | None = None
    variant: str = ""


def _predictions(batch: records.RecordBatch, cfg: MonitorConfig) -> tuple[str, Float, Float] | None:
    """``(task, score, predicted)`` per row from the outputs, or None when none fits."""
    outs = batch.outputs
    m = batch.rows
    task: str = cfg.task
    score_name = cfg.score_output
    if score_name is None:
        if "probabilities" in outs:
            score_name = "probabilities"
        elif len(outs) == 1:
            score_name = next(iter(outs))
    score_arr = outs.get(score_name) if score_name else None
    if score_arr is None or score_arr.dtype.kind not in "biuf":
        return None
    if task == "auto":
        task = (
            "classification" if score_arr.ndim == 2 and score_arr.shape[1] >= 2 else ("regression")
        )
    flat = score_arr.reshape(m, -1).astype(np.float64)
    if task == "regression":
        value = flat[:, min(cfg.score_column, flat.shape[1] - 1)]
        return task, value, value
    col = min(cfg.score_column, flat.shape[1] - 1)
    label_arr = outs.get(cfg.label_output or "label")
    if label_arr is not None and label_arr.dtype.kind in "biuf":
        predicted = label_arr.reshape(m, -1)[:, 0].astype(np.float64)
    else:
        predicted = (
            flat.argmax(axis=1).astype(np.float64)
            if flat.shape[1] > 1
            else ((flat[:, 0] >= 0.5).astype(np.float64))
        )
    return task, flat[:, col], predicted


class MonitorService:
    """Windows per variant, delayed labels and counters over one reference profile."""

    def __init__(
        self,
        profile: Profile,
        config: MonitorConfig,
        clock: Callable[[], float],
        rng: np.random.Generator | None = None,
    ) -> None:
        """Check that the profile can be fed from records and set up empty state.

        Raises:
            ExtractError: when a profile feature has no source (the sidecar could not find it).
        """
        sources = [(s.name, s.source) for s in profile.layout.numeric] + [
            (c.name, c.source) for c in profile.layout.categorical
        ]
        for name, source in sources:
            if source is None:
                raise ExtractError(
                    f"profile feature {name!r} has no source tensor; rebuild the profile "
                    "with --input-name or --features"
                )
        cat_names = [c.name for c in profile.layout.categorical]
        self.profile = profile
        self.config = config
        self.clock = clock
        self.rng = rng or np.random.default_rng()
        self.segment_columns = {s: cat_names.index(s) for s in profile.segments}
        self.windows: dict[str, Windows] = {}
        self.versions: dict[str, str] = {}
        self.log = PredictionLog(config.feedback_capacity, config.feedback_max_age)
        self.task: str | None = None if config.task == "auto" else config.task
        self.rows: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.malformed_frames = 0
        self.frames = 0
        self.feedback_results: Counter[str] = Counter()

    def ingest(self, frame: bytes) -> IngestResult:
        """Decode one frame and count it; a malformed frame is counted and skipped."""
        self.frames += 1
        try:
            batch = records.decode(frame)
        except records.RecordFormatError as exc:
            self.malformed_frames += 1
            return IngestResult(0, {}, str(exc))
        return self.ingest_batch(batch)

    def ingest_batch(self, batch: records.RecordBatch) -> IngestResult:
        """Count one decoded batch into its variant's windows and log it for feedback."""
        variant = batch.variant
        if variant not in self.windows and len(self.windows) >= self.config.max_variants:
            self.dropped["too_many_variants"] += batch.rows
            return IngestResult(0, {"too_many_variants": batch.rows}, "too many variants", variant)
        try:
            numeric, codes = extract(self.profile.layout, batch)
        except ExtractError as exc:
            self.dropped["missing_feature"] += batch.rows
            return IngestResult(0, {"missing_feature": batch.rows}, str(exc), variant)
        windows = self.windows.get(variant)
        if windows is None:
            windows = Windows(
                self.profile.layout, self.config.window, self.segment_columns, self.rng
            )
            self.windows[variant] = windows
        pred = _predictions(batch, self.config)
        labels = pred[2] if pred is not None and pred[0] == "classification" else None
        late_before = windows.late_rows
        windows.add(numeric, codes, batch.timestamps, labels)
        late = windows.late_rows - late_before
        self.versions[variant] = batch.version
        self.rows[variant] += batch.rows - late
        dropped = {"late": late} if late else {}
        if late:
            self.dropped["late"] += late
        if pred is not None:
            task, score, predicted = pred
            self.task = self.task or task
            self.log.log(
                variant, batch.version, batch.request_ids, batch.timestamps, score, predicted
            )
        return IngestResult(batch.rows - late, dropped, None, variant)

    def feedback(self, items: Sequence[Feedback]) -> dict[str, int]:
        """Join delayed labels; returns how many items got each result."""
        now = self.clock()
        result: Counter[str] = Counter({r.value: 0 for r in JoinResult})
        for item in items:
            result[self.log.join(item, now).value] += 1
        self.feedback_results.update(result)
        return dict(result)

    def verdicts(self) -> dict[str, object]:
        """The current verdict of every variant, as a JSON-ready document."""
        now = self.clock()
        variants: dict[str, object] = {}
        for variant, windows in self.windows.items():
            view = windows.view(now)
            parts = evaluate.scopes(self.profile, view.whole, view.segments)
            verdict = decide.decide(self.profile.layout, parts, self.config.decision)
            perf = self.log.performance(self.task or "classification", view.first_ts,
                                        view.last_ts)  # fmt: skip
            variants[variant] = {
                "version": self.versions.get(variant),
                "window": {
                    "rows": view.whole.rows,
                    "complete": view.complete,
                    "first_ts": view.first_ts,
                    "last_ts": view.last_ts,
                },
                "verdict": decide.verdict_to_json(verdict),
                "prediction_counts": dict(sorted(view.predictions.items())),
                "performance": [
                    {"variant": v, "version": ver, **{k: _num(x) for k, x in m.items()}}
                    for (v, ver), m in perf.items()
                    if v == variant
                ],
            }
        return {
            "reference_sha256": self.profile.reference_sha256,
            "task": self.task,
            "variants": variants,
            "ingest": self.counters(),
        }

    def counters(self) -> dict[str, object]:
        """Ingest counters."""
        return {
            "frames": self.frames,
            "malformed_frames": self.malformed_frames,
            "rows": dict(self.rows),
            "dropped": dict(self.dropped),
            "feedback": dict(self.feedback_results),
        }

    def window_state(self) -> dict[str, object]:
        """The mergeable window state of every variant (sum counts across pods)."""
        now = self.clock()
        layout = self.profile.layout
        variants: dict[str, object] = {}
        for variant, windows in self.windows.items():
            view = windows.view(now)
            variants[variant] = {
                "version": self.versions.get(variant),
                "complete": view.complete,
                "first_ts": view.first_ts,
                "last_ts": view.last_ts,
                "whole": counts_to_json(layout, view.whole),
                "segments": {
                    seg: {
                        cat: counts_to_json(layout, h)
                        for cat, h in zip(
                            layout.categorical[self.segment_columns[seg]].categories,
                            parts,
                            strict=True,
                        )
                    }
                    for seg, parts in view.segments.items()
                },
            }
        return {
            "format": WINDOW_FORMAT,
            "reference_sha256": self.profile.reference_sha256,
            "window": {
                "kind": self.config.window.kind.value,
                "rows": self.config.window.rows,
                "seconds": self.config.window.seconds,
                "panes": self.config.window.panes,
            },
            "variants": variants,
        }


def _num(value: float) -> float | None:
    return value if math.isfinite(value) else None
