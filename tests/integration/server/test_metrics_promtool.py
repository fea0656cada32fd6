"""The server's /metrics exposition passes `promtool check metrics` (Debian's promtool).

We test these aspects: every metric the server defines, after traffic of every outcome, records
and a batch, is accepted by promtool with no lint findings; promtool is provided by the make
target `.tools/promtool` (a dependency of `make test`), so under CI a missing promtool fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from driftline.serving.metrics import OUTCOMES, ServerMetrics

pytestmark = pytest.mark.integration


def _promtool(repo_root: Path) -> str:
    local = repo_root / ".tools" / "promtool"
    if local.is_file():
        return str(local)
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("promtool is missing: run `make .tools/promtool` (make test does)")
    pytest.skip("promtool is missing (run `make .tools/promtool`); required under CI=true")


def test_passing_promtool_check_metrics(repo_root: Path, registry: CollectorRegistry) -> None:
    metrics = ServerMetrics(registry, "churn", "3")
    for outcome in OUTCOMES:
        metrics.count(outcome)
    metrics.request_duration.observe(0.0004)
    metrics.batch_rows.observe(12)
    metrics.model_ready.set(1)
    metrics.records_sent.inc(5)
    metrics.records_dropped_queue_full.inc(2)
    metrics.records_dropped_send_failed.inc(1)
    metrics.watch(lambda: 3, lambda: 2)
    text = generate_latest(registry)
    for name in (
        b"driftline_server_requests_total",
        b"driftline_server_request_duration_seconds_bucket",
        b"driftline_server_batch_rows_bucket",
        b"driftline_server_queue_rows",
        b"driftline_server_inflight_requests",
        b"driftline_server_model_ready",
        b"driftline_server_records_sent_total",
        b"driftline_server_records_dropped_total",
    ):
        assert name in text
    result = subprocess.run(
        [_promtool(repo_root), "check", "metrics"],
        input=text,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip() == "", result.stdout.decode()
