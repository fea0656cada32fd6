"""Fleet drift with two real ``driftline monitor`` processes: the merged window decides.

Two sidecars on 127.0.0.1, configured exactly as the operator configures them for a DriftMonitor
(``render.monitoring.drift_flags`` as their environment: ``minSamples`` 600), each fed one half
(500 rows) of a drifted stream. Alone, each half is below ``minSamples``: each pod's verdict has
no drifted feature, so the worst pod's score is 0 and a ``maxDriftScore: 0.1`` gate would pass.
The HTTP provider with a drift source merges the two ``GET /v1/window`` documents and judges the
1,000 merged rows with the DriftMonitor's config: drifted, ``DriftScoreTooHigh``. Both processes
are started and stopped (SIGTERM, by pid) by the test; readiness is awaited with a deadline.

The DriftMonitor controller's evaluation (``drift_controller.evaluate`` over
``HttpProvider.fleet``) reads the same two sidecars for the canary of a Deployment whose status
says it serves ``churn-v2``: status Drifted, Drifted=True (DriftDetected), the drifted features
listed with their statistics, a DriftDetected transition.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from driftline.operator import drift_controller, drift_status, names
from driftline.operator.analysis import Target, Thresholds, judge
from driftline.operator.analysis_http import Endpoints, FleetDrift, HttpProvider, fleet_decision
from driftline.operator.api import DriftMonitor
from driftline.operator.api.driftmonitor import DriftMonitorSpec
from driftline.operator.render.monitoring import drift_flags
from driftline.serving import records
from driftline.serving.drift.profile import profile_from_json

pytestmark = pytest.mark.integration

STARTUP_DEADLINE_S = 30.0
CLI = [sys.executable, "-m", "driftline.operator"]
CANARY = Target("default", "churn", "canary", "churn-v2")
SPEC = DriftMonitorSpec.model_validate(
    {"deployment": "churn", "window": {"size": 5000, "kind": "tumbling"}, "minSamples": 600}
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def sidecar(profile: Path, env: dict[str, str]) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [*CLI, "monitor", "--profile", str(profile), "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"monitor exited {proc.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError("monitor not ready before the deadline")
            time.sleep(0.05)  # poll interval while waiting on the readiness condition
        yield base
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        assert proc.stderr is not None
        proc.stderr.close()


def _frame(x: np.ndarray) -> bytes:
    rows = len(x)
    batch = records.RecordBatch(
        model="churn", version="churn-v2", variant="canary",
        request_ids=tuple(f"r{i}" for i in range(rows)), timestamps=np.full(rows, time.time()),
        latencies_ms=np.ones(rows), inputs={"input": x},
        outputs={"probabilities": np.full((rows, 2), 0.5, dtype=np.float32)},
    )  # fmt: skip
    return records.encode(batch)


async def test_two_pods_below_min_samples_merge_into_a_drifted_verdict(
    tmp_path: Path, quickstart_train: ModuleType
) -> None:
    qs = quickstart_train
    x_ref, y = qs.make_dataset(5000, 0)
    np.savez(tmp_path / "ref.npz", **{n: x_ref[:, j] for j, n in enumerate(qs.FEATURES)}, label=y)
    path = tmp_path / "profile.json"
    subprocess.run(
        [*CLI, "profile", "--reference", str(tmp_path / "ref.npz"), "--exclude", "label",
         "--categorical", "region,plan", "--out", str(path)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    profile = profile_from_json(orjson.loads(path.read_bytes()))
    env = drift_flags(SPEC, SPEC.window.size)
    assert env["DRIFTLINE_MONITOR_MIN_SAMPLES"] == "600"
    x, _ = qs.make_dataset(1000, 21, shift=1.0)
    with sidecar(path, env) as a, sidecar(path, env) as b:
        for base, half in ((a, x[:500]), (b, x[500:])):
            r = httpx.post(f"{base}{records.RECORDS_PATH}", content=_frame(half),
                           headers={"content-type": records.MEDIA_TYPE}, timeout=10)  # fmt: skip
            assert r.status_code == 202 and r.json()["rows"] == 500
            alone = httpx.get(f"{base}/v1/verdict", timeout=10).json()["variants"]["canary"]
            assert alone["verdict"]["status"] == "not_enough_data"

        async def drift(target: Target) -> FleetDrift:
            return FleetDrift(profile, fleet_decision(SPEC, profile))

        endpoints = Endpoints(monitors=(a, b))
        async with httpx.AsyncClient(timeout=10.0) as client:
            fleet = HttpProvider(client, lambda t: endpoints, drift=drift)
            worst = HttpProvider(client, lambda t: endpoints)
            merged, per_pod = await fleet.measure(CANARY), await worst.measure(CANARY)
            monitor = DriftMonitor.model_validate(
                {"apiVersion": names.API_VERSION, "kind": "DriftMonitor",
                 "metadata": {"name": "churn-drift", "namespace": "default", "generation": 1},
                 "spec": {**SPEC.model_dump(by_alias=True, exclude_none=True),
                          "variant": "canary"}}
            )  # fmt: skip
            status, _ = await drift_controller.evaluate(
                _OneDeployment(), fleet.fleet, monitor, datetime.now(UTC)
            )

    gate = Thresholds(min_samples=100, max_drift_score=0.1)
    at = datetime.now(UTC)
    assert per_pod.drift_samples == 1000 and per_pod.drift_score == 0.0
    worst_check = judge(per_pod, per_pod, gate, at=at).check("driftScore")
    assert worst_check is not None and worst_check.verdict == "pass"  # the worst pod: a pass
    result = fleet.last_fleet[CANARY]
    assert (result.pods, result.rows, result.status, dict(result.skipped)) == (
        2, 1000, "drift", {}
    )  # fmt: skip
    assert merged.drift_samples == 1000 and (merged.drift_score or 0.0) > 0.1
    fleet_check = judge(merged, merged, gate, at=at).check("driftScore")
    assert fleet_check is not None and fleet_check.verdict == "fail"
    assert fleet_check.reason == "DriftScoreTooHigh"

    assert (status.phase, status.drifted, status.model, status.window_samples) == (
        "Drifted", True, "churn-v2", 1000)  # fmt: skip
    assert [c.reason for c in status.conditions if c.type == drift_status.DRIFTED] == [
        "DriftDetected"
    ]
    drifted = [f for f in status.features if f.drifted]
    assert drifted and all(f.statistic > (f.threshold or 0) for f in drifted)
    assert status.score is not None and status.score > 1
    assert drift_status.transition(None, status) == "DriftDetected"


class _OneDeployment:
    """The cluster seam for the controller: one Deployment whose canary serves churn-v2."""

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        if (kind, namespace, name) != ("Deployment", "default", "churn"):
            return None
        return {
            "apiVersion": names.API_VERSION, "kind": "Deployment",
            "metadata": {"name": "churn", "namespace": "default", "generation": 1},
            "spec": {"model": "churn-v2"},
            "status": {"stableModel": "churn-v1", "canaryModel": "churn-v2"},
        }  # fmt: skip

    async def list_objects(
        self, api_version: str, kind: str, namespace: str, selector: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        return []
