"""Real `driftline serve` processes on 127.0.0.1 for the integration tests.

``ServeProcess`` starts the server on a free port as a subprocess, waits for a condition
(``/v2/health/live`` or ``/v2/health/ready``) with a deadline, and is always stopped by its pid
(SIGTERM, then SIGKILL after a deadline) in the fixture's teardown. The ONNX model builders of the
unit tests are loaded from their conftest file (a plain module, loaded by path).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import httpx
import pytest

STARTUP_DEADLINE_S = 30.0
STOP_DEADLINE_S = 15.0


def load_model_builders() -> ModuleType:
    """tests/unit/server/conftest.py as a module (identity_model, two_input_model, ONNX_ELEM)."""
    path = Path(__file__).resolve().parents[2] / "unit" / "server" / "conftest.py"
    spec = importlib.util.spec_from_file_location("server_model_builders", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServeProcess:
    """One `driftline serve` subprocess."""

    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_path: Path) -> ServeProcess:
        self.log_path = log_path
        env = {**os.environ, **self.env}
        cmd = [
            sys.executable,
            "-m",
            "driftline.operator",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.args,
        ]
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        return self

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path else ""

    def wait_for(
        self, path: str, status: int = 200, deadline_s: float = STARTUP_DEADLINE_S
    ) -> None:
        """Poll ``path`` until it answers ``status``; fail with the server log at the deadline."""
        assert self.proc is not None
        end = time.monotonic() + deadline_s
        last = "no answer"
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                r = httpx.get(self.url + path, timeout=1.0)
                if r.status_code == status:
                    return
                last = f"{r.status_code} {r.text}"
            except httpx.TransportError as exc:
                last = repr(exc)
            time.sleep(0.05)  # polling interval of a wait-with-deadline, not a synchronisation
        pytest.fail(f"{path} did not answer {status} within {deadline_s}s ({last}):\n{self.log()}")

    def stop(self) -> int:
        """SIGTERM, wait, SIGKILL after the deadline; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_DEADLINE_S)
        return int(self.proc.returncode)


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ServeProcess]]:
    """Start `driftline serve` processes; every one is stopped by pid at the module's end."""
    tmp_path = tmp_path_factory.mktemp("serve")
    started: list[ServeProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, ready: bool = True) -> ServeProcess:
        proc = ServeProcess(list(args), env or {})
        proc.start(tmp_path / f"serve-{len(started)}.log")
        started.append(proc)
        proc.wait_for("/v2/health/ready" if ready else "/v2/health/live")
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()
