"""The process supervisor of local mode: start, watch, restart and stop child processes.

Who uses it: the local runtime (:mod:`driftline.operator.local.runtime`) asks it for the
``driftline serve|monitor|route`` children the planned topology needs; ``driftline down`` uses
:func:`kill_recorded` to clean up after an ``up`` that died without stopping its children.

Guarantees:

- Every child binds 127.0.0.1 on a port chosen here (:func:`free_port`), runs in its own process
  group (``start_new_session``) with stdout and stderr in its own log file, and is identified by
  its pid: stopping sends SIGTERM to the group, waits (bounded), then SIGKILL — never a search by
  name.
- A child that exits while it should run is restarted on the same port (the route table names
  it), after a back-off that doubles up to 5 s; restarts are counted. One that keeps crashing
  before it ever gets ready is marked ``failed`` after ``max_restarts`` attempts in a row.
- Readiness is an HTTP GET on the child's probe path answering 200, polled every tick; a child
  not ready ``ready_timeout_s`` after its start is killed and restarted (a crash, counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import httpx

from driftline.operator.local.state import ProcessRecord

__all__ = [
    "ChildSpec",
    "Supervisor",
    "free_port",
    "kill_recorded",
    "pid_alive",
]

log = logging.getLogger(__name__)

ChildState = Literal["starting", "ready", "restarting", "failed", "stopped"]

MAX_BACKOFF_S: Final = 5.0
"""Longest wait before restarting a crashed child: quick recovery, no busy crash loop."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it; a child binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists (and is not a zombie we could reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:  # Linux: a zombie is dead for our purposes
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return True


@dataclass(frozen=True)
class ChildSpec:
    """What to run: one child process.

    Attributes:
        name: unique name (also the log file's name).
        role: ``serve``, ``monitor`` or ``route``.
        deployment: the Deployment it belongs to.
        argv: the full command line (its port already in it).
        port: the port it listens on (127.0.0.1).
        probe: the path answering 200 once it is ready.
        variant: the variant role it was started for (None for a router).
        model: the Model it serves or watches.
        env: extra environment variables.
    """

    name: str
    role: str
    deployment: str
    argv: tuple[str, ...]
    port: int
    probe: str
    variant: str | None = None
    model: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"


@dataclass
class _Child:
    spec: ChildSpec
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    state: ChildState = "starting"
    restarts: int = 0
    crashes_in_a_row: int = 0
    restart_at: float | None = None
    started_at: float = 0.0
    ever_ready: bool = False


class Supervisor:
    """Runs the children of one ``driftline up``; every method is called from one event loop."""

    def __init__(
        self,
        logs_dir: Path,
        *,
        max_restarts: int = 5,
        stop_timeout_s: float = 10.0,
        ready_timeout_s: float = 60.0,
        on_event: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logs = logs_dir
        self._max_restarts = max_restarts
        self._stop_timeout_s = stop_timeout_s
        self._ready_timeout_s = ready_timeout_s
        self._on_event = on_event or (lambda _msg: None)
        self._clock = clock
        self._children: dict[str, _Child] = {}
        self._http = httpx.AsyncClient(timeout=1.0)

    # ------------------------------------------------------------------------------- queries
    def names(self) -> list[str]:
        """Names of the children that should be running (not stopped)."""
        return [n for n, c in self._children.items() if c.state != "stopped"]

    def spec(self, name: str) -> ChildSpec | None:
        """The spec of a child, or None."""
        child = self._children.get(name)
        return child.spec if child else None

    def state(self, name: str) -> ChildState | None:
        """The state of a child, or None when unknown."""
        child = self._children.get(name)
        return child.state if child else None

    def restarts(self, name: str) -> int:
        """How often a child was restarted after a crash."""
        child = self._children.get(name)
        return child.restarts if child else 0

    def pid(self, name: str) -> int | None:
        """The pid of a running child."""
        child = self._children.get(name)
        return child.proc.pid if child and child.proc and child.proc.poll() is None else None

    def records(self) -> list[ProcessRecord]:
        """Every child as a :class:`ProcessRecord` (for ``processes.json``)."""
        out: list[ProcessRecord] = []
        for child in self._children.values():
            spec = child.spec
            running = child.proc is not None and child.proc.poll() is None
            out.append(
                ProcessRecord(
                    name=spec.name,
                    role=spec.role,
                    deployment=spec.deployment,
                    variant=spec.variant,
                    model=spec.model,
                    pid=child.proc.pid if running and child.proc else None,
                    port=spec.port,
                    url=spec.url,
                    state=child.state,
                    restarts=child.restarts,
                    log=str(child.log_path),
                )
            )
        return out

    # ------------------------------------------------------------------------------- lifecycle
    def start(self, spec: ChildSpec) -> None:
        """Start a child (no-op when one of that name already runs)."""
        existing = self._children.get(spec.name)
        if existing is not None and existing.state != "stopped":
            return
        child = _Child(spec, self._logs / f"{spec.name}.log")
        self._children[spec.name] = child
        self._spawn(child)
        self._on_event(f"started {spec.name} (pid {self.pid(spec.name)}) on {spec.url}")

    def _spawn(self, child: _Child) -> None:
        self._logs.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **child.spec.env}
        with child.log_path.open("ab") as out:
            out.write(f"--- {time.strftime('%H:%M:%S')} starting {child.spec.argv}\n".encode())
            out.flush()
            child.proc = subprocess.Popen(
                list(child.spec.argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: stopped as a whole, by pid
            )
        child.state = "starting"
        child.restart_at = None
        child.started_at = self._clock()

    async def check(self) -> None:
        """Probe starting children, restart crashed ones (call this every tick)."""
        now = self._clock()
        probes: list[tuple[_Child, asyncio.Task[bool]]] = []
        for child in self._children.values():
            if child.state in ("stopped", "failed"):
                continue
            proc = child.proc
            if child.state == "restarting":
                if child.restart_at is not None and now >= child.restart_at:
                    self._spawn(child)
                    self._on_event(
                        f"restarted {child.spec.name} (restart {child.restarts}, "
                        f"pid {self.pid(child.spec.name)})"
                    )
                continue
            if proc is not None and proc.poll() is not None:
                self._crashed(child, proc.returncode, now)
                continue
            if child.state == "starting":
                if proc is not None and now - child.started_at > self._ready_timeout_s:
                    # hung before it ever answered: kill it; the next check restarts it
                    self._on_event(
                        f"{child.spec.name} not ready after {self._ready_timeout_s:g}s: killing it"
                    )
                    _signal_group(proc.pid, signal.SIGKILL)
                    continue
                probes.append((child, asyncio.create_task(self._probe(child.spec))))
        for child, task in probes:
            if await task and child.state == "starting":
                child.state = "ready"
                child.ever_ready = True
                child.crashes_in_a_row = 0
                self._on_event(f"{child.spec.name} is ready on {child.spec.url}")

    def _crashed(self, child: _Child, code: int | None, now: float) -> None:
        child.crashes_in_a_row += 1
        if child.crashes_in_a_row > self._max_restarts:
            child.state = "failed"
            self._on_event(
                f"{child.spec.name} exited with code {code} {child.crashes_in_a_row} times in a "
                f"row: given up (see {child.log_path})"
            )
            return
        child.restarts += 1
        backoff = min(MAX_BACKOFF_S, 0.25 * 2 ** (child.crashes_in_a_row - 1))
        child.state = "restarting"
        child.restart_at = now + backoff
        self._on_event(
            f"{child.spec.name} exited with code {code}; restarting in {backoff:.2f}s "
            f"(restart {child.restarts}, see {child.log_path})"
        )

    async def _probe(self, spec: ChildSpec) -> bool:
        try:
            answer = await self._http.get(spec.url + spec.probe)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    async def wait_ready(self, names: Sequence[str], timeout_s: float) -> list[str]:
        """Wait until every named child is ready or ``timeout_s`` passes.

        Returns:
            The names that are not ready (empty on success). A failed child ends the wait early.
        """
        deadline = self._clock() + timeout_s
        while True:
            await self.check()
            pending = [n for n in names if self.state(n) != "ready"]
            if not pending or any(self.state(n) == "failed" for n in pending):
                return pending
            if self._clock() >= deadline:
                return pending
            await asyncio.sleep(0.05)

    async def stop(self, names: Sequence[str]) -> None:
        """Stop the named children: SIGTERM to each group, wait (bounded), then SIGKILL."""
        procs: list[subprocess.Popen[bytes]] = []
        for name in names:
            child = self._children.get(name)
            if child is None or child.state == "stopped":
                continue
            child.state = "stopped"
            if child.proc is not None and child.proc.poll() is None:
                _signal_group(child.proc.pid, signal.SIGTERM)
                procs.append(child.proc)
            self._on_event(f"stopping {name}")
        deadline = self._clock() + self._stop_timeout_s
        while any(p.poll() is None for p in procs) and self._clock() < deadline:
            await asyncio.sleep(0.05)
        for proc in procs:
            _reap(proc)

    def stop_all_now(self) -> None:
        """Stop every child, blocking (bounded): the last thing ``up`` does, whatever happened."""
        procs = []
        for child in self._children.values():
            child.state = "stopped"
            if child.proc is not None and child.proc.poll() is None:
                _signal_group(child.proc.pid, signal.SIGTERM)
                procs.append(child.proc)
        deadline = time.monotonic() + self._stop_timeout_s
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.05)
        for proc in procs:
            _reap(proc)

    async def aclose(self) -> None:
        """Close the probe client (children are stopped separately)."""
        await self._http.aclose()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Kill what is left of a child's group and collect its exit status (no zombies)."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5.0)
    else:
        # the leader exited: a grandchild left in its group must not outlive it
        _signal_group(proc.pid, signal.SIGKILL)


def kill_recorded(
    records: Sequence[ProcessRecord], timeout_s: float = 10.0, *, marker: bytes = b"driftline"
) -> list[int]:
    """Stop the processes an ``up`` recorded, when it could not (it was killed): by pid.

    Only pids whose command line still contains ``marker`` are signalled, so a pid reused by an
    unrelated process since is left alone.

    Returns:
        The pids that were signalled.
    """
    targets = [r.pid for r in records if r.pid is not None and _is_ours(r.pid, marker)]
    for pid in targets:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(pid_alive(p) for p in targets) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in targets:
        if pid_alive(pid):
            _signal_group(pid, signal.SIGKILL)
    return targets


def _is_ours(pid: int, marker: bytes) -> bool:
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return marker in cmdline
