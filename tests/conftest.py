"""Suite-wide pytest configuration.

- Unit tests (everything under tests/unit) get a tight per-test timeout: they need no network,
  no server and no cluster, so anything slower is a bug.
- A fresh Prometheus registry fixture, so no test shares metric state with another.
"""

from __future__ import annotations

from pathlib import Path

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
