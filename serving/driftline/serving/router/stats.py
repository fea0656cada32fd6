"""Windows of per-variant request outcomes and shadow comparisons, for the JSON stats endpoint.

Who uses it: the proxy records every answered request (:meth:`VariantWindow.record`) and every
shadow comparison (:meth:`ShadowWindow.record`); ``GET /stats`` summarises the last ``window_s``
seconds. The operator's rollout analysis reads those summaries (error rate, latency quantiles,
shadow agreement, and the sample counts behind each, for its minimum-samples rule).

Why rings of one-second slots: recording costs O(1) and no allocation on the hot path, any window
up to the ring length can be summarised, and old data ages out by itself. Latency goes into a
sparse histogram with log-spaced buckets (:data:`BUCKET_RATIO` wide), so quantiles are exact to
within one bucket (about 5 %) however many requests a window holds. Time is passed in (seconds,
monotonic), never read here: the module is pure and testable with a fake clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from driftline.serving.router.compare import Comparison

BUCKET_RATIO: Final = 1.05
"""Width of one latency bucket as a ratio: quantiles are reported within 5 %."""
_MIN_LATENCY_S: Final = 10e-6
"""Latencies below 10 us fall into bucket 0 (nothing real is that fast over the network)."""
_LOG_RATIO: Final = math.log(BUCKET_RATIO)
QUANTILES: Final = (0.5, 0.9, 0.99)


def _bucket(latency_s: float) -> int:
    if latency_s <= _MIN_LATENCY_S:
        return 0
    return 1 + int(math.log(latency_s / _MIN_LATENCY_S) / _LOG_RATIO)


def _bucket_upper_s(bucket: int) -> float:
    return _MIN_LATENCY_S * BUCKET_RATIO**bucket


def quantile_from_histogram(counts: dict[int, int], q: float) -> float | None:
    """The ``q`` quantile (seconds) of a bucket histogram: the upper bound of its bucket.

    Returns:
        None when the histogram is empty.
    """
    total = sum(counts.values())
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        if seen >= rank:
            return _bucket_upper_s(bucket)
    return _bucket_upper_s(max(counts))  # pragma: no cover - rank <= total always stops above


@dataclass(frozen=True, slots=True)
class RequestSummary:
    """One variant's requests over a window.

    Attributes:
        requests: requests answered (any outcome).
        errors: answers that count against the variant: upstream 5xx, unreachable, timeout.
        client_errors: upstream 4xx passed through (the client's fault, not the variant's).
        fallbacks: requests meant for this variant that went to stable (no healthy endpoint).
        latency_s: quantile -> seconds, client-facing latency; empty when no request.
    """

    requests: int
    errors: int
    client_errors: int
    fallbacks: int
    latency_s: dict[float, float]

    @property
    def error_rate(self) -> float | None:
        """Share of requests that were errors; None without requests (no data is not 0)."""
        return self.errors / self.requests if self.requests else None


class _Slot:
    __slots__ = ("client_errors", "epoch", "errors", "fallbacks", "hist", "requests")

    def __init__(self) -> None:
        self.epoch = -1
        self.requests = 0
        self.errors = 0
        self.client_errors = 0
        self.fallbacks = 0
        self.hist: dict[int, int] = {}

    def reset(self, epoch: int) -> None:
        self.epoch = epoch
        self.requests = self.errors = self.client_errors = self.fallbacks = 0
        self.hist = {}


class VariantWindow:
    """A ring of one-second slots of one variant's request outcomes."""

    def __init__(self, max_window_s: int) -> None:
        if max_window_s < 1:
            raise ValueError("max_window_s must be at least 1")
        self.max_window_s = max_window_s
        self._slots = [_Slot() for _ in range(max_window_s)]

    def _slot(self, now: float) -> _Slot:
        epoch = int(now)
        slot = self._slots[epoch % self.max_window_s]
        if slot.epoch != epoch:
            slot.reset(epoch)
        return slot

    def record(self, now: float, latency_s: float, *, error: bool, client_error: bool) -> None:
        """Count one answered request at monotonic time ``now``."""
        slot = self._slot(now)
        slot.requests += 1
        if error:
            slot.errors += 1
        elif client_error:
            slot.client_errors += 1
        bucket = _bucket(latency_s)
        slot.hist[bucket] = slot.hist.get(bucket, 0) + 1

    def record_fallback(self, now: float) -> None:
        """Count one request meant for this variant that went to stable instead."""
        self._slot(now).fallbacks += 1

    def summary(self, now: float, window_s: int) -> RequestSummary:
        """The last ``window_s`` seconds up to ``now`` (clamped to the ring length)."""
        window = max(1, min(window_s, self.max_window_s))
        first = int(now) - window + 1
        requests = errors = client_errors = fallbacks = 0
        hist: dict[int, int] = {}
        for slot in self._slots:
            if first <= slot.epoch <= int(now):
                requests += slot.requests
                errors += slot.errors
                client_errors += slot.client_errors
                fallbacks += slot.fallbacks
                for bucket, count in slot.hist.items():
                    hist[bucket] = hist.get(bucket, 0) + count
        latency: dict[float, float] = {}
        for q in QUANTILES:
            value = quantile_from_histogram(hist, q)
            if value is not None:
                latency[q] = value
        return RequestSummary(requests, errors, client_errors, fallbacks, latency)


@dataclass(frozen=True, slots=True)
class ShadowSummary:
    """One (primary, shadow) pair over a window.

    Attributes:
        mirrored: copies sent (or attempted) to the shadow.
        compared: pairs of answers compared.
        uncomparable: pairs whose outputs could not be matched.
        shadow_errors: copies the shadow failed (connect failure, 5xx or 4xx).
        shadow_timeouts: copies the shadow did not answer in time.
        dropped: copies not sent because too many were in flight.
        skipped: copies the shadow answered that were not compared (over the comparison
            budget per second); the agreement figures come from ``compared`` pairs only.
        class_n: class elements compared; class_agree: of those, equal.
        score_n: score elements compared; score_abs_sum: sum of absolute differences.
    """

    mirrored: int
    compared: int
    uncomparable: int
    shadow_errors: int
    shadow_timeouts: int
    dropped: int
    class_n: int
    class_agree: int
    score_n: int
    score_abs_sum: float
    skipped: int = 0

    @property
    def class_agreement(self) -> float | None:
        """Share of class elements equal in both answers, or None when none were compared."""
        return self.class_agree / self.class_n if self.class_n else None

    @property
    def score_mean_abs_diff(self) -> float | None:
        """Mean absolute difference of score elements, or None when none were compared."""
        return self.score_abs_sum / self.score_n if self.score_n else None


_SHADOW_FIELDS: Final = (
    "mirrored",
    "compared",
    "uncomparable",
    "shadow_errors",
    "shadow_timeouts",
    "dropped",
    "class_n",
    "class_agree",
    "score_n",
    "score_abs_sum",
    "skipped",
)
_MIRRORED, _COMPARED, _UNCOMPARABLE, _ERRORS, _TIMEOUTS, _DROPPED = range(6)
_CLASS_N, _CLASS_AGREE, _SCORE_N, _SCORE_SUM, _SKIPPED = range(6, 11)


class ShadowWindow:
    """A ring of one-second slots of one (primary, shadow) pair's mirroring outcomes."""

    def __init__(self, max_window_s: int) -> None:
        if max_window_s < 1:
            raise ValueError("max_window_s must be at least 1")
        self.max_window_s = max_window_s
        self._epochs = [-1] * max_window_s
        self._values = [[0.0] * len(_SHADOW_FIELDS) for _ in range(max_window_s)]

    def _row(self, now: float) -> list[float]:
        epoch = int(now)
        index = epoch % self.max_window_s
        if self._epochs[index] != epoch:
            self._epochs[index] = epoch
            self._values[index] = [0.0] * len(_SHADOW_FIELDS)
        return self._values[index]

    def mirrored(self, now: float) -> None:
        """Count one copy sent to the shadow."""
        self._row(now)[_MIRRORED] += 1

    def dropped(self, now: float) -> None:
        """Count one copy not sent because the in-flight bound was reached."""
        self._row(now)[_DROPPED] += 1

    def skipped(self, now: float) -> None:
        """Count one shadow answer not compared (over the comparison budget)."""
        self._row(now)[_SKIPPED] += 1

    def failed(self, now: float, *, timeout: bool) -> None:
        """Count one copy the shadow failed or did not answer in time."""
        self._row(now)[_TIMEOUTS if timeout else _ERRORS] += 1

    def record(self, now: float, comparison: Comparison) -> None:
        """Add one comparison of a shadow answer with the primary's."""
        row = self._row(now)
        if not comparison.comparable:
            row[_UNCOMPARABLE] += 1
            return
        row[_COMPARED] += 1
        row[_CLASS_N] += comparison.class_n
        row[_CLASS_AGREE] += comparison.class_agree
        row[_SCORE_N] += comparison.score_n
        row[_SCORE_SUM] += comparison.score_abs_sum

    def summary(self, now: float, window_s: int) -> ShadowSummary:
        """The last ``window_s`` seconds up to ``now`` (clamped to the ring length)."""
        window = max(1, min(window_s, self.max_window_s))
        first = int(now) - window + 1
        totals = [0.0] * len(_SHADOW_FIELDS)
        for epoch, row in zip(self._epochs, self._values, strict=True):
            if first <= epoch <= int(now):
                for i, value in enumerate(row):
                    totals[i] += value
        c = [int(v) for v in totals]
        return ShadowSummary(
            mirrored=c[_MIRRORED],
            compared=c[_COMPARED],
            uncomparable=c[_UNCOMPARABLE],
            shadow_errors=c[_ERRORS],
            shadow_timeouts=c[_TIMEOUTS],
            dropped=c[_DROPPED],
            class_n=c[_CLASS_N],
            class_agree=c[_CLASS_AGREE],
            score_n=c[_SCORE_N],
            score_abs_sum=totals[_SCORE_SUM],
            skipped=c[_SKIPPED],
        )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def request_summary_json(summary: RequestSummary) -> dict[str, object]:
    """One variant's window as the stats document writes it (latencies in milliseconds)."""
    return {
        "requests": summary.requests,
        "errors": summary.errors,
        "client_errors": summary.client_errors,
        "error_rate": _rate(summary.error_rate),
        "fallbacks": summary.fallbacks,
        "latency_ms": {f"p{round(q * 100)}": _ms(summary.latency_s.get(q)) for q in QUANTILES},
    }


def shadow_summary_json(summary: ShadowSummary) -> dict[str, object]:
    """One (primary, shadow) pair's window as the stats document writes it."""
    return {
        "mirrored": summary.mirrored,
        "compared": summary.compared,
        "uncomparable": summary.uncomparable,
        "shadow_errors": summary.shadow_errors,
        "shadow_timeouts": summary.shadow_timeouts,
        "dropped": summary.dropped,
        "skipped": summary.skipped,
        "class_n": summary.class_n,
        "class_agreement": _rate(summary.class_agreement),
        "score_n": summary.score_n,
        "score_mean_abs_diff": _rate(summary.score_mean_abs_diff),
    }
