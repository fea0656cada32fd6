"""Synthetic drift benchmark data: 50 numeric + 5 categorical features with known shifts.

Fixed seed. Reference 50,000 rows, current window 10,000 rows. Truth:

- real shifts (must be flagged): n00 mean +0.5 sd (normal), n01 log-location +0.3 (lognormal),
  n02 scale x1.5 (normal), n03 tail-only (10% of rows x4, normal), c01 category proportions
  (5 levels), c02 new category (10% of rows);
- negligible shift (must NOT be flagged): n04 mean +0.08 sd (normal);
- everything else is stable: 45 numeric (normal, lognormal, uniform, exponential, Poisson with
  ties) and 3 categorical (3 levels, 10-level Zipf, 200-level Zipf).

Usage: ``python bench/drift/data.py OUT_DIR`` writes reference.npz, current.npz (categoricals as
strings) and truth.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

N_REF = 50_000
N_CUR = 10_000
SEED = 20_240_601

REAL = ["n00", "n01", "n02", "n03", "c01", "c02"]
NEGLIGIBLE = ["n04"]


def _zipf_probs(k: int, a: float = 1.1) -> np.ndarray:
    p = 1.0 / np.arange(1, k + 1) ** a
    return p / p.sum()


def _numeric(rng: np.random.Generator, j: int, n: int) -> np.ndarray:
    kind = j % 5
    if kind == 0:
        return rng.normal(10.0 * j, 1.0 + j / 10, n)
    if kind == 1:
        return rng.lognormal(0.5, 0.6, n)
    if kind == 2:
        return rng.uniform(-j, j + 1.0, n)
    if kind == 3:
        return rng.exponential(2.0, n)
    return rng.poisson(3.0 + j % 7, n).astype(np.float64)


def _categorical(rng: np.random.Generator, j: int, n: int, probs: np.ndarray) -> np.ndarray:
    names = np.array([f"c{j:02d}_{i:03d}" for i in range(len(probs))], dtype=object)
    return names[rng.choice(len(probs), n, p=probs)]


CATEGORIES = {0: _zipf_probs(3, 0.5), 1: np.array([0.4, 0.25, 0.15, 0.12, 0.08]),
              2: _zipf_probs(10), 3: _zipf_probs(50, 0.9), 4: _zipf_probs(200)}  # fmt: skip


def make(seed: int = SEED) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The reference and current tables (numeric float64, categorical str objects)."""
    rng = np.random.default_rng(seed)
    ref: dict[str, np.ndarray] = {}
    cur: dict[str, np.ndarray] = {}
    for j in range(50):
        name = f"n{j:02d}"
        ref[name] = _numeric(rng, j, N_REF)
        cur[name] = _numeric(rng, j, N_CUR)
    # n00: normal(0, 1): mean +0.5 sd
    sd0 = 1.0
    cur["n00"] = cur["n00"] + 0.5 * sd0
    # n01: lognormal(0.5, 0.6): log-location +0.3
    cur["n01"] = rng.lognormal(0.8, 0.6, N_CUR)
    # n02: uniform -> replace by normal for a clean scale change
    ref["n02"] = rng.normal(0.0, 1.0, N_REF)
    cur["n02"] = rng.normal(0.0, 1.5, N_CUR)
    # n03: tail-only change: 10% of rows scaled x4 around the mean
    ref["n03"] = rng.normal(0.0, 1.0, N_REF)
    base = rng.normal(0.0, 1.0, N_CUR)
    pick = rng.random(N_CUR) < 0.10
    base[pick] *= 4.0
    cur["n03"] = base
    # n04: negligible 0.08 sd shift
    ref["n04"] = rng.normal(0.0, 1.0, N_REF)
    cur["n04"] = rng.normal(0.08, 1.0, N_CUR)
    for j in range(5):
        name = f"c{j:02d}"
        probs = CATEGORIES[j]
        ref[name] = _categorical(rng, j, N_REF, probs)
        cur_probs = probs
        if j == 1:
            cur_probs = np.array([0.28, 0.25, 0.2, 0.15, 0.12])
        cur[name] = _categorical(rng, j, N_CUR, cur_probs)
        if j == 2:
            new = rng.random(N_CUR) < 0.10
            cur[name][new] = "c02_new"
    return ref, cur


def truth() -> dict[str, list[str]]:
    """Feature names by expected outcome."""
    names = [f"n{j:02d}" for j in range(50)] + [f"c{j:02d}" for j in range(5)]
    stable = [n for n in names if n not in REAL + NEGLIGIBLE]
    return {"real": REAL, "negligible": NEGLIGIBLE, "stable": stable,
            "categorical": [f"c{j:02d}" for j in range(5)]}  # fmt: skip


def write(out: Path) -> None:
    """Write reference.npz, current.npz and truth.json into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    ref, cur = make()
    # Strings as fixed-width unicode so np.load needs no pickle.
    np.savez(out / "reference.npz", **{k: (v.astype(str) if v.dtype == object else v)
                                      for k, v in ref.items()})  # fmt: skip
    np.savez(out / "current.npz", **{k: (v.astype(str) if v.dtype == object else v)
                                    for k, v in cur.items()})  # fmt: skip
    (out / "truth.json").write_text(json.dumps(truth(), indent=1))


if __name__ == "__main__":
    write(Path(sys.argv[1]))
