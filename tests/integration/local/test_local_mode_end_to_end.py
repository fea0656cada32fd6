"""Local mode end to end: ``driftline up`` with the quickstart manifests, real processes.

We test these aspects, in one run (it is the expensive test of local mode): ``up`` verifies the
models, starts model servers, monitors and a router on 127.0.0.1 and serves the first model;
traffic from ``driftline load`` (with delayed labels) is answered through the router; applying
v2 (``driftline apply``) rolls out through shadow and canary steps and is promoted on the numbers;
applying v3 (noise) fails its shadow analysis and is rolled back with the reason; ``driftline
status`` shows it (exit code 1: Degraded); a server killed from outside is restarted and counted;
``driftline down`` stops every process ``up`` started. Whatever fails, the fixture stops ``up``
and every child it recorded, by pid.

The manifests are the quickstart's, with durations shortened so the test takes about a minute
(shadow 2 s, steps of 1-2 s, analysis every second on at least 20 requests).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from driftline.operator.api import Deployment
from driftline.operator.local.state import StateDir
from driftline.operator.local.supervisor import kill_recorded, pid_alive

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

DRIFTLINE = (sys.executable, "-m", "driftline.operator")
FAST_ROLLOUT = {
    "strategy": "canary",
    "shadow": {"percent": 100, "duration": "2s", "minSamples": 150, "minAgreement": 0.75},
    "steps": [{"weight": 50, "pause": "2s"}, {"weight": 100, "pause": "1s"}],
    "analysis": {"interval": "1s", "minSamples": 20, "maxErrorRate": 0.02, "noData": "pause"},
    "onFailure": "rollback",
    "progressDeadline": "60s",
}


def fast_manifests(repo_root: Path, artifacts: Path, out: Path) -> Path:
    """The quickstart manifests beside a copy of the artifacts, with short durations."""
    (out / "manifests").mkdir(parents=True)
    shutil.copytree(artifacts, out / "artifacts")
    for src in sorted((repo_root / "examples" / "quickstart" / "manifests").glob("*.yaml")):
        doc = yaml.safe_load(src.read_text())
        if doc["kind"] == "Deployment":
            doc["spec"]["rollout"] = FAST_ROLLOUT
            doc["spec"]["monitor"] = {"enabled": True, "window": 200}
        (out / "manifests" / src.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    return out / "manifests"


def deployment(state: StateDir, name: str = "churn") -> Deployment | None:
    raw = state.read_object("Deployment", name)
    return Deployment.from_manifest(raw) if raw else None


def wait_for(
    what: str, condition: Callable[[], bool], timeout_s: float, up: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert up.poll() is None, f"driftline up exited ({up.returncode}) while waiting for {what}"
        assert time.monotonic() < deadline, f"not within {timeout_s}s: {what}"
        time.sleep(0.1)


def cli(*args: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DRIFTLINE, *args, "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def running_up(
    repo_root: Path, quickstart_artifacts: Path, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], StateDir, Path]]:
    manifests = fast_manifests(repo_root, quickstart_artifacts, tmp_path)
    state = StateDir(tmp_path / "state")
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [
            *DRIFTLINE,
            "up",
            "-f",
            str(manifests),
            "--state-dir",
            str(state.root),
            "--port",
            "0",
            "--tick",
            "0.2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield up, state, manifests
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGTERM)
            try:
                up.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
                up.wait(timeout=10)
        kill_recorded(state.read_processes(), timeout_s=10)
        log.close()
        print((tmp_path / "up.log").read_text()[-6000:])


def set_model(manifests: Path, model: str) -> Path:
    path = manifests / "deployment.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["model"] = model
    out = manifests.parent / f"deployment-{model}.yaml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def test_local_mode_rolls_a_good_model_out_and_a_bad_one_back(
    running_up: tuple[subprocess.Popen[bytes], StateDir, Path], quickstart_artifacts: Path
) -> None:
    up, state, manifests = running_up

    def serving(model: str) -> bool:
        d = deployment(state)
        return bool(
            d
            and d.status
            and d.status.endpoint
            and d.status.stable_model == model
            and d.status.phase == "Healthy"
        )

    wait_for("churn-v1 served through the router", lambda: serving("churn-v1"), 60, up)
    d = deployment(state)
    assert d is not None and d.status is not None and d.status.endpoint is not None
    endpoint = d.status.endpoint
    assert endpoint.startswith("http://127.0.0.1:")
    router = endpoint.split("/v2/")[0]
    records = state.read_processes()
    assert {r.role for r in records} == {"serve", "monitor", "route"}
    assert all(r.url.startswith("http://127.0.0.1:") for r in records)

    # traffic for the rest of the test: a bounded replay with delayed labels, stopped by pid
    traffic = subprocess.Popen(
        [
            *DRIFTLINE,
            "load",
            str(quickstart_artifacts / "traffic.csv"),
            "--url",
            endpoint,
            "--rate",
            "60",
            "--duration",
            "150",
            "--concurrency",
            "8",
            "--quiet",
            "--categories",
            "region=eu,us,apac,latam,africa",
            "--categories",
            "plan=basic,pro,enterprise",
            "--feedback-url",
            f"{router}/v1/feedback",
            "--feedback-delay",
            "0.5",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        applied = cli("apply", "-f", str(set_model(manifests, "churn-v2")), state_dir=state.root)
        assert applied.returncode == 0, applied.stderr
        assert "Deployment churn (generation 2)" in applied.stdout
        wait_for("churn-v2 promoted", lambda: serving("churn-v2"), 90, up)
        actions = [h.action for h in deployment(state).status.history]  # type: ignore[union-attr]
        assert "ShadowStarted" in actions or "RolloutStarted" in actions
        assert "Promoted" in actions

        applied = cli("apply", "-f", str(set_model(manifests, "churn-v3")), state_dir=state.root)
        assert applied.returncode == 0, applied.stderr

        def rolled_back() -> bool:
            d = deployment(state)
            return bool(d and d.status and d.status.phase == "Degraded")

        wait_for("churn-v3 rolled back", rolled_back, 60, up)
        d = deployment(state)
        assert d is not None and d.status is not None
        assert d.status.stable_model == "churn-v2"
        last = d.status.history[-1]
        assert last.action == "RolledBack" and last.model == "churn-v3"
        assert "ShadowAgreementTooLow" in (last.reason + (last.message or "")), last

        shown = cli("status", "churn", state_dir=state.root)
        assert shown.returncode == 1  # Degraded: a CI gate fails
        assert "Deployment churn: Degraded" in shown.stdout
        assert "RolledBack" in shown.stdout

        # a model server killed from outside is restarted and counted
        victim = next(r for r in state.read_processes() if r.role == "serve" and r.pid)
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        wait_for(
            "the killed server restarted",
            lambda: any(
                r.name == victim.name and r.restarts == 1 and r.state == "ready"
                for r in state.read_processes()
            ),
            30,
            up,
        )
    finally:
        os.killpg(traffic.pid, signal.SIGTERM)
        traffic.wait(timeout=10)
        downed = cli("down", state_dir=state.root)
    assert downed.returncode == 0, downed.stderr
    assert up.wait(timeout=30) == 0
    assert all(r.pid is None for r in state.read_processes())
    assert not any(pid_alive(r.pid) for r in records if r.pid)
    assert state.read_up() is None
