"""``kubectl driftline`` against the Kubernetes API emulator over HTTP, through the real KubeClient.

In-process (click's runner with the real connection: kubeconfig → KubeClient → HTTP) for most
cases, and the installed ``kubectl-driftline`` executable once, as kubectl would run it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kube_env import KMockThread, write_kubeconfig

from driftline.operator import names
from driftline.operator.cli import kubectl_driftline
from driftline.operator.rollout import parse_command

pytestmark = pytest.mark.integration

RESOURCE = names.DEPLOYMENT.resource
NOW = datetime.now(UTC)


@pytest.fixture
def k8s() -> Iterator[KMockThread]:
    server = KMockThread().start()
    yield server
    server.stop()


@pytest.fixture
def kubeconfig(k8s: KMockThread, tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", k8s.url)


def _seed(k8s: KMockThread, name: str, namespace: str, status: dict[str, Any]) -> None:
    body = {
        "apiVersion": names.API_VERSION,
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": "churn-v2"},
        "status": status,
    }
    k8s.call(lambda: k8s.handler.seed(RESOURCE, body))


CANARY = {
    "observedGeneration": 1,
    "phase": "Progressing",
    "stableModel": "churn-v1",
    "canaryModel": "churn-v2",
    "canaryWeight": 25,
    "currentStep": 1,
    "rolloutStartedAt": (NOW - timedelta(minutes=3)).isoformat(),
    "stepStartedAt": (NOW - timedelta(seconds=30)).isoformat(),
    "variants": [
        {"name": "stable", "model": "churn-v1", "weight": 75, "replicas": 3, "readyReplicas": 3},
        {"name": "canary", "model": "churn-v2", "weight": 25, "replicas": 1, "readyReplicas": 1},
    ],
    "analysis": {
        "time": (NOW - timedelta(seconds=5)).isoformat(),
        "verdict": "Successful",
        "checks": [
            {"name": "errorRate", "value": 0.002, "threshold": 0.01, "passed": True, "samples": 812}
        ],
    },
    "rollout": {"stage": "Canary", "target": "churn-v2"},
}


def _invoke(kubeconfig: Path, *args: str) -> Any:
    env = {"KUBECONFIG": str(kubeconfig)}
    return CliRunner().invoke(kubectl_driftline, list(args), env=env)


def test_status_reads_the_seeded_deployment(k8s: KMockThread, kubeconfig: Path) -> None:
    _seed(k8s, "churn", "default", CANARY)
    _seed(k8s, "fraud", "team-a", {"phase": "Healthy", "stableModel": "fraud-v3"})
    one = _invoke(kubeconfig, "status", "churn")  # namespace from the kubeconfig context
    assert one.exit_code == 0, one.output
    assert one.output.startswith("Deployment churn: Progressing")
    assert "canary      churn-v2     weight  25%   replicas 1/1" in one.output
    assert "step 2/" in one.output
    assert "errorRate 0.002 ok (bound 0.01, n=812)" in one.output
    table = _invoke(kubeconfig, "status", "-A")
    assert table.exit_code == 0, table.output
    rows = [line.split()[:3] for line in table.output.splitlines()[1:]]
    assert rows == [["default", "churn", "Progressing"], ["team-a", "fraud", "Healthy"]]


@pytest.mark.parametrize("verb", ["promote", "abort"])
def test_a_command_lands_as_the_annotation(k8s: KMockThread, kubeconfig: Path, verb: str) -> None:
    _seed(k8s, "churn", "team-a", CANARY)
    result = _invoke(kubeconfig, verb, "churn", "-n", "team-a")
    assert result.exit_code == 0, result.output
    live = k8s.objects(RESOURCE, "team-a")["churn"]
    value = live["metadata"]["annotations"][names.ANNOTATION_COMMAND]
    command = parse_command(value)
    assert command.verb == verb
    assert value in result.output
    assert live["spec"] == {"model": "churn-v2"}  # spec and status untouched
    assert live["status"]["canaryWeight"] == 25


def test_not_found_names_the_object(k8s: KMockThread, kubeconfig: Path) -> None:
    for args in (("status", "ghost", "-n", "team-b"), ("abort", "ghost", "-n", "team-b")):
        result = _invoke(kubeconfig, *args)
        assert result.exit_code == 1
        assert 'Driftline Deployment "ghost" not found in namespace "team-b"' in result.output


def test_unreachable_api_and_unknown_context_exit_1(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on once this socket closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")
    result = _invoke(config, "status", "churn")
    assert result.exit_code == 1
    assert f"cannot reach the Kubernetes API server at http://127.0.0.1:{port}" in result.output
    result = _invoke(config, "status", "--context", "nope")
    assert result.exit_code == 1
    assert "context 'nope' not found in kubeconfig" in result.output
    result = _invoke(tmp_path / "missing", "status")
    assert result.exit_code == 1
    assert "no kubeconfig found at" in result.output


def test_the_installed_executable_runs_as_a_kubectl_plugin(
    k8s: KMockThread, kubeconfig: Path
) -> None:
    exe = shutil.which("kubectl-driftline", path=str(Path(sys.executable).parent))
    assert exe is not None, "kubectl-driftline is not installed next to the interpreter"
    _seed(k8s, "churn", "default", CANARY)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    done = subprocess.run(
        [exe, "pause", "churn"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    value = k8s.objects(RESOURCE, "default")["churn"]["metadata"]["annotations"][
        names.ANNOTATION_COMMAND
    ]
    assert parse_command(value).verb == "pause"
    missing = subprocess.run(
        [exe, "status", "ghost"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert missing.returncode == 1
    assert 'not found in namespace "default"' in missing.stderr
    assert "Traceback" not in missing.stderr
