"""The local-mode commands' edges, without a running ``up``.

We test these aspects: ``status`` with nothing to show exits 2 and says where it looked; the
rollout verbs and ``apply`` refuse when no ``up`` runs, naming the state directory; ``down`` with
nothing running says so; ``up`` refuses invalid manifests with the API server's message before
starting anything, and refuses to start twice on one state directory; ``status`` renders a stored
Deployment and exits 1 while it is Degraded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from click.testing import CliRunner

from driftline.operator.cli import driftline
from driftline.operator.local.state import StateDir, UpRecord


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(driftline, list(args))
    return result.exit_code, result.output


def test_status_without_anything_to_show(tmp_path: Path) -> None:
    code, out = _run("status", "--state-dir", str(tmp_path))
    assert code == 2
    assert "no Deployment found" in out and str(tmp_path) in out


def test_verbs_refuse_without_a_running_up(tmp_path: Path) -> None:
    code, out = _run("promote", "churn", "--state-dir", str(tmp_path))
    assert code == 1
    assert "driftline up is not running" in out


def test_down_with_nothing_running(tmp_path: Path) -> None:
    code, out = _run("down", "--state-dir", str(tmp_path))
    assert code == 0
    assert "nothing running" in out


def test_up_refuses_invalid_manifests_before_starting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: driftline.dev/v1alpha1\nkind: Deployment\nmetadata: {name: web}\n"
        "spec: {model: m, replicas: -1}\n"
    )
    code, out = _run("up", "-f", str(bad), "--state-dir", str(tmp_path / "s"))
    assert code == 1
    assert 'Deployment.driftline.dev "web" is invalid' in out
    assert not (tmp_path / "s" / "up.json").exists()


def test_up_refuses_to_start_twice(tmp_path: Path, repo_root: Path) -> None:
    state = StateDir(tmp_path)
    state.write_up(UpRecord(pid=os.getpid(), started_at="2026-01-01T00:00:00Z"))  # type: ignore[arg-type]
    manifests = repo_root / "examples" / "quickstart" / "manifests"
    code, out = _run("up", "-f", str(manifests), "--state-dir", str(tmp_path))
    assert code == 1
    assert f"already running here (pid {os.getpid()}" in out


def test_status_renders_a_stored_deployment_and_gates_on_degraded(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    state.write_object(
        "Deployment",
        "churn",
        {
            "apiVersion": "driftline.dev/v1alpha1",
            "kind": "Deployment",
            "metadata": {"name": "churn", "generation": 3},
            "spec": {"model": "churn-v3"},
            "status": {"phase": "Degraded", "stableModel": "churn-v2", "observedGeneration": 3},
        },
    )
    code, out = _run("status", "churn", "--state-dir", str(tmp_path))
    assert code == 1
    assert "Deployment churn: Degraded (generation 3, observed 3)" in out
    assert "driftline up: not running" in out
    (tmp_path / "objects" / "deployment" / "churn.json").write_text(json.dumps({"kind": "x"}))
    code, out = _run("status", "churn", "--state-dir", str(tmp_path))
    assert code == 1 and "churn.json" in out
