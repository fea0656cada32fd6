"""Run the drift benchmark: every system side by side on the same data, one process each.

Usage (from the repository root; ``make bench-drift`` creates the peer virtualenvs first)::

    python bench/drift/run.py [--out bench/results]

Writes ``drift.json`` (every raw figure) and ``drift.md`` (the table in the README) into
``--out``. Each system runs in its own process, pinned to one core, with BLAS/OpenMP threads set
to 1. Times: one-time ``fit`` (profile build or reference preparation) and the best (and median)
of at least 3 per-window runs (``common.window_timing``), as wall time and as CPU time of the
measuring thread (the CPU time is what to compare when the machine is shared: wall times include
waiting for the CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WORK = ROOT / "bench" / ".work" / "drift"
VENVS = ROOT / "bench" / ".venvs"

SYSTEMS = [
    ("driftline", ROOT / ".venv" / "bin" / "python", "sys_ours.py"),
    ("numpy+scipy loop", ROOT / ".venv" / "bin" / "python", "sys_plain.py"),
    ("evidently", VENVS / "evidently" / "bin" / "python", "sys_evidently.py"),
    ("nannyml", VENVS / "nannyml" / "bin" / "python", "sys_nannyml.py"),
    ("alibi-detect", VENVS / "alibi" / "bin" / "python", "sys_alibi.py"),
]
TIMEOUT_S = 1800


def run_system(name: str, python: Path, script: str) -> dict[str, object]:
    """One system's result object, or ``{"system", "error"}`` saying exactly what failed."""
    if not python.exists():
        return {"system": name, "error": f"{python} missing: run 'make bench-drift-venvs'"}
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = "1"
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [str(python), str(HERE / script), str(WORK)],
            capture_output=True, text=True, timeout=TIMEOUT_S, env=env, cwd=ROOT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"system": name, "error": f"timed out after {TIMEOUT_S} s"}
    if proc.returncode != 0:
        return {"system": name, "error": proc.stderr.strip().splitlines()[-5:]}
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - t0
    return result


def score(result: dict[str, object], truth: dict[str, list[str]]) -> dict[str, object]:
    """Which features a system flagged against the known truth."""
    flagged = set(result.get("flagged", []))
    real, negligible, stable = set(truth["real"]), set(truth["negligible"]), set(truth["stable"])
    return {
        "real_caught": sorted(flagged & real),
        "real_missed": sorted(real - flagged),
        "negligible_flagged": sorted(flagged & negligible),
        "false_alarms": sorted(flagged & stable),
        "meets_detection_target": flagged & (real | negligible | stable) == real,
    }


def markdown(results: list[dict[str, object]], meta: dict[str, object]) -> str:
    """The results table."""
    ours = next((r for r in results if r.get("system") == "driftline" and "error" not in r), None)
    lines = [
        "# Drift benchmark",
        "",
        f"Data: {meta['data']}. Machine: {meta['machine']}; load average "
        f"{meta['load_before']} before, {meta['load_after']} after. Command: `make bench-drift`.",
        "",
        "Per window: best and median of the runs (at least 3; more while they fit in 3 s, as "
        "timeit's autorange does); `CPU` is the measuring thread's CPU time.",
        "",
        "| system | fit s | per-window ms (wall, best) | per-window ms (CPU, best) | "
        "per-window ms (CPU, median) | runs | CPU x ours | real shifts "
        "caught (of 6) | negligible flagged | false alarms (of 48 stable) |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['system']} | error: {r['error']} | | | | | | | | |")
            continue
        d = r["detection"]
        assert isinstance(d, dict)
        ratio = (
            f"{float(r['window_cpu_s']) / float(ours['window_cpu_s']):.1f}x"
            if ours else "-"
        )  # fmt: skip
        missed = f" (missed {', '.join(d['real_missed'])})" if d["real_missed"] else ""
        alarms = ": " + ", ".join(d["false_alarms"]) if d["false_alarms"] else ""
        lines.append(
            f"| {r['system']} ({r['version']}) | {float(r['fit_s']):.2f} | "
            f"{1e3 * float(r['window_s']):.1f} | {1e3 * float(r['window_cpu_s']):.1f} | "
            f"{1e3 * float(r.get('window_cpu_median_s', float('nan'))):.1f} | "
            f"{r.get('window_runs', '-')} | {ratio} | "
            f"{len(d['real_caught'])}{missed} | {', '.join(d['negligible_flagged']) or 'no'} | "
            f"{len(d['false_alarms'])}{alarms} |"
        )
    lines += ["", "Rules:", ""]
    lines += [f"- {r['system']}: {r.get('config', '')}. {r.get('notes', '')}" for r in results
              if "error" not in r]  # fmt: skip
    alibi = next((r for r in results if r.get("system", "").startswith("Alibi")), None)
    if alibi and "flagged_bonferroni" in alibi:
        lines.append(f"- Alibi per-feature flags at the Bonferroni level (p < 0.05/55): "
                     f"{', '.join(alibi['flagged_bonferroni'])}.")  # fmt: skip
    if ours:
        ingest = ours["ingest"]
        stages = ours.get("stages_cpu_s", ours["stages_s"])
        assert isinstance(ingest, dict) and isinstance(stages, dict)
        http = ingest.get("http", {})
        lines += [
            "",
            "Driftline sidecar ingest (in-process `MonitorService.ingest`: decode frame, extract "
            f"{ingest['features']} features, count into windows, log for feedback; "
            f"{ingest['frame_rows']}-row frames): **{ingest['rows_per_s']:,.0f} rows/s wall, "
            f"{ingest['rows_per_cpu_s']:,.0f} rows per CPU-second**.",
            "",
            "Through a real `driftline monitor` process over HTTP (sequential 1000-row POSTs "
            f"from one client): {float(http.get('rows_per_s', 0)):,.0f} rows/s wall.",
            "",
            "Driftline per-window stages (CPU, best of 3): "
            + ", ".join(f"{k} {1e3 * v:.1f} ms" for k, v in stages.items())
            + ". With categoricals as numeric codes (the sidecar's input: codes in the model's "
            f"tensor): {1e3 * float(ours.get('window_codes_cpu_s', float('nan'))):.1f} ms CPU, "
            f"{1e3 * float(ours.get('window_codes_s', float('nan'))):.1f} ms wall per window.",
        ]
    return "\n".join(lines) + "\n"


def _rank(result: dict[str, object], order: list[str]) -> int:
    names = [n.lower() for n in order]
    system = str(result.get("system", "")).lower()
    return next((i for i, n in enumerate(names) if system.startswith(n.split()[0][:5])), 99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--only", default=None, help="comma-separated system names")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    import data

    data.write(WORK)
    truth = json.loads((WORK / "truth.json").read_text())
    load_before = [round(x, 2) for x in os.getloadavg()]
    results = []
    only = set(args.only.split(",")) if args.only else None
    for name, python, script in SYSTEMS:
        if only and name not in only:
            continue
        print(f"running {name} ...", flush=True)
        result = run_system(name, python, script)
        if "error" not in result:
            result["detection"] = score(result, truth)
        print(json.dumps(result)[:400], flush=True)
        results.append(result)
    meta = {
        "data": f"{data.N_REF:,} reference x {data.N_CUR:,} current rows, 50 numeric + 5 "
        f"categorical features (one with 200 levels), seed {data.SEED}",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, one core per system",
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "truth": truth,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    previous = args.out / "drift.json"
    if only and previous.exists():  # re-run of some systems: keep the others' last figures
        kept = [r for r in json.loads(previous.read_text())["results"] if r["system"] not in
                {r["system"] for r in results}]  # fmt: skip
        order = [n for n, _, _ in SYSTEMS]
        results = sorted(kept + results, key=lambda r: _rank(r, order))
        meta["partial_rerun"] = sorted(only)
    (args.out / "drift.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    (args.out / "drift.md").write_text(markdown(results, meta))
    print(f"wrote {args.out / 'drift.json'} and {args.out / 'drift.md'}")


if __name__ == "__main__":
    main()
