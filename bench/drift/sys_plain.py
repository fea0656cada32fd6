"""A plain numpy + scipy loop with the reference precomputed (deciles, sorted columns, counts).

Per window: decile PSI, exact KS D via searchsorted with the asymptotic p-value, chi2_contingency
per categorical; flag = p < 0.05 / 55 (Bonferroni). Runs in Driftline's virtualenv (numpy, scipy).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import scipy
from scipy import special
from scipy.stats import chi2_contingency

sys.path.insert(0, str(Path(__file__).parent))
from common import emit, load, pin_one_core, timed, window_timing


def main() -> None:
    pin_one_core()
    ref, cur, truth = load(Path(sys.argv[1]))
    cats = set(truth["categorical"])
    nums = [k for k in ref if k not in cats]

    def fit() -> dict[str, object]:
        state: dict[str, object] = {}
        for k in nums:
            s = np.sort(ref[k])
            edges = np.quantile(s, np.linspace(0.1, 0.9, 9))
            r = np.bincount(np.searchsorted(edges, s), minlength=10) / len(s)
            state[k] = (s, edges, r)
        for k in cats:
            levels, counts = np.unique(ref[k], return_counts=True)
            state[k] = (levels, counts)
        return state

    state, fit_w, fit_c = timed(fit, 1)
    d = len(nums) + len(cats)

    def window() -> list[str]:
        flagged = []
        for k in nums:
            s, edges, r = state[k]  # type: ignore[misc]
            c = np.sort(cur[k])
            n, m = len(s), len(c)
            both = np.concatenate([s, c])
            dd = np.abs(
                np.searchsorted(s, both, "right") / n - np.searchsorted(c, both, "right") / m
            ).max()
            p = special.kolmogorov(np.sqrt(n * m / (n + m)) * dd)
            cb = np.bincount(np.searchsorted(edges, c), minlength=10) / m
            _psi = np.sum(
                (np.maximum(cb, 1e-4) - np.maximum(r, 1e-4))
                * np.log(np.maximum(cb, 1e-4) / np.maximum(r, 1e-4))
            )
            if p < 0.05 / d:
                flagged.append(k)
        for k in cats:
            levels, counts = state[k]  # type: ignore[misc]
            cl, cc = np.unique(cur[k], return_counts=True)
            allv = np.union1d(levels, cl)
            table = np.zeros((2, len(allv)))
            table[0, np.searchsorted(allv, levels)] = counts
            table[1, np.searchsorted(allv, cl)] = cc
            if chi2_contingency(table, correction=False).pvalue < 0.05 / d:
                flagged.append(k)
        return flagged

    flagged, timing = window_timing(window)
    emit(system="numpy+scipy loop", version=f"numpy {np.__version__}, scipy {scipy.__version__}",
         config="KS/chi2 p < 0.05/55 (Bonferroni), reference precomputed",
         fit_s=fit_w, fit_cpu_s=fit_c, **timing, flagged=sorted(flagged),
         notes="p-value rule only: no effect-size gate")  # fmt: skip


if __name__ == "__main__":
    main()
