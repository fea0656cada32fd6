"""Fixtures for the replayer's integration tests: a real ``driftline serve`` on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

READY_DEADLINE_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Served:
    url: str
    pid: int


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def served_v1(
    quickstart_artifacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """``driftline serve`` of the quickstart's model v1 as ``churn``, stopped by pid at the end."""
    yield from _serve(quickstart_artifacts / "model-v1.onnx", tmp_path_factory)


def _serve(model: Path, factory: pytest.TempPathFactory) -> Iterator[Served]:
    port = free_port()
    log = factory.mktemp("serve") / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "driftline.operator",
                "serve",
                "--model",
                str(model),
                "--name",
                "churn",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_DEADLINE_S
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited with {proc.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"serve not ready in {READY_DEADLINE_S}s: {log.read_text()}")
            time.sleep(0.05)
        yield Served(url, proc.pid)
    finally:
        _stop(proc)
