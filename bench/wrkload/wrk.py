"""wrk, the load tool every Driftline benchmark uses: run it pinned to a core, parse its report.

Who uses it: ``bench/serving/run.py`` and ``bench/router/run.py`` (both import it after putting
``bench/`` on ``sys.path``), so the two reports measure with the same tool, the same flags and
the same parser: their figures are comparable side by side.

One thread (``-t1``), a fixed connection count per level, ``--latency`` for the percentiles, a 5 s
request timeout, and ``post.lua`` posting the JSON body read from ``$BODY_FILE``.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
POST_SCRIPT = HERE / "post.lua"
"""The wrk script: POST the file named by ``$BODY_FILE`` as JSON."""


@dataclass
class Level:
    """One load level: what wrk measured at one concurrency (latencies in milliseconds)."""

    concurrency: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: str
    p90_ms: float = float("nan")
    cpu_us_per_request: dict[str, float] = field(default_factory=dict)
    """Filled by benchmarks that read the processes' CPU time around the level."""


def _ms(value: str) -> float:
    """``"1.23ms"``, ``"850.00us"``, ``"1.2s"``, ``"1m"`` -> milliseconds (nan when unparsable)."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if not match:
        return float("nan")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[match.group(2)]
    return float(match.group(1)) * scale


def parse_wrk(output: str, concurrency: int) -> Level:
    """Requests/s, p50/p90/p99, non-2xx and socket errors from ``wrk --latency`` output (pure)."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    pct = {q: re.search(rf"^\s+{q}%\s+(\S+)", output, re.M) for q in (50, 90, 99)}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    return Level(
        concurrency=concurrency,
        requests_per_s=float(rps.group(1)) if rps else 0.0,
        p50_ms=_ms(pct[50].group(1)) if pct[50] else float("nan"),
        p90_ms=_ms(pct[90].group(1)) if pct[90] else float("nan"),
        p99_ms=_ms(pct[99].group(1)) if pct[99] else float("nan"),
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=errors.group(1).strip() if errors else "",
    )


def wrk(
    url: str,
    body: Path,
    concurrency: int,
    duration_s: float,
    core: int,
    script: Path = POST_SCRIPT,
) -> Level:
    """Run wrk on ``core`` against ``url`` for ``duration_s`` (at least 1 s) and parse it."""
    cmd = [
        "taskset",
        "-c",
        str(core),
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(duration_s))}s",
        "--latency",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env={**os.environ, "BODY_FILE": str(body)},
        timeout=duration_s + 60,
        check=True,
    ).stdout
    return parse_wrk(out, concurrency)
