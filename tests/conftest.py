"""Suite-wide pytest configuration.

- Unit tests (everything under tests/unit) get a tight per-test timeout: they need no network,
  no server and no cluster, so anything slower is a bug.
- A fresh Prometheus registry fixture, so no test shares metric state with another.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client import CollectorRegistry

UNIT_TIMEOUT_S = 10
"""Seconds one unit test may take: generous for a loaded 2-core CI box, tight enough for a hang."""

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unit_dir = ROOT / "tests" / "unit"
    for item in items:
        if (
            unit_dir in Path(str(item.fspath)).parents
            and item.get_closest_marker("timeout") is None
        ):
            item.add_marker(pytest.mark.timeout(UNIT_TIMEOUT_S))


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh metrics registry for one test."""
    return CollectorRegistry()


@pytest.fixture
def repo_root() -> Path:
    """The repository's root folder."""
    return ROOT


def load_quickstart_train() -> ModuleType:
    """Import examples/quickstart/train.py (not a package) as the module ``quickstart_train``."""
    if "quickstart_train" in sys.modules:
        return sys.modules["quickstart_train"]
    path = ROOT / "examples" / "quickstart" / "train.py"
    spec = importlib.util.spec_from_file_location("quickstart_train", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["quickstart_train"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def quickstart_train() -> ModuleType:
    """The quickstart training module (make_dataset, train_onnx, build, FEATURES, ...)."""
    return load_quickstart_train()


@pytest.fixture(scope="session")
def quickstart_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the quickstart artifacts (models v1-v3, reference and traffic data, digests).

    Built once per test session with the default seed, so digests equal the committed manifests'.
    """
    out = tmp_path_factory.mktemp("quickstart")
    load_quickstart_train().build(out, log=False)
    return out
