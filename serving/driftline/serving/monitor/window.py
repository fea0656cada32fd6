"""Windows over the stream of prediction rows: tumbling or sliding, by row count or by age.

Who calls it: :class:`driftline.serving.monitor.service.MonitorService` keeps one
:class:`Windows` per variant and feeds it encoded batches.

A window is a set of *panes*; a pane holds :class:`~driftline.serving.drift.profile.Histograms`
of its rows (whole and per segment) and a bounded reservoir sample. Histograms are counts over the
reference bins, so a window is the sum of its panes and windows of many pods merge exactly.

- Tumbling by count: a pane of ``rows`` rows; the window is the last *complete* pane (the open
  pane until the first one completes).
- Sliding by count: ``panes`` panes of ``rows / panes`` rows; the window is the open pane plus the
  ``panes - 1`` before it, i.e. between ``rows - rows / panes`` and ``rows`` rows.
- By age: pane ``i`` holds the rows whose timestamp falls in ``[i * L, (i + 1) * L)`` with
  ``L = seconds`` (tumbling) or ``seconds / panes`` (sliding). Tumbling: the last complete pane
  (the open one until then); sliding: the panes within ``seconds`` of ``now``. Rows older than
  every kept pane are dropped and counted as late.

Memory is bounded: at most ``panes + 1`` panes per variant, each of fixed size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

import numpy as np
import numpy.typing as npt

from driftline.serving.drift.profile import Histograms, Layout, category_key, histograms

Float = npt.NDArray[np.float64]
Codes = npt.NDArray[np.intp]

DEFAULT_RESERVOIR: Final = 2048
"""Rows sampled per window for sample-based checks: enough for a KS p-value at 1% resolution."""
MAX_LABELS: Final = 256
"""Distinct predicted labels counted per pane; the rest share :data:`OTHER_LABEL` (bounded
memory even when a model emits arbitrary numbers as its "label")."""
OTHER_LABEL: Final = "__other__"
"""The key that pools labels beyond :data:`MAX_LABELS` (and only those)."""


def count_labels(counts: dict[str, int], labels: Float, limit: int = MAX_LABELS) -> None:
    """Add the predicted labels of some rows to ``counts`` (label key -> rows), in place.

    Labels are keyed like numeric category codes (``1.0 -> "1"``); non-finite labels are not
    counted. Once ``counts`` holds ``limit`` distinct keys, new labels go to
    :data:`OTHER_LABEL` (so at most ``limit + 1`` keys). One ``np.unique`` per call: no Python
    work per row.
    """
    finite = labels[np.isfinite(labels)]
    if not len(finite):
        return
    values, n = np.unique(finite, return_counts=True)
    for value, k in zip(values.tolist(), n.tolist(), strict=True):
        key = category_key(float(value))
        if key not in counts and len(counts) >= limit:
            key = OTHER_LABEL
        counts[key] = counts.get(key, 0) + int(k)


class WindowKind(StrEnum):
    """How consecutive windows relate."""

    TUMBLING = "tumbling"
    SLIDING = "sliding"


class WindowError(ValueError):
    """A window specification that cannot work; the message names the field."""


@dataclass(frozen=True)
class WindowSpec:
    """The shape of the windows.

    Attributes:
        kind: tumbling or sliding.
        rows: window size in rows (exclusive with ``seconds``).
        seconds: window length in seconds (exclusive with ``rows``).
        panes: panes per sliding window (its time or count resolution).
        reservoir: rows kept in the uniform reservoir sample of a window.
    """

    kind: WindowKind = WindowKind.TUMBLING
    rows: int | None = 10_000
    seconds: float | None = None
    panes: int = 10
    reservoir: int = DEFAULT_RESERVOIR

    def __post_init__(self) -> None:
        if (self.rows is None) == (self.seconds is None):
            raise WindowError("give exactly one of rows or seconds")
        if self.rows is not None and self.rows < 1:
            raise WindowError(f"rows must be at least 1, got {self.rows}")
        if self.seconds is not None and not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise WindowError(f"seconds must be positive, got {self.seconds}")
        if self.panes < 1 or self.reservoir < 0:
            raise WindowError("panes must be at least 1 and reservoir non-negative")
        if self.kind is WindowKind.SLIDING and self.rows is not None and self.rows < self.panes:
            raise WindowError("a sliding window needs at least one row per pane")

    @property
    def n_panes(self) -> int:
        """Panes that make a window (1 for tumbling)."""
        return self.panes if self.kind is WindowKind.SLIDING else 1

    @property
    def pane_rows(self) -> int:
        """Rows per pane (count windows)."""
        assert self.rows is not None
        return max(1, self.rows // self.n_panes)

    @property
    def pane_seconds(self) -> float:
        """Seconds per pane (age windows)."""
        assert self.seconds is not None
        return self.seconds / self.n_panes


class Reservoir:
    """A uniform sample of at most ``capacity`` numeric rows of a stream (Algorithm R).

    Vectorised per batch: row ``t`` (1-based over the stream) is kept with probability
    ``capacity / t`` in a random slot; later rows of the same batch overwrite earlier ones in
    order, as the sequential algorithm would.
    """

    def __init__(self, capacity: int, width: int, rng: np.random.Generator) -> None:
        self.capacity = capacity
        self.seen = 0
        self.rows: Float = np.empty((capacity, width))
        self._rng = rng

    def add(self, values: Float) -> None:
        """Offer the rows of ``values`` (``(m, width)``) in order."""
        m = len(values)
        if m == 0 or self.capacity == 0:
            self.seen += m
            return
        fill = min(max(self.capacity - self.seen, 0), m)
        if fill:
            self.rows[self.seen : self.seen + fill] = values[:fill]
        rest = values[fill:]
        if len(rest):
            t = self.seen + fill + np.arange(1, len(rest) + 1)
            slot = (self._rng.random(len(rest)) * t).astype(np.int64)
            take = slot < self.capacity
            # Assignment with repeated indices keeps the last write: sequential semantics.
            self.rows[slot[take]] = rest[take]
        self.seen += m

    def sample(self) -> Float:
        """The sampled rows (a copy)."""
        return self.rows[: min(self.seen, self.capacity)].copy()


@dataclass
class Pane:
    """The counts of a run of rows.

    Attributes:
        index: pane number (count windows: sequence; age windows: ``floor(ts / L)``).
        whole: counts of every row.
        segments: per segment feature, counts per category.
        reservoir: uniform sample of the numeric values.
        first_ts: smallest row timestamp (seconds since the epoch).
        last_ts: largest row timestamp.
        predictions: predicted label -> rows (classifiers; empty when no labels were given).
    """

    index: int
    whole: Histograms
    segments: dict[str, list[Histograms]]
    reservoir: Reservoir
    first_ts: float = math.inf
    last_ts: float = -math.inf
    predictions: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Rows counted."""
        return self.whole.rows


@dataclass(frozen=True)
class WindowView:
    """The merged counts of the panes that form the current window.

    Attributes:
        whole: counts of every row in the window.
        segments: per segment feature, per category, counts.
        complete: whether the window is full (a closed tumbling pane, or a sliding window that
            spans its full length).
        first_ts: smallest timestamp in the window (None when empty).
        last_ts: largest timestamp.
        sample: reservoir sample of numeric values, ``(s, F_num)``.
        predictions: predicted label -> rows in the window (summed over its panes).
    """

    whole: Histograms
    segments: Mapping[str, list[Histograms]]
    complete: bool
    first_ts: float | None
    last_ts: float | None
    sample: Float
    predictions: Mapping[str, int] = field(default_factory=dict)


@dataclass
class Windows:
    """The windows of one variant.

    Attributes:
        layout: the binning (from the reference profile).
        spec: the window shape.
        segment_columns: segment feature name to its categorical column in the code matrix.
        rng: randomness of the reservoir (seeded in tests).
    """

    layout: Layout
    spec: WindowSpec
    segment_columns: Mapping[str, int] = field(default_factory=dict)
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    panes: list[Pane] = field(default_factory=list)
    late_rows: int = 0
    total_rows: int = 0

    def _new_pane(self, index: int) -> Pane:
        segs = {
            name: [Histograms.empty(self.layout) for _ in self.layout.categorical[col].categories]
            for name, col in self.segment_columns.items()
        }
        capacity = self.spec.reservoir // self.spec.n_panes
        return Pane(
            index=index,
            whole=Histograms.empty(self.layout),
            segments=segs,
            reservoir=Reservoir(capacity, len(self.layout.numeric), self.rng),
        )

    def _count_into(
        self, pane: Pane, numeric: Float, codes: Codes, ts: Float, labels: Float | None
    ) -> None:
        (hist,) = histograms(self.layout, numeric, codes)
        pane.whole = pane.whole.merge(hist)
        for name, col in self.segment_columns.items():
            n_cat = len(self.layout.categorical[col].categories)
            groups = np.where(codes[:, col] < n_cat, codes[:, col], -1)
            parts = histograms(self.layout, numeric, codes, groups, n_cat)
            pane.segments[name] = [
                a.merge(b) for a, b in zip(pane.segments[name], parts, strict=True)
            ]
        pane.reservoir.add(numeric)
        if labels is not None:
            count_labels(pane.predictions, labels)
        if len(ts):
            pane.first_ts = min(pane.first_ts, float(ts.min()))
            pane.last_ts = max(pane.last_ts, float(ts.max()))

    def _trim(self) -> None:
        keep = self.spec.n_panes + 1
        if len(self.panes) > keep:
            del self.panes[: len(self.panes) - keep]

    def add(
        self, numeric: Float, codes: Codes, timestamps: Float, labels: Float | None = None
    ) -> None:
        """Count an encoded batch (rows in arrival order).

        Args:
            numeric: ``(m, F_num)`` values.
            codes: ``(m, F_cat)`` category columns.
            timestamps: ``(m,)`` seconds since the epoch.
            labels: ``(m,)`` predicted class per row (classifiers), counted per label.
        """
        m = len(numeric)
        self.total_rows += m
        if m == 0:
            return
        if self.spec.rows is not None:
            self._add_by_count(numeric, codes, timestamps, labels)
        else:
            self._add_by_age(numeric, codes, timestamps, labels)
        self._trim()

    def _add_by_count(self, numeric: Float, codes: Codes, ts: Float, labels: Float | None) -> None:
        size = self.spec.pane_rows
        start = 0
        m = len(numeric)
        while start < m:
            if not self.panes or self.panes[-1].rows >= size:
                index = self.panes[-1].index + 1 if self.panes else 0
                self.panes.append(self._new_pane(index))
                self._trim()
            pane = self.panes[-1]
            stop = min(m, start + size - pane.rows)
            part = slice(start, stop)
            lab = labels[part] if labels is not None else None
            self._count_into(pane, numeric[part], codes[part], ts[part], lab)
            start = stop

    def _add_by_age(self, numeric: Float, codes: Codes, ts: Float, labels: Float | None) -> None:
        length = self.spec.pane_seconds
        finite = np.isfinite(ts)
        index = np.where(finite, np.floor(np.where(finite, ts, 0.0) / length), -1).astype(np.int64)
        newest = int(index.max())
        oldest_kept = newest - self.spec.n_panes
        if self.panes:
            oldest_kept = max(self.panes[-1].index, newest) - self.spec.n_panes
        late = (index < oldest_kept) | ~finite
        self.late_rows += int(late.sum())
        for i in np.unique(index[~late]).tolist():
            pick = index == i
            pane = next((p for p in self.panes if p.index == i), None)
            if pane is None:
                pane = self._new_pane(int(i))
                self.panes.append(pane)
                self.panes.sort(key=lambda p: p.index)
            lab = labels[pick] if labels is not None else None
            self._count_into(pane, numeric[pick], codes[pick], ts[pick], lab)

    def view(self, now: float) -> WindowView:
        """The current window's merged counts.

        Args:
            now: seconds since the epoch (only age windows use it).
        """
        chosen, complete = self._chosen(now)
        whole = Histograms.empty(self.layout)
        segs = {
            name: [Histograms.empty(self.layout) for _ in self.layout.categorical[c].categories]
            for name, c in self.segment_columns.items()
        }
        samples = []
        predictions: dict[str, int] = {}
        first, last = math.inf, -math.inf
        for pane in chosen:
            for label, n in pane.predictions.items():
                predictions[label] = predictions.get(label, 0) + n
            whole = whole.merge(pane.whole)
            for name in segs:
                pairs = zip(segs[name], pane.segments[name], strict=True)
                segs[name] = [a.merge(b) for a, b in pairs]
            samples.append(pane.reservoir.sample())
            first, last = min(first, pane.first_ts), max(last, pane.last_ts)
        sample = np.concatenate(samples) if samples else np.empty((0, len(self.layout.numeric)))
        return WindowView(
            whole=whole,
            segments=segs,
            complete=complete,
            first_ts=first if math.isfinite(first) else None,
            last_ts=last if math.isfinite(last) else None,
            sample=sample,
            predictions=predictions,
        )

    def _chosen(self, now: float) -> tuple[list[Pane], bool]:
        if not self.panes:
            return [], False
        spec = self.spec
        if spec.rows is not None:
            if spec.kind is WindowKind.TUMBLING:
                full = [p for p in self.panes if p.rows >= spec.pane_rows]
                return ([full[-1]], True) if full else ([self.panes[-1]], False)
            chosen = self.panes[-spec.n_panes :]
            return chosen, len(chosen) == spec.n_panes and chosen[0].rows >= spec.pane_rows
        current = math.floor(now / spec.pane_seconds)
        if spec.kind is WindowKind.TUMBLING:
            closed = [p for p in self.panes if p.index < current]
            if closed:
                return [closed[-1]], True
            return [p for p in self.panes if p.index == current], False
        lo = current - spec.n_panes + 1
        chosen = [p for p in self.panes if lo <= p.index <= current]
        started = self.panes[0].index <= lo
        return chosen, started
