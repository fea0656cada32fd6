"""The local supervisor over real child processes on 127.0.0.1.

We test these aspects: a child is started in its own process group, probed until ready and
recorded with its pid and port; a child killed from outside is restarted on the same port and the
restart is counted; a child that keeps crashing is given up as failed after the limit; stopping
ends the whole process group (a grandchild too) and leaves no process behind; ``kill_recorded``
cleans up after an ``up`` that could not; a readiness wait is bounded by its deadline.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from driftline.operator.local import supervisor as sup

pytestmark = pytest.mark.integration

DEADLINE_S = 20.0


def _http_child(name: str, port: int) -> sup.ChildSpec:
    argv = (sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1")
    return sup.ChildSpec(name, "serve", "demo", argv, port, "/")


@pytest.fixture
async def supervisor(tmp_path: Path) -> AsyncIterator[sup.Supervisor]:
    events: list[str] = []
    s = sup.Supervisor(
        tmp_path / "logs", max_restarts=2, stop_timeout_s=5.0, on_event=events.append
    )
    try:
        yield s
    finally:
        s.stop_all_now()
        await s.aclose()


async def _until(condition, timeout_s: float = DEADLINE_S) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.05)


async def test_starting_probing_and_recording_a_child(supervisor: sup.Supervisor) -> None:
    port = sup.free_port()
    supervisor.start(_http_child("web", port))
    assert await supervisor.wait_ready(["web"], DEADLINE_S) == []
    pid = supervisor.pid("web")
    assert pid is not None and sup.pid_alive(pid)
    assert os.getpgid(pid) == pid  # its own process group
    (record,) = supervisor.records()
    assert (record.name, record.pid, record.port, record.state) == ("web", pid, port, "ready")
    assert record.url == f"http://127.0.0.1:{port}"
    await supervisor.stop(["web"])
    assert not sup.pid_alive(pid)
    assert supervisor.records()[0].state == "stopped"


async def test_restarting_a_crashed_child_on_the_same_port(supervisor: sup.Supervisor) -> None:
    port = sup.free_port()
    supervisor.start(_http_child("web", port))
    assert await supervisor.wait_ready(["web"], DEADLINE_S) == []
    first = supervisor.pid("web")
    assert first is not None
    os.kill(first, signal.SIGKILL)

    async def restarted() -> bool:
        await supervisor.check()
        return supervisor.state("web") == "ready" and supervisor.pid("web") not in (None, first)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not await restarted():
        assert loop.time() < deadline
        await asyncio.sleep(0.05)
    assert supervisor.restarts("web") == 1
    assert supervisor.spec("web") is not None and supervisor.spec("web").port == port  # type: ignore[union-attr]


async def test_giving_up_on_a_child_that_keeps_crashing(supervisor: sup.Supervisor) -> None:
    spec = sup.ChildSpec(
        "bad", "serve", "demo", (sys.executable, "-c", "raise SystemExit(3)"), sup.free_port(), "/"
    )
    supervisor.start(spec)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while supervisor.state("bad") != "failed":
        assert loop.time() < deadline
        await supervisor.check()
        await asyncio.sleep(0.05)
    assert supervisor.restarts("bad") == 2
    assert await supervisor.wait_ready(["bad"], 1.0) == ["bad"]


async def test_stopping_ends_the_whole_process_group(
    supervisor: sup.Supervisor, tmp_path: Path
) -> None:
    pidfile = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n"
    )
    supervisor.start(sup.ChildSpec("parent", "serve", "demo", (sys.executable, "-c", code), 1, "/"))
    await _until(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
    grandchild = int(pidfile.read_text())
    parent = supervisor.pid("parent")
    assert parent is not None and sup.pid_alive(grandchild)
    await supervisor.stop(["parent"])
    assert not sup.pid_alive(parent)
    await _until(lambda: not sup.pid_alive(grandchild))


async def test_kill_recorded_stops_what_an_up_left_behind(supervisor: sup.Supervisor) -> None:
    supervisor.start(_http_child("web", sup.free_port()))
    assert await supervisor.wait_ready(["web"], DEADLINE_S) == []
    records = supervisor.records()
    pid = records[0].pid
    assert pid is not None
    # as `driftline down` does when the `up` that started them is gone
    assert sup.kill_recorded(records, timeout_s=5.0, marker=b"http.server") == [pid]
    await _until(lambda: not sup.pid_alive(pid) or supervisor.pid("web") is None)


async def test_a_readiness_wait_is_bounded(supervisor: sup.Supervisor) -> None:
    argv = (sys.executable, "-c", "import time; time.sleep(30)")
    supervisor.start(sup.ChildSpec("mute", "serve", "demo", argv, sup.free_port(), "/"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await supervisor.wait_ready(["mute"], 0.5) == ["mute"]
    assert loop.time() - started < 3.0


async def test_a_child_that_never_gets_ready_is_killed_and_restarted(tmp_path: Path) -> None:
    s = sup.Supervisor(tmp_path / "logs", max_restarts=3, ready_timeout_s=0.5, stop_timeout_s=2.0)
    try:
        argv = (sys.executable, "-c", "import time; time.sleep(30)")
        s.start(sup.ChildSpec("hung", "serve", "demo", argv, sup.free_port(), "/"))
        first = s.pid("hung")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        while s.restarts("hung") < 1:
            assert loop.time() < deadline
            await s.check()
            await asyncio.sleep(0.05)
        assert first is not None and not sup.pid_alive(first)
    finally:
        s.stop_all_now()
        await s.aclose()
