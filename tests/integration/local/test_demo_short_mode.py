"""``make demo`` in its short mode (what CI runs): the quickstart narrated end to end.

We test these aspects: the demo script exits 0; its summary table says v1 was deployed, v2
promoted, v3 rolled back with the shadow-agreement reason and the input shift seen as drift
(over a full window of shifted rows); it
prints where to look; when it ends no process it started is left (every pid recorded in the
state directory is gone, and ``up`` cleared its record).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from driftline.operator.local.state import StateDir
from driftline.operator.local.supervisor import kill_recorded, pid_alive

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_the_demo_runs_in_short_mode(repo_root: Path, tmp_path: Path) -> None:
    state = StateDir(tmp_path / "demo")
    try:
        done = subprocess.run(
            [
                sys.executable,
                str(repo_root / "examples" / "quickstart" / "demo.py"),
                "--short",
                "--state-dir",
                str(state.root),
            ],
            capture_output=True,
            text=True,
            timeout=280,
            check=False,
        )
        out = done.stdout
        assert done.returncode == 0, out[-4000:] + done.stderr[-2000:]
        table = out[out.index("What happened") : out.index("Where to look")]
        assert "deploy churn-v1" in table and "Healthy" in table
        assert "roll out churn-v2" in table and "Promoted" in table
        assert "roll out churn-v3" in table and "RolledBack (ShadowAgreementTooLow)" in table
        # the verdict before the shift is printed as it is (a false alarm is possible at the
        # monitor's alpha); after the shift a full window of shifted rows must read drift
        assert "shift the input" in table and "-> drift" in table
        assert "inference endpoint (OIP v2)" in out
        recorded = [r.pid for r in state.read_processes() if r.pid is not None]
        assert recorded == []  # every child was stopped and recorded as such
        assert state.read_up() is None
    finally:
        leftovers = kill_recorded(state.read_processes(), timeout_s=10)
        assert not leftovers, f"the demo left processes behind: {leftovers}"
    assert not any(pid_alive(p) for p in leftovers)
