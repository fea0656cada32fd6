"""The Prometheus analysis provider against a real Prometheus scraping a real router on 127.0.0.1.

Fake OIP upstreams (stable answers, canary answers 500) sit behind a real ``driftline route``;
Debian's Prometheus server (``.tools/prometheus``, fetched by ``make``) scrapes the router's
``/metrics`` every second with the Deployment's labels attached. We test: the PromQL the provider
builds runs on a real server and yields the canary's and stable's requests, errors and p99; the
canary is judged ``ErrorRateTooHigh`` from those numbers; a Deployment with no series is no data.

Every process is started with the router tests' helpers, waited for with a deadline (readiness,
then data in Prometheus) and stopped by pid.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from real_router_env import CANARY, REQUESTS, STABLE, procs, send_requests, start_upstreams

from driftline.operator.analysis import Measurements, Target, Thresholds, judge
from driftline.operator.analysis_prometheus import PrometheusProvider

pytestmark = pytest.mark.integration

PROMETHEUS = Path(__file__).resolve().parents[3] / ".tools" / "prometheus"
DATA_DEADLINE_S = 30.0


@dataclass(frozen=True)
class Env:
    """The running Prometheus, the router it scrapes and the router's table file."""

    prometheus: str
    router: str
    table: Path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    if not PROMETHEUS.exists():
        pytest.skip(f"{PROMETHEUS} is missing: run `make .tools/prometheus` (make test does)")
    logdir = tmp_path_factory.mktemp("prom-analysis")
    stable, canary, path = start_upstreams(logdir)
    with procs.running(stable, canary):
        router = procs.start_router(logdir, path)
        with procs.running(router):
            config = {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "driftline-router",
                        "static_configs": [
                            {
                                "targets": [f"127.0.0.1:{router.port}"],
                                "labels": {
                                    "namespace": "default",
                                    "driftline_dev_deployment": "churn",
                                },
                            }
                        ],
                    }
                ],
            }
            (logdir / "prometheus.yml").write_text(yaml.safe_dump(config))
            port = procs.free_port()
            args = [
                str(PROMETHEUS),
                f"--config.file={logdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={logdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ]
            server = procs.start("prometheus", args, port, logdir, "/-/ready")
            with procs.running(server):
                _wait_for_a_scrape(server.url)  # the zero counters are in before traffic
                send_requests(router.url)
                yield Env(server.url, router.url, path)


@pytest.fixture
def prometheus(env: Env) -> str:
    return env.prometheus


def _wait_for_a_scrape(url: str) -> None:
    """Wait (with a deadline) until Prometheus has scraped the router once."""
    end = time.monotonic() + DATA_DEADLINE_S
    while time.monotonic() < end:
        answer = httpx.get(f"{url}/api/v1/query", params={"query": "up"}, timeout=2.0).json()
        if any(r["value"][1] == "1" for r in answer["data"]["result"]):
            return
        time.sleep(0.2)  # polling interval of a wait with a deadline
    raise AssertionError(f"Prometheus did not scrape the router within {DATA_DEADLINE_S}s")


async def test_promql_over_a_real_server_judges_the_canary(prometheus: str) -> None:
    async with httpx.AsyncClient(timeout=5.0) as client:
        provider = PrometheusProvider(client, prometheus, window_s=60)
        end = time.monotonic() + DATA_DEADLINE_S
        canary, stable = Measurements(), Measurements()
        while time.monotonic() < end:  # until a scrape after the traffic is in
            canary, stable = await provider.measure(CANARY), await provider.measure(STABLE)
            if canary.requests + stable.requests >= REQUESTS * 0.95:
                break
            await _pause()
    # increase() extrapolates to the window's edges: totals are close to, not exactly, REQUESTS.
    # The counters start at zero (no extrapolation back), but the last sample may be extrapolated
    # forward by up to 1.1 average scrape intervals; with only two samples in the window that is
    # up to 2.1x the true count (1.6x was seen on a loaded box).
    assert REQUESTS * 0.95 <= canary.requests + stable.requests <= REQUESTS * 2.1
    assert canary.requests >= 40 and stable.requests >= 40  # 50/50, loose
    assert canary.errors == canary.requests  # every canary answer is a 500
    assert stable.errors == 0
    assert stable.latency_p99_ms is not None and 0 < stable.latency_p99_ms < 10_000
    result = judge(canary, stable, Thresholds(min_samples=20), at=datetime.now(UTC))
    assert (result.verdict, result.reason) == ("Failed", "ErrorRateTooHigh")


async def test_a_deployment_without_series_is_no_data(prometheus: str) -> None:
    async with httpx.AsyncClient(timeout=5.0) as client:
        provider = PrometheusProvider(client, prometheus, window_s=60)
        other = await provider.measure(Target("default", "other", "canary", "x"))
    assert other == Measurements()


async def test_a_new_canary_model_is_judged_on_its_own_numbers(env: Env) -> None:
    """The canary's variant keeps its role but gets churn-v3: v3 starts from zero requests."""
    newer = Target(CANARY.namespace, CANARY.deployment, "canary", "churn-v3")
    table = yaml.safe_load(env.table.read_text())
    table["version"] += 1
    table["canary"]["model_version"] = newer.model
    env.table.write_text(yaml.safe_dump(table))
    end = time.monotonic() + DATA_DEADLINE_S
    while time.monotonic() < end:  # the router reloads its table file within a second
        stats = httpx.get(f"{env.router}/stats", timeout=2.0).json()
        if stats.get("variants", {}).get("canary", {}).get("model_version") == newer.model:
            break
        await _pause()
    else:
        raise AssertionError("the router did not load the new table")
    async with httpx.AsyncClient(timeout=5.0) as client:
        provider = PrometheusProvider(client, env.prometheus, window_s=60)
        assert await provider.measure(newer) == Measurements()  # nothing served by v3 yet
        send_requests(env.router)
        end = time.monotonic() + DATA_DEADLINE_S
        measured = Measurements()
        while time.monotonic() < end:  # until a scrape after the second batch is in
            measured = await provider.measure(newer)
            if measured.requests >= 40:
                break
            await _pause()
    # v2's REQUESTS/2 canary answers of the first batch are not v3's: at most this batch's
    # share (REQUESTS/2, extrapolated up to 2.1x by increase()), never both batches.
    assert 40 <= measured.requests <= REQUESTS * 2.1 / 2
    assert measured.errors == measured.requests


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.5)  # polling interval of a wait with a deadline (one scrape is 1 s)
