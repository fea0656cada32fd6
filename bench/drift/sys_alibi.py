"""Alibi Detect TabularDrift (KS numeric + chi-square categorical), bench/.venvs/alibi.

Inputs are ordinal-encoded numpy arrays built outside the timer. fit = the constructor; per
window = ``predict(x, drift_type="feature")``: Alibi's per-feature flag is p < 0.05 uncorrected
(its batch mode applies Bonferroni to the any-feature decision only); the Bonferroni-level
per-feature flags (p < 0.05/55) are reported alongside from the same p-values.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).parent))
import numpy as np
from alibi_detect.cd import TabularDrift
from alibi_detect.version import __version__ as alibi_version
from common import emit, load, pin_one_core, timed, window_timing


def main() -> None:
    pin_one_core()
    ref, cur, truth = load(Path(sys.argv[1]))
    cats = set(truth["categorical"])
    cols = list(ref)
    x_ref = np.empty((len(ref[cols[0]]), len(cols)), dtype=np.float32)
    x_cur = np.empty((len(cur[cols[0]]), len(cols)), dtype=np.float32)
    for j, c in enumerate(cols):
        if c in cats:
            levels = np.union1d(ref[c], cur[c])
            x_ref[:, j] = np.searchsorted(levels, ref[c])
            x_cur[:, j] = np.searchsorted(levels, cur[c])
        else:
            x_ref[:, j] = ref[c]
            x_cur[:, j] = cur[c]
    cat_idx = {j: None for j, c in enumerate(cols) if c in cats}

    detector, fit_w, fit_c = timed(
        lambda: TabularDrift(x_ref, p_val=0.05, categories_per_feature=cat_idx), 1
    )
    preds, timing = window_timing(
        lambda: detector.predict(x_cur, drift_type="feature", return_p_val=True)
    )
    p = np.asarray(preds["data"]["p_val"])
    flagged = [cols[j] for j in np.flatnonzero(np.asarray(preds["data"]["is_drift"]))]
    bonferroni = [cols[j] for j in np.flatnonzero(p < 0.05 / len(cols))]
    emit(system="Alibi Detect TabularDrift", version=f"alibi-detect {alibi_version}",
         config="KS + chi2, per-feature p < 0.05 (uncorrected)",
         fit_s=fit_w, fit_cpu_s=fit_c, **timing, flagged=sorted(flagged),
         flagged_bonferroni=sorted(bonferroni),
         notes="categoricals ordinal-encoded outside the timer")  # fmt: skip


if __name__ == "__main__":
    main()
