"""Fixtures of the monitor tests: the quickstart's data files without training the models.

``churn_data`` writes reference.npz, reference.csv, traffic.csv and traffic-shifted.csv exactly
as ``examples/quickstart/train.py`` does (same functions, same seeds), in well under a second.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest


@pytest.fixture(scope="session")
def churn_data(tmp_path_factory: pytest.TempPathFactory, quickstart_train: ModuleType) -> Path:
    qs = quickstart_train
    out = tmp_path_factory.mktemp("churn")
    x, y = qs.make_dataset(5000, 0)
    np.savez(out / "reference.npz", **{n: x[:, j] for j, n in enumerate(qs.FEATURES)}, label=y)
    qs.write_csv(out / "reference.csv", x, y)
    tx, ty = qs.make_dataset(5000, 1)
    qs.write_csv(out / "traffic.csv", tx, ty)
    sx, sy = qs.make_dataset(5000, 2, shift=1.0)
    qs.write_csv(out / "traffic-shifted.csv", sx, sy)
    return out
