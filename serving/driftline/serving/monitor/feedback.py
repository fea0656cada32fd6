"""Delayed labels: predictions logged by request id, joined with feedback that arrives later.

Who calls it: :class:`driftline.serving.monitor.service.MonitorService` logs every ingested
batch and joins ``POST /v1/feedback`` items; performance is computed per variant and model
version over the joined predictions of the current window.

Memory is bounded: a ring of ``capacity`` rows; the oldest rows (and their ids) are forgotten
first. Feedback for an id never seen or already forgotten is counted as ``unknown``, for a
prediction older than ``max_age`` seconds as ``late``, a second label for the same row as
``duplicate``: never an error.

Rows of one request share its id; feedback names the row with ``row`` (0 by default).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from scipy import stats

Float = npt.NDArray[np.float64]


class JoinResult(StrEnum):
    """What became of one feedback item."""

    JOINED = "joined"
    UNKNOWN = "unknown"
    LATE = "late"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Feedback:
    """One delayed label.

    Attributes:
        request_id: the prediction's request id.
        truth: the label (class index) or the numeric outcome.
        row: the row within the request.
    """

    request_id: str
    truth: float
    row: int = 0


def accuracy(predicted: Float, truth: Float) -> float:
    """Share of predicted labels equal to the truth (NaN when empty)."""
    return float(np.mean(predicted == truth)) if len(truth) else math.nan


def roc_auc(score: Float, truth: Float) -> float:
    """Area under the ROC curve of ``score`` for ``truth == 1`` (NaN unless both classes occur).

    Computed as the Mann-Whitney U statistic over average ranks (ties count one half).
    """
    pos = truth == 1
    n_pos = int(pos.sum())
    n_neg = len(truth) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = stats.rankdata(score)
    u = float(ranks[pos].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def mae(predicted: Float, truth: Float) -> float:
    """Mean absolute error (NaN when empty)."""
    return float(np.mean(np.abs(predicted - truth))) if len(truth) else math.nan


def rmse(predicted: Float, truth: Float) -> float:
    """Root mean squared error (NaN when empty)."""
    return float(np.sqrt(np.mean((predicted - truth) ** 2))) if len(truth) else math.nan


@dataclass
class PredictionLog:
    """A bounded ring of predictions keyed by request id.

    Attributes:
        capacity: rows kept.
        max_age: seconds after which a prediction no longer accepts feedback.
    """

    capacity: int
    max_age: float
    _slots: dict[str, tuple[int, int]] = field(default_factory=dict)
    _next: int = 0

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError("capacity must be at least 1")
        c = self.capacity
        self._owner: npt.NDArray[np.object_] = np.full(c, None, dtype=object)
        self.timestamp: Float = np.full(c, np.nan)
        self.score: Float = np.full(c, np.nan)
        self.predicted: Float = np.full(c, np.nan)
        self.truth: Float = np.full(c, np.nan)
        self.group: npt.NDArray[np.int64] = np.full(c, -1, dtype=np.int64)
        self.groups: list[tuple[str, str]] = []
        self._group_index: dict[tuple[str, str], int] = {}

    def _group(self, variant: str, version: str) -> int:
        key = (variant, version)
        if key not in self._group_index:
            self._group_index[key] = len(self.groups)
            self.groups.append(key)
        return self._group_index[key]

    def log(
        self,
        variant: str,
        version: str,
        request_ids: Sequence[str],
        timestamps: Float,
        score: Float,
        predicted: Float,
    ) -> None:
        """Log a batch of rows (rows of one request are contiguous)."""
        m = len(request_ids)
        if m == 0:
            return
        if m > self.capacity:  # only the newest rows fit
            cut = m - self.capacity
            self.log(variant, version, request_ids[cut:], timestamps[cut:], score[cut:],
                     predicted[cut:])  # fmt: skip
            return
        ids = np.asarray(request_ids, dtype=object)
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        lengths = np.diff(np.r_[starts, m])
        slots = (self._next + np.arange(m)) % self.capacity
        # Forget the requests whose first row is overwritten (vectorised scan of the slots).
        owners = self._owner[slots]
        for s, owner in zip(slots[owners != None].tolist(), owners[owners != None].tolist(),  # noqa: E711
                            strict=True):  # fmt: skip
            if self._slots.get(owner, (-1, 0))[0] == s:
                del self._slots[owner]
        self._owner[slots] = None
        first = slots[starts]
        self._owner[first] = ids[starts]
        self._slots.update(zip(ids[starts].tolist(), zip(first.tolist(), lengths.tolist(),
                                                         strict=True), strict=True))  # fmt: skip
        self.timestamp[slots] = timestamps
        self.score[slots] = score
        self.predicted[slots] = predicted
        self.truth[slots] = np.nan
        self.group[slots] = self._group(variant, version)
        self._next = int((self._next + m) % self.capacity)

    def join(self, item: Feedback, now: float) -> JoinResult:
        """Attach one label to its logged prediction."""
        found = self._slots.get(item.request_id)
        if found is None or not 0 <= item.row < found[1]:
            return JoinResult.UNKNOWN
        slot = (found[0] + item.row) % self.capacity
        if now - float(self.timestamp[slot]) > self.max_age:
            return JoinResult.LATE
        if not math.isnan(float(self.truth[slot])):
            return JoinResult.DUPLICATE
        self.truth[slot] = item.truth
        return JoinResult.JOINED

    def performance(
        self, task: str, start: float | None, end: float | None
    ) -> dict[tuple[str, str], dict[str, float]]:
        """Metrics per (variant, version) over joined predictions made in ``[start, end]``.

        Args:
            task: ``classification`` (accuracy, auc) or ``regression`` (mae, rmse).
            start: earliest prediction timestamp (None: no bound).
            end: latest prediction timestamp (None: no bound).
        """
        joined = ~np.isnan(self.truth)
        if start is not None:
            joined &= self.timestamp >= start
        if end is not None:
            joined &= self.timestamp <= end
        out: dict[tuple[str, str], dict[str, float]] = {}
        for g, key in enumerate(self.groups):
            pick = joined & (self.group == g)
            if not pick.any():
                continue
            truth, pred, score = self.truth[pick], self.predicted[pick], self.score[pick]
            if task == "classification":
                out[key] = {
                    "labelled": float(len(truth)),
                    "accuracy": accuracy(pred, truth),
                    "auc": roc_auc(score, truth),
                }
            else:
                out[key] = {"labelled": float(len(truth)), "mae": mae(pred, truth),
                            "rmse": rmse(pred, truth)}  # fmt: skip
        return out
