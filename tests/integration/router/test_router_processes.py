"""The router as a real process in front of fake OIP upstream processes, all on 127.0.0.1.

We test: the split with variant/version headers and an unchanged upstream answer; sticky
assignment; upstream 4xx passed through unchanged; a failing or slow shadow never touching the
answer, and shadow comparison in /stats and /metrics; ejection of a dead endpoint with a retry on
another; a variant with no healthy endpoint falling back to stable (counted); reload of the
watched file live within 2 s with no dropped request under a bounded load loop, and a bad table
rejected while the last good one stays; the admin endpoint; feedback forwarded to the monitor of
the variant that answered, and to the shadow's monitor too when the request was mirrored; the live
/metrics passing `promtool check metrics`; a real OIP client (tritonclient) through the router.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton
import yaml

from driftline.serving import headers as hdr
from driftline.serving.router.table import parse_table, pick, sticky_draw

from .procs import Proc, free_port, running, start_fake, start_router

pytestmark = pytest.mark.integration

DEADLINE_S = 10.0
INFER = "/v2/models/churn/infer"
BODY = orjson.dumps(
    {"id": "r1", "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [0.1] * 6}]}
)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("router-logs")


@pytest.fixture(scope="module")
def fakes(logdir: Path) -> Iterator[dict[str, Proc]]:
    procs = {
        "stable": start_fake(logdir, "stable", "--version", "1", "--label", "0"),
        "canary": start_fake(logdir, "canary", "--version", "2", "--label", "1"),
        "shadow_same": start_fake(
            logdir, "shadow_same", "--version", "3", "--label", "0", "--score", "0.35"
        ),
        "shadow_slow": start_fake(logdir, "shadow_slow", "--version", "3", "--delay-ms", "3000"),
        "shadow_failing": start_fake(logdir, "shadow_failing", "--version", "3", "--status", "500"),
        "bad_request": start_fake(logdir, "bad_request", "--version", "2", "--status", "400"),
        "monitor_canary": start_fake(logdir, "monitor_canary"),
    }
    with running(*procs.values()):
        yield procs


def _write(path: Path, table: dict[str, object]) -> None:
    """Write atomically (temp + rename), as the operator and kubectl do."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(table))
    os.replace(tmp, path)


def _table(
    stable: list[str], canary: list[str] | None = None, canary_weight: int = 0, **extra: object
) -> dict[str, object]:
    table: dict[str, object] = {
        "version": 1,
        "stable": {"model_version": "1", "weight": 100 - canary_weight, "endpoints": stable},
        **extra,
    }
    if canary is not None:
        table["canary"] = {"model_version": "2", "weight": canary_weight, "endpoints": canary}
    return table


@pytest.fixture
def router_for(tmp_path: Path, logdir: Path) -> Iterator[object]:
    started: list[Proc] = []

    def start(table: dict[str, object], *, admin: bool = False, **env: str) -> Proc:
        path = tmp_path / "table.yaml"
        _write(path, table)
        environment = {f"DRIFTLINE_ROUTE_{k.upper()}": v for k, v in env.items()}
        proc = start_router(logdir, path, admin=admin, env=environment)
        proc.extra["table_path_id"] = len(started)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


def _stats(router: Proc) -> dict[str, object]:
    response = httpx.get(router.url + "/stats", timeout=5)
    assert response.status_code == 200
    doc = orjson.loads(response.content)
    assert isinstance(doc, dict)
    return doc


def _wait_for(predicate: object, what: str, deadline_s: float = DEADLINE_S) -> None:
    assert callable(predicate)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)  # poll interval of a condition wait bounded by the deadline
    raise AssertionError(f"timed out waiting for {what}")


def test_splitting_with_headers_and_unchanged_answers(fakes: dict[str, Proc], router_for) -> None:
    router = router_for(_table([fakes["stable"].url], [fakes["canary"].url], canary_weight=50))
    seen = {"stable": 0, "canary": 0}
    with httpx.Client(base_url=router.url, timeout=5) as client:
        for _ in range(200):
            response = client.post(INFER, content=BODY)
            assert response.status_code == 200
            variant = response.headers[hdr.VARIANT]
            seen[variant] += 1
            version = {"stable": "1", "canary": "2"}[variant]
            assert response.headers[hdr.MODEL_VERSION] == version
            assert response.headers[hdr.ROUTE_VERSION] == "1"
            assert response.headers["x-upstream-version"] == version  # upstream headers kept
            doc = orjson.loads(response.content)
            assert doc["model_version"] == version and doc["id"] == "r1"
    assert seen["stable"] > 50 and seen["canary"] > 50
    stats = _stats(router)
    variants = stats["variants"]
    assert isinstance(variants, dict)
    assert variants["stable"]["requests"] + variants["canary"]["requests"] == 200
    assert variants["canary"]["requests"] == seen["canary"]
    assert variants["stable"]["latency_ms"]["p50"] > 0
    # the upstream saw the variant header the router added
    last = httpx.get(fakes["canary"].url + "/_seen").json()["last"]
    assert last["headers"][hdr.VARIANT] == "canary"


def test_sticky_users_keep_their_variant(fakes: dict[str, Proc], router_for) -> None:
    table = _table(
        [fakes["stable"].url], [fakes["canary"].url], canary_weight=30, sticky_header="x-user-id"
    )
    router = router_for(table)
    parsed = parse_table(yaml.safe_dump(table))
    with httpx.Client(base_url=router.url, timeout=5) as client:
        for user in (f"user-{i}" for i in range(20)):
            expected = pick(parsed, sticky_draw(user))
            for _ in range(3):
                response = client.post(INFER, content=BODY, headers={"X-User-Id": user})
                assert response.headers[hdr.VARIANT] == expected


def test_upstream_4xx_passes_through_unchanged(fakes: dict[str, Proc], router_for) -> None:
    router = router_for(_table([fakes["bad_request"].url]))
    direct = httpx.post(fakes["bad_request"].url + INFER, content=BODY, timeout=5)
    through = httpx.post(router.url + INFER, content=BODY, timeout=5)
    assert through.status_code == direct.status_code == 400
    assert through.content == direct.content
    assert through.headers[hdr.VARIANT] == "stable"
    stable = _stats(router)["variants"]["stable"]  # type: ignore[index]
    assert (stable["client_errors"], stable["errors"]) == (1, 0)


@pytest.mark.parametrize("shadow", ["shadow_slow", "shadow_failing"])
def test_a_slow_or_failing_shadow_never_touches_the_answer(
    fakes: dict[str, Proc], router_for, shadow: str
) -> None:
    table = _table(
        [fakes["stable"].url],
        shadow={"model_version": "3", "mirror_percent": 100, "endpoints": [fakes[shadow].url]},
    )
    router = router_for(table, shadow_timeout_s="1.0")
    direct = httpx.post(fakes["stable"].url + INFER, content=BODY, timeout=5)
    with httpx.Client(base_url=router.url, timeout=5) as client:
        for _ in range(5):
            started = time.monotonic()
            response = client.post(INFER, content=BODY)
            elapsed = time.monotonic() - started
            assert response.status_code == 200
            assert response.content == direct.content
            assert response.headers[hdr.VARIANT] == "stable"
            # the slow shadow takes 3 s and times out after 1 s; the client waits for neither
            assert elapsed < 0.9
    key = "shadow_timeouts" if shadow == "shadow_slow" else "shadow_errors"

    def failed_all() -> bool:
        pairs = _stats(router)["shadow"]
        assert isinstance(pairs, list)
        return bool(pairs[0][key] == 5)

    _wait_for(failed_all, f"5 {key}")
    pair = _stats(router)["shadow"][0]  # type: ignore[index]
    assert pair["compared"] == 0 and pair["class_agreement"] is None


def test_shadow_answers_are_compared(fakes: dict[str, Proc], router_for) -> None:
    table = _table(
        [fakes["stable"].url],
        [fakes["canary"].url],
        canary_weight=50,
        shadow={
            "model_version": "3",
            "mirror_percent": 100,
            "endpoints": [fakes["shadow_same"].url],
        },
    )
    router = router_for(table)
    sent = {"stable": 0, "canary": 0}
    with httpx.Client(base_url=router.url, timeout=5) as client:
        for _ in range(40):
            sent[client.post(INFER, content=BODY).headers[hdr.VARIANT]] += 1
        # metadata and health are not mirrored
        client.get("/v2/models/churn")

    def all_compared() -> bool:
        pairs = _stats(router)["shadow"]
        assert isinstance(pairs, list)
        return sum(p["compared"] for p in pairs) == 40

    _wait_for(all_compared, "40 comparisons")
    pairs = {p["primary"]: p for p in _stats(router)["shadow"]}  # type: ignore[union-attr]
    # stable answers label 0, canary label 1, the shadow label 0; scores 0.25 vs 0.35
    assert pairs["stable"]["compared"] == sent["stable"]
    assert pairs["stable"]["class_agreement"] == 1.0
    assert pairs["canary"]["class_agreement"] == 0.0
    assert pairs["stable"]["score_mean_abs_diff"] == pytest.approx(0.1, abs=1e-6)
    metrics = httpx.get(router.url + "/metrics").text
    agreement = 'driftline_router_shadow_agreement_ratio{primary="stable",shadow="shadow"'
    assert f'{agreement},version="3"}} 1.0' in metrics  # labelled with the shadow's model
    assert "driftline_router_mirror_percent 100.0" in metrics


def test_a_dead_endpoint_is_ejected_and_the_request_retried(
    fakes: dict[str, Proc], router_for
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    router = router_for(_table([dead, fakes["stable"].url]))
    with httpx.Client(base_url=router.url, timeout=5) as client:
        for _ in range(10):
            assert client.post(INFER, content=BODY).status_code == 200
    metrics = httpx.get(router.url + "/metrics").text
    assert (
        f'driftline_router_upstream_ejections_total{{endpoint="{dead}",variant="stable"}} 1.0'
        in (metrics)
    )
    assert 'driftline_router_upstream_retries_total{variant="stable"} 1.0' in metrics
    assert 'driftline_router_healthy_endpoints{variant="stable"} 1.0' in metrics
    assert _stats(router)["variants"]["stable"]["errors"] == 0  # type: ignore[index]


def test_a_variant_without_healthy_endpoints_gives_its_share_to_stable(
    fakes: dict[str, Proc], router_for
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    router = router_for(_table([fakes["stable"].url], [dead], canary_weight=100))
    with httpx.Client(base_url=router.url, timeout=5) as client:
        first = client.post(INFER, content=BODY)  # connect fails: ejected, answered 503
        assert first.status_code == 503 and first.headers[hdr.VARIANT] == "canary"
        for _ in range(5):
            response = client.post(INFER, content=BODY)
            assert response.status_code == 200
            assert response.headers[hdr.VARIANT] == "stable"
    canary = _stats(router)["variants"]["canary"]  # type: ignore[index]
    assert canary["fallbacks"] == 5 and canary["errors"] == 1
    assert (
        'driftline_router_fallbacks_total{variant="canary"} 5.0'
        in httpx.get(router.url + "/metrics").text
    )


def test_reloading_the_file_is_live_within_2s_without_dropping_requests(
    fakes: dict[str, Proc], router_for, tmp_path: Path
) -> None:
    router = router_for(_table([fakes["stable"].url], [fakes["canary"].url], canary_weight=0))
    results: list[tuple[float, int, str]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=router.url, timeout=5) as client:
            end = time.monotonic() + 20.0
            for _ in range(5000):  # bounded in count and time
                if stop.is_set() or time.monotonic() > end:
                    return
                response = client.post(INFER, content=BODY)
                results.append(
                    (time.monotonic(), response.status_code, response.headers.get(hdr.VARIANT, ""))
                )

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        loops = [pool.submit(load) for _ in range(2)]
        _wait_for(lambda: len(results) >= 20, "load to start")
        changed_at = time.monotonic()
        _write(
            tmp_path / "table.yaml",
            {
                **_table([fakes["stable"].url], [fakes["canary"].url], canary_weight=100),
                "version": 2,
            },
        )
        _wait_for(
            lambda: any(t > changed_at and v == "canary" for t, _, v in results),
            "the canary to answer",
        )
        live_at = min(t for t, _, v in results if t > changed_at and v == "canary")
        # a bad table is rejected whole; the last good one stays live
        (tmp_path / "table.yaml").write_text("version: 3\nstable: {weight: 50}\n")
        _wait_for(
            lambda: (
                'driftline_router_route_table_reloads_total{result="rejected",source="file"} 1.0'
                in httpx.get(router.url + "/metrics").text
            ),
            "the bad table to be rejected",
        )
        mark = len(results)
        _wait_for(lambda: len(results) >= mark + 20, "more requests after the bad table")
        stop.set()
        for future in loops:
            future.result()
    assert live_at - changed_at <= 2.0
    assert all(status == 200 for _, status, _ in results), "a request failed during reload"
    assert all(v == "canary" for _, _, v in results[mark:])
    assert _stats(router)["table"]["version"] == 2  # type: ignore[index]


def test_admin_endpoint_gets_and_puts_the_table(fakes: dict[str, Proc], router_for) -> None:
    router = router_for(_table([fakes["stable"].url]), admin=True)
    admin = f"http://127.0.0.1:{router.extra['admin']}"
    current = httpx.get(admin + "/table").json()
    assert current["stable"]["endpoints"] == [fakes["stable"].url]
    bad = httpx.put(
        admin + "/table",
        content=b"version: 2\nstable: {model_version: '1', weight: 90, endpoints: ['h:1']}\n",
    )
    assert bad.status_code == 422
    assert "must sum to 100" in bad.json()["error"]
    new = _table([fakes["stable"].url], [fakes["canary"].url], canary_weight=100)
    new["version"] = 5
    good = httpx.put(admin + "/table", content=orjson.dumps(new))
    assert good.status_code == 200 and good.json()["version"] == 5
    response = httpx.post(router.url + INFER, content=BODY)
    assert response.headers[hdr.VARIANT] == "canary"
    assert httpx.get(router.url + "/table").status_code == 404  # not on the public port


def test_feedback_goes_to_the_monitor_of_the_variant_that_answered(
    fakes: dict[str, Proc], router_for
) -> None:
    table = _table([fakes["stable"].url], [fakes["canary"].url], canary_weight=100)
    table["canary"]["monitor"] = fakes["monitor_canary"].url  # type: ignore[index]
    router = router_for(table)
    answer = httpx.post(router.url + INFER, content=BODY)
    variant = answer.headers[hdr.VARIANT]
    labels = orjson.dumps({"labels": [{"id": "r1", "label": 1}]})
    response = httpx.post(
        router.url + "/v1/feedback", content=labels, headers={hdr.VARIANT: variant}
    )
    assert response.status_code == 202
    seen = httpx.get(fakes["monitor_canary"].url + "/_seen").json()
    assert seen["counts"]["/v1/feedback"] >= 1 and seen["last"]["body"] == labels.decode()
    missing = httpx.post(router.url + "/v1/feedback", content=labels)
    assert missing.status_code == 400 and hdr.VARIANT in missing.json()["error"]
    no_monitor = httpx.post(
        router.url + "/v1/feedback", content=labels, headers={hdr.VARIANT: "stable"}
    )
    assert no_monitor.status_code == 422


def test_a_real_oip_client_does_not_notice_the_router(fakes: dict[str, Proc], router_for) -> None:
    router = router_for(_table([fakes["stable"].url]))
    client = triton.InferenceServerClient(url=f"127.0.0.1:{router.port}")
    try:
        assert client.is_server_live() and client.is_server_ready()
        inputs = triton.InferInput("x", [2, 3], "FP32")
        inputs.set_data_from_numpy(np.full((2, 3), 0.1, dtype=np.float32), binary_data=False)
        outputs = [triton.InferRequestedOutput("label", binary_data=False)]
        result = client.infer("churn", [inputs], outputs=outputs)
        assert result.as_numpy("label").tolist() == [0, 0]
    finally:
        client.close()


def test_feedback_for_a_mirrored_request_also_reaches_the_shadows_monitor(
    fakes: dict[str, Proc], router_for
) -> None:
    # Two fakes stand in for the monitors: monitor_canary for stable, the canary fake (which
    # accepts feedback too) for the shadow; /_seen tells them apart.
    stable_monitor, shadow_monitor = fakes["monitor_canary"], fakes["canary"]
    table = _table(
        [fakes["stable"].url],
        shadow={
            "model_version": "3",
            "mirror_percent": 100,
            "endpoints": [fakes["shadow_same"].url],
            "monitor": shadow_monitor.url,
        },
    )
    table["stable"]["monitor"] = stable_monitor.url  # type: ignore[index]
    router = router_for(table, admin=True)

    def fed(monitor: Proc) -> int:
        return int(httpx.get(monitor.url + "/_seen").json()["counts"].get("/v1/feedback", 0))

    before = {"stable": fed(stable_monitor), "shadow": fed(shadow_monitor)}
    answer = httpx.post(router.url + INFER, content=BODY)
    assert answer.status_code == 200
    assert answer.headers[hdr.VARIANT] == "stable" and answer.headers[hdr.MIRRORED] == "shadow"
    labels = orjson.dumps({"feedback": [{"request_id": "r1", "label": 0}]})
    echoed = {hdr.VARIANT: "stable", hdr.MIRRORED: answer.headers[hdr.MIRRORED]}
    response = httpx.post(router.url + "/v1/feedback", content=labels, headers=echoed)
    assert response.status_code == 202
    assert response.headers[hdr.SHADOW_FEEDBACK] == "forwarded"
    assert fed(stable_monitor) == before["stable"] + 1
    assert fed(shadow_monitor) == before["shadow"] + 1
    last = httpx.get(shadow_monitor.url + "/_seen").json()["last"]
    assert last["body"] == labels.decode() and last["headers"][hdr.VARIANT] == "shadow"
    assert hdr.MIRRORED not in last["headers"]
    # Without the echoed header (the request was not mirrored) only stable's monitor gets it.
    plain = httpx.post(router.url + "/v1/feedback", content=labels, headers={hdr.VARIANT: "stable"})
    assert plain.status_code == 202 and hdr.SHADOW_FEEDBACK not in plain.headers
    assert fed(shadow_monitor) == before["shadow"] + 1
    metrics = httpx.get(router.url + "/metrics").text
    assert 'driftline_router_feedback_total{outcome="forwarded",variant="shadow"} 1.0' in metrics
    # A table whose shadow has no monitor: the labels still reach stable's monitor; the header
    # says why the shadow got none.
    table["shadow"].pop("monitor")  # type: ignore[attr-defined]
    put = httpx.put(f"http://127.0.0.1:{router.extra['admin']}/table", content=orjson.dumps(table))
    assert put.status_code == 200
    response = httpx.post(router.url + "/v1/feedback", content=labels, headers=echoed)
    assert response.status_code == 202 and response.headers[hdr.SHADOW_FEEDBACK] == "no_monitor"


def test_router_metrics_pass_promtool_check_metrics(
    fakes: dict[str, Proc], router_for, repo_root: Path
) -> None:
    """The live /metrics of a router that saw every kind of traffic passes `promtool check
    metrics` with no findings (promtool comes from `make .tools/promtool`, a dependency of
    `make test`)."""
    dead = f"http://127.0.0.1:{free_port()}"
    table = _table(
        [dead, fakes["stable"].url],
        [fakes["bad_request"].url],
        canary_weight=50,
        shadow={
            "model_version": "3",
            "mirror_percent": 100,
            "endpoints": [fakes["shadow_same"].url],
        },
    )
    table["canary"]["monitor"] = fakes["monitor_canary"].url  # type: ignore[index]
    router = router_for(table, admin=True)
    with httpx.Client(base_url=router.url, timeout=5) as client:
        for _ in range(20):
            client.post(INFER, content=BODY)
        client.post("/v1/feedback", content=b"{}", headers={hdr.VARIANT: "canary"})
    admin = f"http://127.0.0.1:{router.extra['admin']}"
    assert httpx.put(admin + "/table", content=b"version: x").status_code == 422
    _wait_for(lambda: _stats(router)["shadow"][0]["compared"] > 0, "a shadow comparison")  # type: ignore[index]
    text = httpx.get(router.url + "/metrics").content
    for name in (
        b"driftline_router_requests_total",
        b"driftline_router_request_duration_seconds_bucket",
        b"driftline_router_upstream_ejections_total",
        b"driftline_router_shadow_agreement_ratio",
        b"driftline_router_route_table_reloads_total",
        b"driftline_router_route_table_watch_errors_total",
        b"driftline_router_feedback_total",
    ):
        assert name in text
    local = repo_root / ".tools" / "promtool"
    promtool = str(local) if local.is_file() else shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing: run `make .tools/promtool` (make test does)")
        pytest.skip("promtool is missing (run `make .tools/promtool`); required under CI=true")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip() == "", result.stdout.decode()


def test_a_shadow_that_cannot_keep_up_is_shed_not_waited_for(
    fakes: dict[str, Proc], router_for
) -> None:
    """Copies over the in-flight bound are dropped (counted); the client never waits."""
    table = _table(
        [fakes["stable"].url],
        shadow={
            "model_version": "3",
            "mirror_percent": 100,
            "endpoints": [fakes["shadow_slow"].url],  # answers after 3 s
        },
    )
    router = router_for(table, shadow_max_inflight="2", shadow_timeout_s="8")
    with httpx.Client(base_url=router.url, timeout=5) as client:
        for _ in range(6):
            started = time.monotonic()
            response = client.post(INFER, content=BODY)
            assert response.status_code == 200
            assert time.monotonic() - started < 0.9  # the 3 s shadow is never waited for
    pair = _stats(router)["shadow"][0]  # type: ignore[index]
    # two copies in flight (the bound), four shed, all while the shadow still works on the two
    assert (pair["mirrored"], pair["dropped"]) == (2, 4)
    assert pair["compared"] + pair["skipped"] + pair["shadow_timeouts"] == 0
    metrics = httpx.get(router.url + "/metrics").text
    assert (
        'driftline_router_shadow_requests_total{outcome="dropped",primary="stable",shadow="shadow",'
        'version="3"} 4.0' in metrics
    )


def test_comparisons_are_sampled_under_the_budget(fakes: dict[str, Proc], router_for) -> None:
    """Over the per-second budget, answered copies are counted as skipped, not compared."""
    table = _table(
        [fakes["stable"].url],
        shadow={
            "model_version": "3",
            "mirror_percent": 100,
            "endpoints": [fakes["shadow_same"].url],
        },
    )
    router = router_for(table, shadow_compare_per_s="1")
    started = time.monotonic()
    with httpx.Client(base_url=router.url, timeout=5) as client:
        for _ in range(10):
            assert client.post(INFER, content=BODY).status_code == 200
    seconds = time.monotonic() - started

    def all_counted() -> bool:
        pair = _stats(router)["shadow"][0]  # type: ignore[index]
        return bool(pair["compared"] + pair["skipped"] == 10)

    _wait_for(all_counted, "10 copies compared or skipped")
    pair = _stats(router)["shadow"][0]  # type: ignore[index]
    assert 1 <= pair["compared"] <= int(seconds) + 2  # at most one per second boundary crossed
    assert pair["class_agreement"] == 1.0  # estimated from the compared pairs
