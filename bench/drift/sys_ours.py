"""Driftline: profile once, then per window encode + count + statistics + verdict; and ingest.

Run with Driftline's virtualenv: ``python bench/drift/sys_ours.py DATA_DIR``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import emit, load, pin_one_core, timed, window_timing

from driftline.serving import records
from driftline.serving.drift import decide, stats
from driftline.serving.drift.evaluate import evaluate_table
from driftline.serving.drift.profile import (
    Profile,
    Source,
    build_profile,
    encode_table,
    histograms,
    profile_to_json,
)
from driftline.serving.monitor.service import MonitorConfig, MonitorService
from driftline.serving.monitor.window import WindowSpec

INGEST_FEATURES = 20
INGEST_FRAME_ROWS = 1000
INGEST_FRAMES = 300


def ingest_rate(ref: dict[str, np.ndarray]) -> dict[str, float]:
    """Rows/s of MonitorService.ingest on 20-feature frames (decode, extract, windows, log)."""
    names = [f"n{j:02d}" for j in range(17)]
    cats = ["c00", "c01", "c02"]
    table: dict[str, np.ndarray] = {n: ref[n] for n in names}
    for c in cats:  # the model sees categorical codes as floats
        _, codes = np.unique(ref[c], return_inverse=True)
        table[c] = codes.astype(np.float64)
    cols = names + cats
    sources = {n: Source("input", "input", j) for j, n in enumerate(cols)}
    profile = build_profile(table, "sha", categorical=cats, sources=sources)
    matrix = np.column_stack([table[c] for c in cols]).astype(np.float32)
    rng = np.random.default_rng(1)
    frames = []
    for i in range(INGEST_FRAMES):
        rows = matrix[rng.integers(0, len(matrix), INGEST_FRAME_ROWS)]
        score = rng.random(INGEST_FRAME_ROWS).astype(np.float32)
        batch = records.RecordBatch(
            model="m", version="v1", variant="stable",
            request_ids=tuple(f"r{i}-{k}" for k in range(INGEST_FRAME_ROWS)),
            timestamps=np.full(INGEST_FRAME_ROWS, 1000.0 + i),
            latencies_ms=np.ones(INGEST_FRAME_ROWS),
            inputs={"input": rows}, outputs={"probabilities": np.column_stack([1 - score, score])},
        )  # fmt: skip
        frames.append(records.encode(batch))
    cfg = MonitorConfig(window=WindowSpec(rows=10_000))
    http = ingest_http(profile, frames)

    def run() -> int:
        svc = MonitorService(profile, cfg, clock=lambda: 2000.0, rng=np.random.default_rng(0))
        return sum(svc.ingest(f).rows for f in frames)

    total, wall, cpu = timed(run)
    assert total == INGEST_FRAMES * INGEST_FRAME_ROWS
    return {"rows": total, "rows_per_s": total / wall, "rows_per_cpu_s": total / cpu,
            "frame_rows": INGEST_FRAME_ROWS, "features": INGEST_FEATURES, "http": http}  # fmt: skip


def ingest_http(profile: Profile, frames: list[bytes]) -> dict[str, object]:
    """Rows/s through a real ``driftline monitor`` process (its own core), frames POSTed in turn."""
    folder = Path(tempfile.mkdtemp(prefix="drift-bench-"))
    (folder / "profile.json").write_text(json.dumps(profile_to_json(profile)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "driftline.operator", "monitor", "--profile",
         str(folder / "profile.json"), "--port", str(port), "--window-rows", "10000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    if (os.cpu_count() or 1) > 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(proc.pid, {0})  # the sidecar on core 0, this client on the last
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                return {"error": f"monitor did not start: {proc.stderr.read()[-300:]!r}"}
            time.sleep(0.05)
        headers = {"content-type": records.MEDIA_TYPE}
        with httpx.Client(base_url=base, timeout=30) as client:
            t0 = time.perf_counter()
            rows = sum(client.post(records.RECORDS_PATH, content=f, headers=headers).json()["rows"]
                       for f in frames)  # fmt: skip
            wall = time.perf_counter() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return {
        "rows": rows,
        "rows_per_s": rows / wall,
        "client_cores": cores,
        "note": "sequential POSTs of 1000-row frames over keep-alive HTTP (httpx client)",
    }


def main() -> None:
    pin_one_core()
    folder = Path(sys.argv[1])
    ref, cur, truth = load(folder)
    cats = truth["categorical"]
    profile, fit_wall, fit_cpu = timed(lambda: build_profile(ref, "sha", categorical=cats), 1)
    cfg = decide.DecisionConfig()
    evaluation, timing = window_timing(lambda: evaluate_table(profile, cur, cfg))
    # Where the time goes, per stage (best of 3 each).
    (numeric, codes), enc_w, enc_c = timed(lambda: encode_table(profile.layout, cur))
    hists, hist_w, hist_c = timed(lambda: histograms(profile.layout, numeric, codes))
    st, cmp_w, cmp_c = timed(lambda: stats.compare(profile.layout, profile.reference, hists[0]))
    _, dec_w, dec_c = timed(lambda: decide.decide(profile.layout, [decide.Scope(st, 10_000)], cfg))
    # The sidecar's case: categoricals arrive as numeric codes inside the model's input tensor.
    coded = dict(cur)
    for c in cats:
        spec = profile.layout.categorical[[s.name for s in profile.layout.categorical].index(c)]
        lookup = {k: float(i) for i, k in enumerate(spec.categories)}
        coded[c] = np.array([lookup.get(v, -1.0) for v in cur[c].tolist()])
    coded_profile = build_profile(
        {k: (np.array([float(profile.layout.categorical[[s.name for s in
              profile.layout.categorical].index(k)].categories.index(v)) for v in ref[k].tolist()])
              if k in cats else v) for k, v in ref.items()},
        "sha", categorical=cats,
    )  # fmt: skip
    _, code_w, code_c = timed(lambda: evaluate_table(coded_profile, coded, cfg))
    emit(
        system="driftline",
        version="0.1.0",
        config="W1/sd >= 0.1 (numeric), JS >= 0.1 (categorical) AND KS/chi2 p < 0.05 Bonferroni",
        fit_s=fit_wall,
        fit_cpu_s=fit_cpu,
        **timing,
        stages_s={"encode": enc_w, "count": hist_w, "statistics": cmp_w, "decide": dec_w},
        stages_cpu_s={"encode": enc_c, "count": hist_c, "statistics": cmp_c, "decide": dec_c},
        window_codes_s=code_w,
        window_codes_cpu_s=code_c,
        flagged=sorted(evaluation.verdict.drifted),
        ingest=ingest_rate(ref),
        notes="categoricals arrive as strings and are encoded inside the per-window time",
    )


if __name__ == "__main__":
    main()
