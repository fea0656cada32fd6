"""The analysis provider against a real router process on 127.0.0.1 (fake OIP upstreams behind it).

We test: the router's real ``/stats`` document parsed by ``HttpProvider`` gives the canary's and
stable's request, error and latency numbers; a canary answering 500 is judged ``ErrorRateTooHigh``
and the state machine rolls it back with that reason; a dead router is no data, not a crash; the
paths the provider reads are the ones the router and the monitor serve.

Processes are started with the router tests' helpers (through ``real_router_env``, shared with
the Prometheus test), waited for with a deadline and stopped by pid.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from real_router_env import CANARY, REQUESTS, STABLE, procs, send_requests, start_upstreams

from driftline.operator import analysis_http, rollout
from driftline.operator.analysis import Measurements, Target, Thresholds, judge
from driftline.operator.analysis_http import Endpoints, HttpProvider

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logdir = tmp_path_factory.mktemp("rollout-router")
    stable, canary, path = start_upstreams(logdir)
    with procs.running(stable, canary):
        proc = procs.start_router(logdir, path)
        with procs.running(proc):
            send_requests(proc.url)
            yield proc.url


async def test_real_router_stats_drive_a_rollback(router: str) -> None:
    async with httpx.AsyncClient(timeout=5.0) as client:
        provider = HttpProvider(client, lambda t: Endpoints(routers=(router,)), window_s=60)
        canary = await provider.measure(CANARY)
        stable = await provider.measure(STABLE)
    assert canary.requests + stable.requests == REQUESTS
    assert 40 <= canary.requests <= 160  # 50/50 split, loose: the router's own tests pin it
    assert canary.errors == canary.requests  # every canary answer is a 500
    assert stable.errors == 0
    assert stable.latency_p99_ms is not None and stable.latency_p99_ms > 0
    now = datetime.now(UTC)
    result = judge(canary, stable, Thresholds(min_samples=20), at=now)
    assert (result.verdict, result.reason) == ("Failed", "ErrorRateTooHigh")

    policy = rollout.Policy(steps=(rollout.Step(50, 60.0), rollout.Step(100, 60.0)))
    state = rollout.RolloutState(
        stable="churn-v1",
        target="churn-v2",
        stage=rollout.Stage.CANARY,
        step=0,
        weight=50,
        stage_started_at=now - timedelta(seconds=60),
        progress_at=now - timedelta(seconds=60),
    )
    state, decisions = rollout.step(state, policy, "churn-v2", now=now, analysis=result)
    assert [(d.kind.value, d.reason) for d in decisions] == [("RolledBack", "ErrorRateTooHigh")]
    assert state.weight == 0 and rollout.traffic(state).stable_weight == 100


async def test_numbers_for_another_model_are_no_data(router: str) -> None:
    async with httpx.AsyncClient(timeout=5.0) as client:
        provider = HttpProvider(client, lambda t: Endpoints(routers=(router,)))
        other = await provider.measure(Target("default", "churn", "canary", "churn-v3"))
    assert other == Measurements()


async def test_a_dead_router_is_no_data() -> None:
    port = procs.free_port()  # nothing listens there
    async with httpx.AsyncClient(timeout=2.0) as client:
        provider = HttpProvider(client, lambda t: Endpoints(routers=(f"http://127.0.0.1:{port}",)))
        assert await provider.measure(CANARY) == Measurements()


def test_paths_match_the_data_plane() -> None:
    from driftline.serving.monitor import app as monitor_app

    assert analysis_http.VERDICT_PATH == monitor_app.VERDICT_PATH
    proxy_source = (
        Path(os.path.dirname(monitor_app.__file__)).parent / "router" / "proxy.py"
    ).read_text()
    assert f'request.path == "{analysis_http.STATS_PATH}"' in proxy_source
