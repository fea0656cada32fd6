"""The sidecar as a real process on 127.0.0.1: records in, verdicts, feedback, metrics out.

Covers: ``driftline profile`` then ``driftline monitor`` started by subprocess on a free port
(readiness awaited with a deadline, stopped by pid with SIGTERM and a clean exit); frames built
with ``records.encode`` over HTTP; a shifted canary drifts and the stable variant does not; a
malformed frame is answered 400 and the process stays up; delayed labels join; the metrics text
parses; a bad profile fails at start with exit code 2 and a message naming the file.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from driftline.serving import records

pytestmark = pytest.mark.integration

STARTUP_DEADLINE_S = 30.0
CLI = [sys.executable, "-m", "driftline.operator"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def profile_path(tmp_path_factory: pytest.TempPathFactory, quickstart_train: ModuleType) -> Path:
    qs = quickstart_train
    folder = tmp_path_factory.mktemp("sidecar")
    x, y = qs.make_dataset(5000, 0)
    np.savez(folder / "reference.npz", **{n: x[:, j] for j, n in enumerate(qs.FEATURES)}, label=y)
    out = folder / "profile.json"
    subprocess.run(
        [*CLI, "profile", "--reference", str(folder / "reference.npz"), "--exclude", "label",
         "--categorical", "region,plan", "--segment", "region", "--out", str(out)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return out


@contextlib.contextmanager
def sidecar(profile: Path, *flags: str) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [*CLI, "monitor", "--profile", str(profile), "--host", "127.0.0.1", "--port", str(port),
         *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"monitor exited {proc.returncode}: {proc.stderr.read()!r}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError("monitor not ready before the deadline")
            time.sleep(0.05)  # poll interval while waiting on the readiness condition
        yield base
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def _frame(qs: ModuleType, rows: int, seed: int, variant: str, shift: float = 0.0) -> bytes:
    x, _ = qs.make_dataset(rows, seed, shift=shift)
    score = np.random.default_rng(seed).random(rows)
    batch = records.RecordBatch(
        model="churn", version="v1", variant=variant,
        request_ids=tuple(f"{variant}-{seed}-{i}" for i in range(rows)),
        timestamps=np.full(rows, time.time()), latencies_ms=np.ones(rows), inputs={"input": x},
        outputs={"probabilities": np.column_stack([1 - score, score]).astype(np.float32)},
    )  # fmt: skip
    return records.encode(batch)


def test_sidecar_judges_variants_joins_labels_and_exports_metrics(
    profile_path: Path, quickstart_train: ModuleType
) -> None:
    qs = quickstart_train
    with sidecar(profile_path, "--window-rows", "2000", "--min-samples", "300") as base:
        client = httpx.Client(base_url=base, timeout=10.0)
        headers = {"content-type": records.MEDIA_TYPE}
        for seed in range(1, 5):
            r = client.post(records.RECORDS_PATH, content=_frame(qs, 500, seed, "stable"),
                            headers=headers)  # fmt: skip
            assert r.status_code == 202 and r.json()["rows"] == 500
            client.post(records.RECORDS_PATH, content=_frame(qs, 500, 50 + seed, "canary", 1.0),
                        headers=headers)  # fmt: skip
        bad = client.post(records.RECORDS_PATH, content=b"DLR1\xff\xff\xff\xff", headers=headers)
        assert bad.status_code == 400 and "malformed" in bad.json()["error"]
        verdict = client.get("/v1/verdict").json()
        assert verdict["variants"]["stable"]["verdict"]["status"] == "no_drift"
        canary = verdict["variants"]["canary"]["verdict"]
        assert canary["status"] == "drift" and "monthly_charges" in canary["drifted"]
        # The predicted class (argmax of probabilities) counted over the window, per variant.
        ones = sum(int((np.random.default_rng(s).random(500) > 0.5).sum()) for s in range(1, 5))
        counts = verdict["variants"]["stable"]["prediction_counts"]
        assert counts == {"0": 2000 - ones, "1": ones}
        assert sum(verdict["variants"]["canary"]["prediction_counts"].values()) == 2000
        fb = client.post("/v1/feedback", json={"feedback": [
            {"request_id": "stable-1-0", "label": 1}, {"request_id": "stable-1-1", "label": 0},
            {"request_id": "ghost", "label": 1}]})  # fmt: skip
        assert fb.json() == {"joined": 2, "unknown": 1, "late": 0, "duplicate": 0}
        state = client.get("/v1/window").json()
        assert state["format"] == "driftline.window/v1"
        assert state["variants"]["canary"]["whole"]["rows"] == 2000
        text = client.get("/metrics").text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        drift = {s.labels["variant"]: s.value for s in families["driftline_monitor_drift"].samples}
        assert drift == {"stable": 0.0, "canary": 1.0}
        frames = {s.labels["result"]: s.value for s in families["driftline_monitor_frames"].samples
                  if s.name.endswith("_total")}  # fmt: skip
        assert frames == {"accepted": 8.0, "malformed": 1.0}
        joined = [s.value for s in families["driftline_monitor_feedback"].samples
                  if s.labels.get("result") == "joined" and s.name.endswith("_total")]  # fmt: skip
        assert joined == [2.0]
        client.close()


def test_a_bad_profile_fails_at_start_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "profile.json"
    bad.write_text('{"format": "something else"}')
    result = subprocess.run(
        [*CLI, "monitor", "--profile", str(bad), "--port", str(_free_port())],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert str(bad) in result.stderr and "format" in result.stderr
