"""Drift statistics checked against scipy and hand-computed cases.

Covers: PSI (hand-computed, epsilon floor), Jensen-Shannon (scipy), KS statistic (exact vs
ks_2samp), its stated bound on a compressed grid (ks_resolution vs ks_2samp over several
shapes and grid sizes), p-value (kolmogorov formula, ks_2samp asymp), Wasserstein (exact vs scipy on
discrete data, close on continuous data), chi-square homogeneity (chi2_contingency), identical
samples give zero.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from driftline.serving.drift import stats
from driftline.serving.drift.profile import (
    Histograms,
    Profile,
    build_profile,
    encode_table,
    histograms,
)


def _counts(profile: Profile, table: dict[str, np.ndarray]) -> Histograms:
    (hist,) = histograms(profile.layout, *encode_table(profile.layout, table))
    return hist


def test_psi_matches_a_hand_computed_case() -> None:
    ref = np.array([[50, 30, 20]])
    cur = np.array([[40, 40, 20]])
    expected = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.4 - 0.3) * math.log(0.4 / 0.3)
    assert stats.psi(ref, cur)[0] == pytest.approx(expected, rel=1e-12)


def test_psi_floors_empty_bins_at_epsilon() -> None:
    ref = np.array([[100, 0]])
    cur = np.array([[90, 10]])
    expected = (0.9 - 1.0) * math.log(0.9 / 1.0) + (0.1 - 1e-4) * math.log(0.1 / 1e-4)
    assert stats.psi(ref, cur)[0] == pytest.approx(expected, rel=1e-12)
    assert math.isfinite(stats.psi(ref, cur)[0])


def test_identical_counts_score_zero_everywhere() -> None:
    counts = np.array([[5, 7, 0, 9], [1, 1, 1, 1]])
    assert np.allclose(stats.psi(counts, counts), 0.0)
    assert np.allclose(stats.jensen_shannon(counts, counts), 0.0)
    assert np.allclose(stats.ks_statistic(counts, counts), 0.0)
    chi = stats.chi_square(counts * 10, counts * 10)
    assert np.allclose(chi.statistic, 0.0)
    assert np.allclose(chi.p_value, 1.0)


def test_jensen_shannon_matches_scipy_base_2() -> None:
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 50, size=(6, 12))
    cur = rng.integers(0, 50, size=(6, 12))
    ref[0, 3] = 0  # a bin empty on one side
    ours = stats.jensen_shannon(ref, cur)
    theirs = [jensenshannon(r, c, base=2) for r, c in zip(ref, cur, strict=True)]
    assert np.allclose(ours, theirs, atol=1e-12)


def test_chi_square_matches_chi2_contingency_without_rare_columns() -> None:
    rng = np.random.default_rng(2)
    ref = rng.integers(20, 400, size=(5, 8))
    cur = rng.integers(20, 400, size=(5, 8))
    chi = stats.chi_square(ref, cur)
    for i in range(5):
        res = sps.chi2_contingency(np.vstack([ref[i], cur[i]]), correction=False)
        assert chi.statistic[i] == pytest.approx(res.statistic, rel=1e-10)
        assert chi.p_value[i] == pytest.approx(res.pvalue, rel=1e-8, abs=1e-300)
        assert chi.dof[i] == res.dof


def test_chi_square_drops_empty_columns_and_pools_rare_ones() -> None:
    ref = np.array([[500, 300, 0, 2, 1]])
    cur = np.array([[100, 60, 0, 1, 2]])
    chi = stats.chi_square(ref, cur)
    pooled = np.array([[500, 300, 3], [100, 60, 3]])
    res = sps.chi2_contingency(pooled, correction=False)
    assert chi.statistic[0] == pytest.approx(res.statistic, rel=1e-10)
    assert chi.dof[0] == 2


def test_ks_equals_ks_2samp_on_continuous_data() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(0.0, 1.0, 3000)
    cur = rng.normal(0.2, 1.3, 1200)
    profile = build_profile({"x": ref}, "sha", grid_points=10_000)
    hist = _counts(profile, {"x": cur})
    st = stats.compare(profile.layout, profile.reference, hist)
    res = sps.ks_2samp(ref, cur, method="asymp")
    assert st.ks[0] == pytest.approx(res.statistic, abs=1e-12)
    assert abs(math.log10(st.ks_p[0]) - math.log10(res.pvalue)) < 0.1
    en = 3000 * 1200 / 4200
    assert st.ks_p[0] == pytest.approx(special.kolmogorov(math.sqrt(en) * res.statistic))


def test_ks_equals_ks_2samp_on_tied_integer_data() -> None:
    rng = np.random.default_rng(4)
    ref = rng.poisson(4.0, 5000).astype(float)
    cur = rng.poisson(4.6, 2000).astype(float)
    profile = build_profile({"x": ref}, "sha")
    st = stats.compare(profile.layout, profile.reference, _counts(profile, {"x": cur}))
    assert st.ks[0] == pytest.approx(sps.ks_2samp(ref, cur).statistic, abs=1e-12)


def test_ks_on_a_compressed_grid_is_within_one_grid_step() -> None:
    rng = np.random.default_rng(5)
    ref = rng.normal(0.0, 1.0, 50_000)
    cur = rng.normal(0.1, 1.0, 10_000)
    profile = build_profile({"x": ref}, "sha", grid_points=512)
    st = stats.compare(profile.layout, profile.reference, _counts(profile, {"x": cur}))
    assert abs(st.ks[0] - sps.ks_2samp(ref, cur).statistic) <= 1.0 / 500


@pytest.mark.parametrize("grid_points", [16, 64, 512])
@pytest.mark.parametrize(
    "shape", ["normal-shift", "lognormal-scale", "t-tails", "mixed-ties", "outside-range"]
)
def test_ks_on_a_compressed_grid_is_within_the_stated_resolution(
    shape: str, grid_points: int
) -> None:
    rng = np.random.default_rng([len(shape), ord(shape[0]), grid_points])
    n, m = 20_000, 5_000
    if shape == "normal-shift":
        ref, cur = rng.normal(0, 1, n), rng.normal(0.05, 1, m)
    elif shape == "lognormal-scale":
        ref, cur = rng.lognormal(0, 0.6, n), rng.lognormal(0, 0.75, m)
    elif shape == "t-tails":
        ref, cur = rng.standard_t(2, n), rng.standard_t(1.2, m)
    elif shape == "mixed-ties":  # half the mass on a few values, half continuous
        ref = np.where(rng.random(n) < 0.5, rng.integers(0, 4, n), rng.normal(2, 1, n))
        cur = np.where(rng.random(m) < 0.4, rng.integers(0, 4, m), rng.normal(2.2, 1, m))
    else:  # current values far outside the reference's range
        ref, cur = rng.normal(0, 1, n), np.concatenate([rng.normal(0, 1, m - 50), np.full(50, 9.0)])
    profile = build_profile({"x": ref}, "sha", grid_points=grid_points)
    st = stats.compare(profile.layout, profile.reference, _counts(profile, {"x": cur}))
    bound = stats.ks_resolution(profile.reference.numeric)[0]
    exact = sps.ks_2samp(ref, cur).statistic
    assert exact - bound - 1e-12 <= st.ks[0] <= exact + 1e-12
    assert 0 < bound <= math.ceil((n - 1) / (grid_points - 1)) / n  # ~1 / grid_points


def test_ks_resolution_is_zero_when_the_grid_holds_every_reference_value() -> None:
    rng = np.random.default_rng(8)
    profile = build_profile({"x": rng.normal(size=300), "k": rng.poisson(3, 300) * 1.0}, "sha")
    assert stats.ks_resolution(profile.reference.numeric).tolist() == [0.0, 0.0]


def test_wasserstein_is_exact_on_discrete_data_including_outer_cells() -> None:
    rng = np.random.default_rng(6)
    ref = rng.integers(0, 11, 4000).astype(float)
    cur = rng.integers(-3, 16, 1500).astype(float)  # values below and above the reference
    profile = build_profile({"x": ref}, "sha")
    st = stats.compare(profile.layout, profile.reference, _counts(profile, {"x": cur}))
    expected = sps.wasserstein_distance(ref, cur) / ref.std()
    assert st.wasserstein[0] == pytest.approx(expected, rel=1e-10)


def test_wasserstein_is_close_on_continuous_data() -> None:
    rng = np.random.default_rng(7)
    ref = rng.lognormal(0.0, 0.7, 20_000)
    cur = rng.lognormal(0.2, 0.7, 5_000)
    profile = build_profile({"x": ref}, "sha", grid_points=512)
    st = stats.compare(profile.layout, profile.reference, _counts(profile, {"x": cur}))
    expected = sps.wasserstein_distance(ref, cur) / ref.std()
    assert st.wasserstein[0] == pytest.approx(expected, rel=0.002)


def test_identical_samples_give_zero_statistics() -> None:
    rng = np.random.default_rng(8)
    table = {"x": rng.normal(size=2000), "c": rng.choice(np.array(["a", "b", "c"], object), 2000)}
    profile = build_profile(table, "sha")
    st = stats.compare(profile.layout, profile.reference, _counts(profile, table))
    assert st.ks[0] == 0.0
    assert st.wasserstein[0] == pytest.approx(0.0, abs=1e-12)
    assert st.numeric_psi[0] == pytest.approx(0.0, abs=1e-12)
    assert st.categorical_js[0] == pytest.approx(0.0, abs=1e-12)
    assert st.chi2_p[0] == pytest.approx(1.0)
    assert st.ks_p[0] == pytest.approx(1.0)


def test_shifted_mean_scores_above_the_thresholds() -> None:
    rng = np.random.default_rng(9)
    ref = rng.normal(0.0, 1.0, 20_000)
    cur = rng.normal(0.5, 1.0, 5_000)
    profile = build_profile({"x": ref}, "sha")
    st = stats.compare(profile.layout, profile.reference, _counts(profile, {"x": cur}))
    assert st.wasserstein[0] == pytest.approx(0.5, abs=0.05)
    assert st.mean_shift[0] == pytest.approx(0.5, abs=0.05)
    assert st.numeric_psi[0] > 0.2
    assert st.ks_p[0] < 1e-10


def test_psi_bins_are_reference_deciles() -> None:
    rng = np.random.default_rng(10)
    ref = rng.normal(size=10_000)
    profile = build_profile({"x": ref}, "sha", bins=10)
    bins = stats.psi_bins(profile.layout, profile.reference.numeric)
    assert bins.shape == (1, 10)
    assert np.all(np.abs(bins[0] - 1000) <= 1)


def test_a_new_category_is_seen_by_chi_square_and_js() -> None:
    cats = np.array(["a", "b", "c"], dtype=object)
    rng = np.random.default_rng(11)
    ref = {"c": rng.choice(cats, 5000)}
    cur_values = rng.choice(cats, 2000)
    cur_values[:300] = "new"
    profile = build_profile(ref, "sha")
    st = stats.compare(profile.layout, profile.reference, _counts(profile, {"c": cur_values}))
    assert st.unseen_share[0] == pytest.approx(0.15)
    assert st.chi2_p[0] < 1e-20
    assert st.categorical_js[0] > 0.2
