"""A DriftMonitor's ``features``: only those are tested, from the CRD field to the verdict.

We test: ``DecisionConfig.features`` limits the judged features (prediction features stay);
``driftline monitor --features`` with a name the profile lacks refuses to start, naming the flag;
the operator renders ``spec.features`` as ``DRIFTLINE_MONITOR_FEATURES`` and judges the merged
window with the same subset (``fleet_decision``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from driftline.operator.analysis_http import fleet_decision
from driftline.operator.api.driftmonitor import DriftMonitorSpec
from driftline.operator.render.monitoring import drift_flags
from driftline.serving.drift.decide import DecisionConfig, Status
from driftline.serving.drift.evaluate import evaluate_table
from driftline.serving.drift.profile import Source, build_profile
from driftline.serving.monitor.run import MonitorStartError, monitor_config
from driftline.serving.monitor.settings import MonitorSettings

RNG = np.random.default_rng(5)
REF = {"a": RNG.normal(size=3000), "b": RNG.normal(size=3000), "c": RNG.normal(size=3000)}
SOURCES = {n: Source("input", "x", j) for j, n in enumerate(REF)}
PROFILE = build_profile(REF, "sha", sources=SOURCES)


def test_only_the_chosen_features_are_judged() -> None:
    current = {
        "a": RNG.normal(size=2000) + 2.0,
        "b": RNG.normal(size=2000),
        "c": RNG.normal(size=2000),
    }
    every = evaluate_table(PROFILE, current, DecisionConfig()).verdict
    assert every.status is Status.DRIFT and every.drifted == ("a",)
    subset = evaluate_table(PROFILE, current, DecisionConfig(features=frozenset({"b", "c"})))
    assert [f.name for f in subset.verdict.features] == ["b", "c"]
    assert subset.verdict.status is Status.NO_DRIFT and subset.verdict.share == 0.0


def test_the_sidecar_refuses_an_unknown_feature_naming_the_flag(tmp_path: Path) -> None:
    settings = MonitorSettings(profile=tmp_path / "p.json", features="a, c")
    assert monitor_config(settings, PROFILE).decision.features == {"a", "c"}
    bad = MonitorSettings(profile=tmp_path / "p.json", features="a,zz")
    with pytest.raises(MonitorStartError, match=r"--features: unknown feature\(s\) \['zz'\]"):
        monitor_config(bad, PROFILE)


def test_the_operator_renders_and_judges_the_same_subset() -> None:
    spec = DriftMonitorSpec.model_validate({"deployment": "d", "features": ["a", "c"]})
    assert drift_flags(spec, 1000)["DRIFTLINE_MONITOR_FEATURES"] == "a,c"
    assert "DRIFTLINE_MONITOR_FEATURES" not in drift_flags(
        DriftMonitorSpec.model_validate({"deployment": "d"}), 1000
    )
    assert fleet_decision(spec, PROFILE).features == {"a", "c"}
    assert fleet_decision(None, PROFILE).features == frozenset()
