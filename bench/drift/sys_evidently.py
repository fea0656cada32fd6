"""Evidently DataDriftPreset (defaults), run in bench/.venvs/evidently.

fit = building the reference Dataset (Evidently has no reusable reference state); per window =
``Report([DataDriftPreset()]).run(current, reference)``. A column is flagged when its
ValueDrift score crosses the method's threshold (distance >= threshold; p-value < threshold).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("EVIDENTLY_DISABLE_TELEMETRY", "1")
sys.path.insert(0, str(Path(__file__).parent))
import evidently
import pandas as pd
from common import emit, load, pin_one_core, timed, window_timing
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset


def main() -> None:
    pin_one_core()
    ref, cur, truth = load(Path(sys.argv[1]))
    cats = truth["categorical"]
    nums = [k for k in ref if k not in cats]
    ref_df = pd.DataFrame(ref)
    cur_df = pd.DataFrame(cur)
    definition = DataDefinition(numerical_columns=nums, categorical_columns=cats)

    def fit() -> Dataset:
        return Dataset.from_pandas(ref_df, data_definition=definition)

    ref_ds, fit_w, fit_c = timed(fit, 1)

    def window() -> list[str]:
        cur_ds = Dataset.from_pandas(cur_df, data_definition=definition)
        snapshot = Report([DataDriftPreset()]).run(cur_ds, ref_ds)
        flagged = []
        for metric in snapshot.dict()["metrics"]:
            config = metric["config"]
            if not config["type"].endswith("ValueDrift"):
                continue
            method, threshold, value = config["method"], config["threshold"], metric["value"]
            is_p = "p_value" in method.lower()
            if (value < threshold) if is_p else (value >= threshold):
                flagged.append(config["column"])
        return flagged

    flagged, timing = window_timing(window)
    emit(system="Evidently DataDriftPreset", version=f"evidently {evidently.__version__}",
         config="defaults: W1/sd >= 0.1 (numeric), JS >= 0.1 (categorical), no p-value",
         fit_s=fit_w, fit_cpu_s=fit_c, **timing, flagged=sorted(flagged),
         notes="per window includes wrapping the current DataFrame into a Dataset")  # fmt: skip


if __name__ == "__main__":
    main()
