"""Process helpers for the router's integration tests: free ports, start, wait, stop by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
READY_DEADLINE_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """SIGTERM by pid, wait, SIGKILL by pid if it lingers."""
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_ready(proc: Proc, path: str, deadline_s: float = READY_DEADLINE_S) -> None:
    """Poll ``path`` until it answers 200, the process dies, or the deadline passes."""
    end = time.monotonic() + deadline_s
    last: object = None
    while time.monotonic() < end:
        if proc.popen.poll() is not None:
            raise AssertionError(f"{proc.name} exited {proc.popen.returncode}:\n{proc.output()}")
        try:
            if httpx.get(proc.url + path, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)  # polling interval of a readiness wait, bounded by the deadline
    raise AssertionError(f"{proc.name} not ready in {deadline_s}s ({last}):\n{proc.output()}")


def start(name: str, args: list[str], port: int, logdir: Path, ready_path: str) -> Proc:
    log = logdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=HERE)
    proc = Proc(name, popen, port, log)
    try:
        wait_ready(proc, ready_path)
    except BaseException:
        proc.stop()
        raise
    return proc


def start_fake(logdir: Path, name: str, *extra: str) -> Proc:
    port = free_port()
    args = [sys.executable, str(HERE / "fake_upstream.py"), "--port", str(port), *extra]
    return start(name, args, port, logdir, "/v2/health/ready")


def start_router(
    logdir: Path,
    table: Path | None,
    *,
    admin: bool = False,
    env: dict[str, str] | None = None,
    source: list[str] | None = None,
) -> Proc:
    """Start ``driftline route`` with ``--table table`` (or the ``source`` flags instead)."""
    port = free_port()
    args = [sys.executable, "-m", "driftline.operator", "route"]
    args += source if source is not None else ["--table", str(table)]
    args += ["--port", str(port)]
    admin_port = 0
    if admin:
        admin_port = free_port()
        args += ["--admin-port", str(admin_port)]
    log = logdir / "router.log"
    environment = {**os.environ, **(env or {})}
    with log.open("wb") as out:
        popen = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=environment)
    proc = Proc("router", popen, port, log, {"admin": admin_port})
    try:
        wait_ready(proc, "/v2/health/live")
    except BaseException:
        proc.stop()
        raise
    return proc


@contextlib.contextmanager
def running(*procs: Proc) -> Iterator[None]:
    try:
        yield
    finally:
        for proc in procs:
            proc.stop()
