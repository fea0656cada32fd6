"""Drift statistics over histograms, vectorised across features (one row per feature).

Who calls it: :func:`compare` is called by ``driftline.serving.monitor`` and ``driftline drift``
with a reference and a current :class:`~driftline.serving.drift.profile.Histograms`; the
elementwise functions are public so tests can check each against scipy.

Shapes: every function takes 2-D ``(F, K)`` count arrays (F features, K bins or cells; padding
with zero columns is harmless) and returns ``(F,)`` arrays. No Python loop runs per row or per
feature here.

Definitions (r, c = reference and current proportions):

- PSI = sum (c - r) ln(c / r), with both proportions floored at ``eps`` (1e-4) first so that an
  empty bin costs a bounded amount instead of infinity.
- Jensen-Shannon distance, base 2 (range [0, 1]): sqrt(KL(r||M)/2 + KL(c||M)/2), M = (r + c)/2.
- KS: D = max |F_R - F_C| over cell boundaries (the reference's grid is its quantile sketch,
  the current side is counted over the same cells, never sorted against the reference). Bound:
  ``D_exact - r_max <= D <= D_exact``, where ``r_max`` is the largest reference proportion
  inside one open cell (:func:`ks_resolution`): both ECDFs are monotone, so inside a cell
  their difference moves by at most the reference mass there. ``r_max = 0`` (exact) when the
  grid holds every reference value; about ``1 / grid_points`` on a compressed grid (0.002 at
  512 points, against a 5% critical D of ~0.015 at 50k/10k rows). p-value: the asymptotic
  Kolmogorov distribution at sqrt(nm/(n+m)) * D.
- Wasserstein-1 = integral |F_R - F_C| dx, divided by the reference standard deviation; from
  cell counts and sums, exact wherever the two CDFs do not cross inside a cell.
- Chi-square homogeneity on the 2 x K contingency table (never goodness of fit against sparse
  expected counts): columns empty on both sides are dropped, columns whose expected count is
  below ``min_expected`` are pooled into one, dof = columns - 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import special

from driftline.serving.drift.profile import Histograms, Layout

Float = npt.NDArray[np.float64]
Counts = npt.NDArray[np.int64] | npt.NDArray[np.float64]

PSI_EPSILON: Final = 1e-4
"""Floor of a bin proportion before the log in PSI: the common convention (Evidently uses it)."""
MIN_EXPECTED: Final = 5.0
"""Cochran's rule: chi-square is trusted for expected counts >= 5; rarer columns are pooled."""


def proportions(counts: Counts) -> Float:
    """Row-normalised proportions; a row of zeros stays zeros."""
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum(axis=1, keepdims=True)
    result: Float = np.divide(c, total, out=np.zeros_like(c), where=total > 0)
    return result


def psi(reference: Counts, current: Counts, eps: float = PSI_EPSILON) -> Float:
    """Population stability index per row of bin counts."""
    r = np.maximum(proportions(reference), eps)
    c = np.maximum(proportions(current), eps)
    result: Float = ((c - r) * np.log(c / r)).sum(axis=1)
    return result


def _xlogy_ratio(p: Float, q: Float) -> Float:
    """Elementwise p ln(p / q), with 0 ln 0 = 0 (q > 0 wherever p > 0)."""
    out = np.zeros_like(p)
    np.multiply(p, np.log(np.divide(p, q, out=np.ones_like(p), where=p > 0)), out=out)
    return out


def jensen_shannon(reference: Counts, current: Counts) -> Float:
    """Jensen-Shannon distance (base 2, in [0, 1]) per row of bin counts."""
    r = proportions(reference)
    c = proportions(current)
    mid = 0.5 * (r + c)
    div = 0.5 * (_xlogy_ratio(r, mid).sum(axis=1) + _xlogy_ratio(c, mid).sum(axis=1))
    result: Float = np.sqrt(np.maximum(div, 0.0) / np.log(2.0))
    return result


def ks_statistic(reference: Counts, current: Counts) -> Float:
    """Two-sample KS D per row of cell counts (cells in increasing value order)."""
    fr = np.cumsum(proportions(reference), axis=1)
    fc = np.cumsum(proportions(current), axis=1)
    result: Float = np.abs(fr - fc).max(axis=1)
    return result


def ks_resolution(reference: Counts) -> Float:
    """Per row, the most KS D can fall short of the exact two-sample statistic.

    The largest reference proportion in one open cell (even columns of the cell counts): 0
    when every reference value is a grid point. See the module docstring for the argument.
    """
    result: Float = proportions(reference)[:, ::2].max(axis=1, initial=0.0)
    return result


def ks_pvalue(d: Float, n: npt.NDArray[np.int64], m: npt.NDArray[np.int64]) -> Float:
    """Asymptotic two-sided KS p-value (Smirnov) for sample sizes ``n`` and ``m``."""
    n_f = n.astype(np.float64)
    m_f = m.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        en = np.where((n_f > 0) & (m_f > 0), n_f * m_f / (n_f + m_f), 0.0)
    p: Float = np.where(en > 0, special.kolmogorov(np.sqrt(en) * d), 1.0)
    return np.clip(p, 0.0, 1.0)


def wasserstein(grid: Float, reference: Counts, current: Counts, ref_sums: Float,
                cur_sums: Float) -> Float:  # fmt: skip
    """Wasserstein-1 distance per numeric feature from cell counts and sums (not normalised).

    Inside each open cell, each side's mass is placed at its mean (sum / count): the integral
    of ``|F_R - F_C|`` is then exact whenever the two CDFs do not cross inside that cell, which
    leaves at most a few cells approximate.

    Args:
        grid: ``(F, k)`` support points, padded by repeating the last one.
        reference: ``(F, 2k + 1)`` reference cell counts.
        current: ``(F, 2k + 1)`` current cell counts.
        ref_sums: ``(F, 2k + 1)`` sums of the reference values per cell.
        cur_sums: the same for the current values.
    """
    fr = np.cumsum(proportions(reference), axis=1)
    fc = np.cumsum(proportions(current), axis=1)
    return _wasserstein(grid, reference, current, ref_sums, cur_sums, fr, fc)


def _wasserstein(grid: Float, reference: Counts, current: Counts, ref_sums: Float,
                 cur_sums: Float, fr: Float, fc: Float) -> Float:  # fmt: skip
    """:func:`wasserstein` given both sides' cumulative proportions ``fr`` and ``fc``."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    zero = np.zeros((len(ref), 1))
    before_r = np.concatenate([zero, fr[:, 1::2]], axis=1)  # F just before each open cell
    before_c = np.concatenate([zero, fc[:, 1::2]], axis=1)
    a_r = fr[:, ::2] - before_r  # mass of each open cell
    a_c = fc[:, ::2] - before_c
    has_r, has_c = ref[:, ::2] > 0, cur[:, ::2] > 0
    raw_r = np.divide(ref_sums[:, ::2], ref[:, ::2], out=np.zeros_like(a_r), where=has_r)
    raw_c = np.divide(cur_sums[:, ::2], cur[:, ::2], out=np.zeros_like(a_c), where=has_c)
    # Cell bounds; the outer cells are unbounded, but there F_R - F_C is 0 on the far side, so
    # clamping them to the first/last grid point (with lengths floored at 0) is exact.
    lo = np.concatenate([grid[:, :1], grid], axis=1)
    hi = np.concatenate([grid, grid[:, -1:]], axis=1)
    # A side without mass has no step: put it at the other side's position (or at lo).
    mu_r = np.where(has_r, raw_r, np.where(has_c, raw_c, lo))
    mu_c = np.where(has_c, raw_c, mu_r)
    p = np.minimum(mu_r, mu_c)
    q = np.maximum(mu_r, mu_c)
    d0 = before_r - before_c
    d1 = d0 + a_r - a_c
    mid = np.where(mu_r <= mu_c, d0 + a_r, d0 - a_c)
    total = (
        np.maximum(p - lo, 0.0) * np.abs(d0)
        + (q - p) * np.abs(mid)
        + np.maximum(hi - q, 0.0) * np.abs(d1)
    )
    result: Float = total.sum(axis=1)
    return result


@dataclass(frozen=True)
class ChiSquare:
    """Chi-square homogeneity test per row.

    Attributes:
        statistic: ``(F,)`` chi-square statistic.
        p_value: ``(F,)`` upper tail probability (1 where dof is 0).
        dof: ``(F,)`` degrees of freedom.
    """

    statistic: Float
    p_value: Float
    dof: npt.NDArray[np.int64]


def chi_square(reference: Counts, current: Counts, min_expected: float = MIN_EXPECTED) -> ChiSquare:
    """Chi-square homogeneity test on the 2 x K table of each row, pooling rare columns.

    Equals ``scipy.stats.chi2_contingency(table, correction=False)`` when no column is rare.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    n = ref.sum(axis=1, keepdims=True)
    m = cur.sum(axis=1, keepdims=True)
    total = n + m
    col = ref + cur
    safe_total = np.maximum(total, 1.0)
    rare = (col > 0) & (np.minimum(col * n, col * m) / safe_total < min_expected)
    keep = (col > 0) & ~rare
    pooled_ref = np.where(rare, ref, 0.0).sum(axis=1, keepdims=True)
    pooled_cur = np.where(rare, cur, 0.0).sum(axis=1, keepdims=True)
    ref_t = np.concatenate([np.where(keep, ref, 0.0), pooled_ref], axis=1)
    cur_t = np.concatenate([np.where(keep, cur, 0.0), pooled_cur], axis=1)
    col_t = ref_t + cur_t
    e_ref = col_t * n / safe_total
    e_cur = col_t * m / safe_total
    stat = (
        np.divide((ref_t - e_ref) ** 2, e_ref, out=np.zeros_like(e_ref), where=e_ref > 0)
        + np.divide((cur_t - e_cur) ** 2, e_cur, out=np.zeros_like(e_cur), where=e_cur > 0)
    ).sum(axis=1)
    dof = np.maximum((col_t > 0).sum(axis=1) - 1, 0)
    both = (n[:, 0] > 0) & (m[:, 0] > 0) & (dof > 0)
    p = np.where(both, special.chdtrc(np.maximum(dof, 1), stat), 1.0)
    return ChiSquare(
        statistic=np.where(both, stat, 0.0), p_value=p, dof=np.where(both, dof, 0).astype(np.int64)
    )


def psi_bins(layout: Layout, counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``(F_num, B)`` counts per PSI bin, summed from ``(F_num, cells)`` cell counts."""
    return _bins_from_cumulative(layout, np.cumsum(counts, axis=1))


def _bins_from_cumulative(layout: Layout, cum: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    at = np.take_along_axis(cum, layout.bin_bounds, axis=1)
    result: npt.NDArray[np.int64] = np.diff(at, axis=1, prepend=0)
    return result


@dataclass(frozen=True)
class Statistics:
    """Every statistic of every feature, for one reference/current pair.

    Numeric arrays are ``(F_num,)``, categorical ones ``(F_cat,)``, in layout order.

    Attributes:
        numeric_n_ref: finite reference values per numeric feature.
        numeric_n_cur: finite current values.
        numeric_psi: PSI over the reference-quantile bins.
        numeric_js: Jensen-Shannon distance over the same bins.
        ks: KS D.
        ks_p: KS p-value.
        wasserstein: Wasserstein-1 divided by the reference standard deviation.
        mean_shift: (current mean - reference mean) / reference standard deviation.
        categorical_n_ref: non-missing reference values per categorical feature.
        categorical_n_cur: non-missing current values.
        categorical_psi: PSI over categories (+ unseen).
        categorical_js: Jensen-Shannon distance over categories (+ unseen).
        chi2: chi-square statistic.
        chi2_p: chi-square p-value.
        chi2_dof: chi-square degrees of freedom.
        unseen_share: share of current values in the unseen bucket.
    """

    numeric_n_ref: npt.NDArray[np.int64]
    numeric_n_cur: npt.NDArray[np.int64]
    numeric_psi: Float
    numeric_js: Float
    ks: Float
    ks_p: Float
    wasserstein: Float
    mean_shift: Float
    categorical_n_ref: npt.NDArray[np.int64]
    categorical_n_cur: npt.NDArray[np.int64]
    categorical_psi: Float
    categorical_js: Float
    chi2: Float
    chi2_p: Float
    chi2_dof: npt.NDArray[np.int64]
    unseen_share: Float


def _scale(std: Float) -> Float:
    # A constant reference feature has std 0: its raw distance is reported instead (scale 1).
    return np.where(std > 0, std, 1.0)


def compare(
    layout: Layout, reference: Histograms, current: Histograms, min_expected: float = MIN_EXPECTED
) -> Statistics:
    """Compute every statistic of every feature of ``current`` against ``reference``."""
    ref_cum = np.cumsum(reference.numeric, axis=1)  # shared by PSI bins, KS and W1
    cur_cum = np.cumsum(current.numeric, axis=1)
    n_ref = ref_cum[:, -1]
    n_cur = cur_cum[:, -1]
    ref_bins = _bins_from_cumulative(layout, ref_cum)
    cur_bins = _bins_from_cumulative(layout, cur_cum)
    fr = ref_cum / np.maximum(n_ref, 1)[:, None]
    fc = cur_cum / np.maximum(n_cur, 1)[:, None]
    d: Float = np.abs(fr - fc).max(axis=1)
    scale = _scale(reference.std)
    w1 = _wasserstein(layout.grid, reference.numeric, current.numeric, reference.sums,
                      current.sums, fr, fc)  # fmt: skip
    with np.errstate(invalid="ignore"):
        shift = (current.mean - reference.mean) / scale
    c_ref = reference.categorical_n
    c_cur = current.categorical_n
    chi = chi_square(reference.categorical, current.categorical, min_expected)
    unseen = np.divide(
        current.categorical[:, -1].astype(np.float64),
        c_cur,
        out=np.zeros(len(c_cur)),
        where=c_cur > 0,
    )
    return Statistics(
        numeric_n_ref=n_ref,
        numeric_n_cur=n_cur,
        numeric_psi=psi(ref_bins, cur_bins),
        numeric_js=jensen_shannon(ref_bins, cur_bins),
        ks=d,
        ks_p=ks_pvalue(d, n_ref, n_cur),
        wasserstein=w1 / scale,
        mean_shift=shift,
        categorical_n_ref=c_ref,
        categorical_n_cur=c_cur,
        categorical_psi=psi(reference.categorical, current.categorical),
        categorical_js=jensen_shannon(reference.categorical, current.categorical),
        chi2=chi.statistic,
        chi2_p=chi.p_value,
        chi2_dof=chi.dof,
        unseen_share=unseen,
    )
