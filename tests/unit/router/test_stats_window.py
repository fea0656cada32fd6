"""Stats windows: counts and latency quantiles over the last seconds, with a fake clock."""

from __future__ import annotations

import pytest

from driftline.serving.router.compare import Comparison
from driftline.serving.router.stats import (
    ShadowWindow,
    VariantWindow,
    quantile_from_histogram,
)


def test_counts_and_quantiles_over_a_window() -> None:
    window = VariantWindow(60)
    for i in range(100):
        window.record(1000.0 + i * 0.01, (i + 1) / 1000.0, error=i < 3, client_error=i == 50)
    summary = window.summary(1001.0, 60)
    assert (summary.requests, summary.errors, summary.client_errors) == (100, 3, 1)
    assert summary.error_rate == pytest.approx(0.03)
    assert summary.latency_s[0.5] == pytest.approx(0.050, rel=0.06)
    assert summary.latency_s[0.99] == pytest.approx(0.099, rel=0.06)


def test_old_slots_age_out() -> None:
    window = VariantWindow(10)
    window.record(100.0, 0.001, error=True, client_error=False)
    window.record(105.0, 0.001, error=False, client_error=False)
    assert window.summary(105.5, 10).requests == 2
    assert window.summary(105.5, 3).requests == 1
    assert window.summary(120.0, 10).requests == 0
    assert window.summary(120.0, 10).error_rate is None
    assert window.summary(120.0, 10).latency_s == {}


def test_a_reused_slot_starts_from_zero() -> None:
    window = VariantWindow(5)
    window.record(10.0, 0.001, error=True, client_error=False)
    window.record(15.0, 0.001, error=False, client_error=False)  # same slot, 5 s later
    summary = window.summary(15.0, 5)
    assert (summary.requests, summary.errors) == (1, 0)


def test_fallbacks_are_counted() -> None:
    window = VariantWindow(5)
    window.record_fallback(3.0)
    window.record_fallback(3.5)
    assert window.summary(4.0, 5).fallbacks == 2


def test_quantile_of_an_empty_histogram_is_none() -> None:
    assert quantile_from_histogram({}, 0.5) is None


def test_shadow_window_agreement_and_mad() -> None:
    window = ShadowWindow(30)
    window.mirrored(1.0)
    window.mirrored(1.0)
    window.mirrored(1.0)
    window.dropped(1.0)
    window.record(1.2, Comparison(True, class_n=4, class_agree=3, score_n=8, score_abs_sum=0.8))
    window.record(1.3, Comparison(False))
    window.failed(1.4, timeout=True)
    window.skipped(1.5)
    summary = window.summary(2.0, 30)
    assert (summary.mirrored, summary.dropped, summary.compared) == (3, 1, 1)
    assert summary.skipped == 1
    assert (summary.uncomparable, summary.shadow_timeouts, summary.shadow_errors) == (1, 1, 0)
    assert summary.class_agreement == pytest.approx(0.75)
    assert summary.score_mean_abs_diff == pytest.approx(0.1)
    empty = window.summary(100.0, 30)
    assert empty.class_agreement is None and empty.score_mean_abs_diff is None
