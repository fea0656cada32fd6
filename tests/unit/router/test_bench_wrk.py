"""The shared wrk parser of the benchmarks (bench/wrkload/wrk.py), on a real wrk 4.1 report."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

WRK_PY = Path(__file__).resolve().parents[3] / "bench" / "wrkload" / "wrk.py"

REPORT = """Running 5s test @ http://127.0.0.1:8080/v2/models/churn/infer
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.02ms    1.10ms  30.21ms   91.00%
    Req/Sec    12.81k   500.00    13.50k    80.00%
  Latency Distribution
     50%  850.00us
     75%    5.10ms
     90%    6.20ms
     99%    1.20s
  63995 requests in 5.00s, 15.20MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  12799.00
Transfer/sec:      3.04MB
"""


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_wrkload_wrk", WRK_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_parse_wrk_reads_throughput_percentiles_and_errors() -> None:
    level = _load().parse_wrk(REPORT, 64)
    assert level.concurrency == 64
    assert level.requests_per_s == 12799.0
    assert math.isclose(level.p50_ms, 0.85)
    assert math.isclose(level.p90_ms, 6.2)
    assert math.isclose(level.p99_ms, 1200.0)
    assert level.non_2xx == 7
    assert level.socket_errors == "connect 0, read 2, write 0, timeout 1"


def test_parse_wrk_on_garbage_gives_zero_and_nan_not_an_exception() -> None:
    level = _load().parse_wrk("wrk: connection refused", 1)
    assert level.requests_per_s == 0.0 and math.isnan(level.p50_ms) and level.non_2xx == 0


def test_both_benchmarks_use_the_shared_runner() -> None:
    bench = WRK_PY.parents[1]
    for run in (bench / "router" / "run.py", bench / "serving" / "run.py"):
        text = run.read_text()
        assert "from wrkload.wrk import" in text, run
        assert "def parse_wrk" not in text, run
