"""What the rollout analysis tests against real processes share: a split router and its load.

Owns the router tests' process helpers (``tests/integration/router/procs.py``, loaded once by
path), the two variants the analysis judges (``CANARY``, ``STABLE``), and the setup both tests
run: two fake OIP upstreams (stable answers, canary answers 500) behind one real ``driftline
route`` at 50/50, and a bounded loop of inference requests through it. Imported by name: this
folder is on pytest's ``pythonpath`` (pyproject.toml).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import orjson
import yaml

from driftline.operator.analysis import Target

REQUESTS = 200
"""Requests sent through the router: bounded, ~100 per variant at 50/50."""
INFER = "/v2/models/churn/infer"
BODY = orjson.dumps(
    {"id": "r", "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [0.1] * 3}]}
)
CANARY = Target("default", "churn", "canary", "churn-v2")
STABLE = Target("default", "churn", "stable", "churn-v1")


def _load_procs() -> ModuleType:
    name = "driftline_router_test_procs"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "router" / "procs.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


procs = _load_procs()


def start_upstreams(logdir: Path) -> tuple[Any, Any, Path]:
    """Start the fake stable (answers) and canary (500s) and write the 50/50 route table.

    Returns:
        The stable and canary processes (the caller stops them, e.g. ``procs.running``) and the
        table's path.
    """
    stable = procs.start_fake(logdir, "stable", "--version", "1", "--label", "0")
    canary = procs.start_fake(logdir, "canary", "--version", "2", "--status", "500")
    table = {
        "version": 1,
        "stable": {"model_version": STABLE.model, "weight": 50, "endpoints": [stable.url]},
        "canary": {"model_version": CANARY.model, "weight": 50, "endpoints": [canary.url]},
    }
    path = logdir / "table.yaml"
    path.write_text(yaml.safe_dump(table))
    return stable, canary, path


def send_requests(router_url: str) -> None:
    """``REQUESTS`` inference requests through the router, one after another (bounded)."""
    with httpx.Client(base_url=router_url, timeout=5.0) as client:
        for i in range(REQUESTS):
            client.post(INFER, content=BODY, headers={"content-type": "application/json"})
            assert i < REQUESTS  # bounded loop
