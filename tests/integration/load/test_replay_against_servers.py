"""``driftline load`` against real servers on 127.0.0.1.

We test these aspects: replaying the quickstart's traffic.csv (category names mapped) to a real
``driftline serve`` answers every request, bounded by count; a duration bound stops a paced run in
time; answers are counted per variant from the router's header and labels are posted after their
delay, batched per variant with that header (against an in-process stand-in for the router); the
command line prints a JSON summary and exits 1 when requests fail.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from driftline.serving import load
from driftline.serving.http import HttpServer, Request, Response

pytestmark = pytest.mark.integration

CATEGORIES = {
    "region": ("eu", "us", "apac", "latam", "africa"),
    "plan": ("basic", "pro", "enterprise"),
}


def _traffic(artifacts: Path) -> load.Dataset:
    return load.read_dataset(artifacts / "traffic.csv", categories=CATEGORIES)


async def test_replaying_traffic_to_a_real_server(served_v1, quickstart_artifacts: Path) -> None:  # type: ignore[no-untyped-def]
    plan = load.LoadPlan(
        url=f"{served_v1.url}/v2/models/churn/infer", rate=0.0, count=60, concurrency=4, batch=2
    )
    seen: list[load.Progress] = []
    summary = await load.run(plan, _traffic(quickstart_artifacts), progress=seen.append)
    assert summary.sent == 60
    assert summary.ok == 60, summary.last_error
    assert summary.errors == {}
    assert summary.by_variant == {load.DIRECT: 60}
    assert summary.p50_ms is not None and summary.p99_ms is not None
    assert 0 < summary.p50_ms <= summary.p99_ms
    assert seen and seen[-1].ok == 60


async def test_a_duration_bound_stops_a_paced_run(served_v1, quickstart_artifacts: Path) -> None:  # type: ignore[no-untyped-def]
    plan = load.LoadPlan(
        url=f"{served_v1.url}/v2/models/churn/infer", rate=20.0, duration_s=1.0, count=10_000
    )
    started = time.monotonic()
    summary = await load.run(plan, _traffic(quickstart_artifacts))
    assert time.monotonic() - started < 5.0
    assert 15 <= summary.sent <= 21
    assert summary.ok == summary.sent


class _FakeRouter:
    """Answers infer with a variant header (alternating) and records feedback posts."""

    def __init__(self) -> None:
        self.calls = 0
        self.feedback: list[tuple[str | None, dict[str, object], float]] = []
        self.answered_at: dict[str, float] = {}

    async def handle(self, request: Request) -> Response:
        if request.path == "/v1/feedback":
            doc = orjson.loads(request.body)
            self.feedback.append(
                (request.headers.get("x-driftline-variant"), doc, time.monotonic())
            )
            return Response(200, b'{"joined":1}')
        self.calls += 1
        variant = "canary" if self.calls % 2 else "stable"
        rid = orjson.loads(request.body)["id"]
        self.answered_at[rid] = time.monotonic()
        if self.calls == 3:
            return Response(503, b'{"error":"no healthy endpoint"}')
        return Response(200, b'{"outputs":[]}', headers=(("x-driftline-variant", variant),))


@pytest.fixture
async def fake_router() -> AsyncIterator[tuple[_FakeRouter, int]]:
    fake = _FakeRouter()
    server = HttpServer(fake.handle)
    await server.start("127.0.0.1", 0)
    try:
        yield fake, server.port
    finally:
        await server.shutdown(timeout_s=2.0)


async def test_counting_variants_and_posting_delayed_labels(
    fake_router: tuple[_FakeRouter, int], quickstart_artifacts: Path
) -> None:
    fake, port = fake_router
    data = _traffic(quickstart_artifacts)
    plan = load.LoadPlan(
        url=f"http://127.0.0.1:{port}/v2/models/churn/infer",
        rate=0.0,
        count=10,
        concurrency=1,
        feedback_url=f"http://127.0.0.1:{port}/v1/feedback",
        feedback_delay_s=0.3,
    )
    summary = await load.run(plan, data)
    assert summary.sent == 10
    assert summary.errors == {"HTTP 503": 1}
    assert summary.last_error == "HTTP 503: no healthy endpoint"
    assert summary.by_variant == {"canary": 4, "stable": 5}
    assert summary.feedback_sent == 9 and summary.feedback_failed == 0
    by_variant: dict[str | None, list[dict[str, object]]] = {}
    for variant, doc, posted_at in fake.feedback:
        items = doc["feedback"]
        assert isinstance(items, list)
        for item in items:
            # each label waited for its delay after its answer
            assert posted_at - fake.answered_at[item["request_id"]] >= 0.3 - 0.01
        by_variant.setdefault(variant, []).extend(items)
    assert sorted(by_variant) == ["canary", "stable"]
    assert len(by_variant["canary"]) == 4 and len(by_variant["stable"]) == 5
    assert data.labels is not None
    for items in by_variant.values():
        for item in items:
            index = int(str(item["request_id"]).rsplit("-", 1)[1])
            assert item["label"] == data.labels[index]


def test_the_command_prints_a_json_summary_and_fails_on_errors(
    served_v1,
    quickstart_artifacts: Path,  # type: ignore[no-untyped-def]
) -> None:
    args = [
        sys.executable,
        "-m",
        "driftline.operator",
        "load",
        str(quickstart_artifacts / "traffic.csv"),
        "--url",
        f"{served_v1.url}/v2/models/churn/infer",
        "--count",
        "20",
        "--rate",
        "0",
        "--categories",
        "region=eu,us,apac,latam,africa",
        "--categories",
        "plan=basic,pro,enterprise",
        "--json",
        "--quiet",
    ]
    done = subprocess.run(args, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    doc = orjson.loads(done.stdout)
    assert doc["sent"] == 20 and doc["ok"] == 20
    # without the mapping the category names are not numbers: a usage error naming the cell
    bad = subprocess.run([*args[:7], "--json"], capture_output=True, timeout=60, check=False)
    assert bad.returncode == 2
    assert b"column 'region'" in bad.stderr
    # a model that is not served: every request fails, exit code 1
    wrong = [a.replace("/models/churn/", "/models/nope/") for a in args]
    failed = subprocess.run(wrong, capture_output=True, timeout=60, check=False)
    assert failed.returncode == 1
    assert orjson.loads(failed.stdout)["errors"] == {"HTTP 404": 20}
