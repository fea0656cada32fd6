"""Where Driftline's per-window time goes: CPU time per stage, best of many repeats.

Usage (Driftline's virtualenv, from the repository root)::

    python bench/drift/stages.py [--repeat 20] [--json out.json]

Uses the benchmark's data (``bench/.work/drift``, written by ``data.py`` when missing), pins
itself to one core and measures each stage of one 10k x 55 window with ``time.process_time``
(CPU seconds of this process: meaningful on a shared machine, where wall time is not), best of
``--repeat`` runs after ``gc.collect()``. Stages: ``encode`` (named columns to the numeric
matrix and category columns), ``count`` (histograms over the reference binning), ``statistics``
(PSI, KS, Wasserstein, JS, chi-square for every feature), ``decide`` (gates and corrected
p-values), and ``total`` (``evaluate_table``: all of them in one call).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import data
from common import load, pin_one_core

from driftline.serving.drift import decide, stats
from driftline.serving.drift.evaluate import evaluate_table
from driftline.serving.drift.profile import build_profile, encode_table, histograms

WORK = Path(__file__).resolve().parents[2] / "bench" / ".work" / "drift"


def cpu_ms(fn: Callable[[], object], repeat: int) -> float:
    """Best CPU milliseconds of ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return 1e3 * best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    pin_one_core()
    if not (WORK / "truth.json").exists():
        data.write(WORK)
    ref, cur, truth = load(WORK)
    profile = build_profile(ref, "sha", categorical=truth["categorical"])
    layout = profile.layout
    cfg = decide.DecisionConfig()
    numeric, codes = encode_table(layout, cur)
    (hist,) = histograms(layout, numeric, codes)
    st = stats.compare(layout, profile.reference, hist)
    scope = [decide.Scope(st, hist.rows)]
    stages = {
        "encode": lambda: encode_table(layout, cur),
        "count": lambda: histograms(layout, numeric, codes),
        "statistics": lambda: stats.compare(layout, profile.reference, hist),
        "decide": lambda: decide.decide(layout, scope, cfg),
        "total": lambda: evaluate_table(profile, cur, cfg),
    }
    result = {name: cpu_ms(fn, args.repeat) for name, fn in stages.items()}
    flagged = sorted(evaluate_table(profile, cur, cfg).verdict.drifted)
    doc = {"cpu_ms": result, "repeat": args.repeat, "flagged": flagged}
    print(" ".join(f"{k} {v:.2f} ms" for k, v in result.items()) + f"  flagged {flagged}")
    if args.json is not None:
        args.json.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
