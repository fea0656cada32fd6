"""NannyML UnivariateDriftCalculator (default methods: Jensen-Shannon), bench/.venvs/nannyml.

fit = ``calculator.fit(reference)`` with ``chunk_size=10000`` (the window = one chunk; the
reference gives 5 chunks for the default mean + 3 sd alert threshold); per window =
``calculate(current)``. A column is flagged when its chunk raises an alert.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
sys.path.insert(0, str(Path(__file__).parent))
import nannyml as nml
import pandas as pd
from common import emit, load, pin_one_core, timed, window_timing


def main() -> None:
    pin_one_core()
    ref, cur, truth = load(Path(sys.argv[1]))
    cats = truth["categorical"]
    cols = list(ref)
    ref_df = pd.DataFrame(ref)
    cur_df = pd.DataFrame(cur)
    for c in cats:
        ref_df[c] = ref_df[c].astype("category")
        cur_df[c] = cur_df[c].astype("category")

    def fit() -> nml.UnivariateDriftCalculator:
        calc = nml.UnivariateDriftCalculator(
            column_names=cols, treat_as_categorical=cats, chunk_size=10_000,
            continuous_methods=["jensen_shannon"], categorical_methods=["jensen_shannon"],
        )  # fmt: skip
        return calc.fit(ref_df)

    calc, fit_w, fit_c = timed(fit, 1)

    def window() -> list[str]:
        df = calc.calculate(cur_df).filter(period="analysis").to_df()
        flagged = []
        for col in cols:
            alerts = df[(col, "jensen_shannon", "alert")]
            if bool(alerts.any()):
                flagged.append(col)
        return flagged

    flagged, timing = window_timing(window)
    emit(system="NannyML univariate", version=f"nannyml {nml.__version__}",
         config="defaults: Jensen-Shannon, alert above reference-chunk mean + 3 sd; chunk 10k",
         fit_s=fit_w, fit_cpu_s=fit_c, **timing, flagged=sorted(flagged),
         notes="reference split into 5 chunks of 10k for the learned threshold")  # fmt: skip


if __name__ == "__main__":
    main()
