"""Shared helpers of the drift benchmark scripts (each system runs in its own process).

Every system script: pins itself to one core, loads the same data files, prepares its inputs
outside the timer, times one ``fit`` and the per-window run (:func:`window_timing`: at least
``REPEAT`` runs and as many more as fit in ``BUDGET_S``, as timeit's autorange does, each after
``gc.collect()``; best and median reported), and prints one JSON object on stdout: ``{system,
version, fit_s, window_s, window_cpu_s, window_cpu_median_s, window_runs, flagged, notes}``.
Works in any virtualenv that has numpy (no Driftline import).
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
BUDGET_S = 3.0
"""Per-window runs continue past ``REPEAT`` while their total stays under this (fast systems
get more samples; a system that needs seconds per window still runs ``REPEAT`` times)."""
MAX_RUNS = 40


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


def window_timing(fn: Callable[[], Any]) -> tuple[Any, dict[str, float | int]]:
    """Time the per-window run: ``(result, {window_s, window_cpu_s, window_median_s,
    window_cpu_median_s, window_runs})``, best and median over the runs (see ``BUDGET_S``)."""
    walls: list[float] = []
    cpus: list[float] = []
    result = None
    started = time.perf_counter()
    while len(walls) < REPEAT or (
        len(walls) < MAX_RUNS and time.perf_counter() - started < BUDGET_S
    ):
        gc.collect()
        w0, c0 = time.perf_counter(), time.thread_time()
        result = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.thread_time() - c0)
    return result, {
        "window_s": min(walls),
        "window_cpu_s": min(cpus),
        "window_median_s": float(np.median(walls)),
        "window_cpu_median_s": float(np.median(cpus)),
        "window_runs": len(walls),
    }


def emit(**fields: Any) -> None:
    """Print the result object (the runner reads the last stdout line)."""
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()
