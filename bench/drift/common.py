"""Shared helpers of the drift benchmark scripts (each system runs in its own process).

Every system script: pins itself to one core, loads the same data files, prepares its inputs
outside the timer, times one ``fit`` and the best of ``REPEAT`` per-window runs (after
``gc.collect()``), and prints one JSON object on stdout: ``{system, version, fit_s, window_s,
window_cpu_s, flagged, notes}``. Works in any virtualenv that has numpy (no Driftline import).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPEAT = 3


def pin_one_core() -> None:
    """Run on one core, as the targets say (the machine has two)."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})


def load(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """reference, current (categoricals as str arrays) and truth."""
    with np.load(folder / "reference.npz") as f:
        ref = {k: f[k] for k in f.files}
    with np.load(folder / "current.npz") as f:
        cur = {k: f[k] for k in f.files}
    truth = json.loads((folder / "truth.json").read_text())
    return ref, cur, truth


def timed(fn: Callable[[], Any], repeat: int = REPEAT) -> tuple[Any, float, float]:
    """``(result, best wall seconds, best CPU seconds of this thread)`` over ``repeat`` runs."""
    best_wall = best_cpu = float("inf")
    result = None
    for _ in range(repeat):
        gc.collect()
        w0, c0 = time.perf_counter(), time.thread_time()
        result = fn()
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.thread_time() - c0)
    return result, best_wall, best_cpu


def emit(**fields: Any) -> None:
    """Print the result object (the runner reads the last stdout line)."""
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()
