"""Verdicts: both gates, multiplicity corrections, not-enough-data, segments, predictions.

Covers: Bonferroni and Benjamini-Hochberg adjusted p-values (scipy's false_discovery_control as
oracle), a negligible shift on a large window not flagged, real shifts flagged, the distinct
not-enough-data state, per-feature overrides, segment hits, prediction drift, JSON shape.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats as sps

from driftline.serving.drift import decide, stats
from driftline.serving.drift.profile import Profile, build_profile, encode_table, histograms


def _verdict(
    profile: Profile, current: dict[str, np.ndarray], cfg: decide.DecisionConfig
) -> decide.Verdict:
    (hist,) = histograms(profile.layout, *encode_table(profile.layout, current))
    st = stats.compare(profile.layout, profile.reference, hist)
    return decide.decide(profile.layout, [decide.Scope(st, hist.rows)], cfg)


def test_bonferroni_multiplies_by_the_number_of_hypotheses() -> None:
    p = np.array([0.01, 0.2, 0.001])
    assert decide.adjust(p, decide.Correction.BONFERRONI).tolist() == pytest.approx(
        [0.03, 0.6, 0.003]
    )
    assert decide.adjust(p, decide.Correction.NONE).tolist() == p.tolist()


def test_fdr_matches_scipy_benjamini_hochberg() -> None:
    p = np.random.default_rng(0).uniform(0, 0.1, 40)
    ours = decide.adjust(p, decide.Correction.FDR)
    assert np.allclose(ours, sps.false_discovery_control(p, method="bh"))


def _data(rows: int, seed: int, shift: float = 0.0, tiny: float = 0.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "a": rng.normal(shift, 1.0, rows),
        "b": rng.normal(tiny, 1.0, rows),
        "c": rng.normal(0.0, 1.0, rows),
        "k": rng.choice(np.array(["x", "y", "z"], dtype=object), rows, p=[0.5, 0.3, 0.2]),
    }


def test_real_shift_flagged_negligible_shift_not() -> None:
    profile = build_profile(_data(50_000, 1), "sha")
    verdict = _verdict(profile, _data(10_000, 2, shift=0.5, tiny=0.08), decide.DecisionConfig())
    by_name = {f.name: f for f in verdict.features}
    assert verdict.status is decide.Status.DRIFT
    assert verdict.drifted == ("a",)
    # The negligible shift is statistically significant but below the effect gate.
    assert by_name["b"].p_adjusted < 0.05
    assert by_name["b"].status is decide.Status.NO_DRIFT
    assert by_name["c"].status is decide.Status.NO_DRIFT
    assert verdict.share == pytest.approx(1 / 4)


def test_effect_alone_is_not_enough_without_significance() -> None:
    profile = build_profile(_data(5000, 3), "sha")
    cfg = decide.DecisionConfig(min_samples=5, numeric=decide.Rule("wasserstein", 0.0))
    verdict = _verdict(profile, _data(8, 4), cfg)
    assert verdict.status is decide.Status.NO_DRIFT


def test_small_windows_are_not_enough_data_never_no_drift() -> None:
    profile = build_profile(_data(5000, 5), "sha")
    verdict = _verdict(profile, _data(100, 6, shift=3.0), decide.DecisionConfig(min_samples=500))
    assert verdict.status is decide.Status.NOT_ENOUGH_DATA
    assert {f.status for f in verdict.features} == {decide.Status.NOT_ENOUGH_DATA}
    assert verdict.hypotheses == 0


def test_overrides_change_the_gate_of_one_feature() -> None:
    profile = build_profile(_data(20_000, 7), "sha")
    cfg = decide.DecisionConfig(overrides={"a": decide.Rule("psi", 10.0)})
    verdict = _verdict(profile, _data(5000, 8, shift=0.5), cfg)
    a = next(f for f in verdict.features if f.name == "a")
    assert a.effect == "psi" and a.threshold == 10.0
    assert a.status is decide.Status.NO_DRIFT


def test_invalid_configs_name_the_problem() -> None:
    with pytest.raises(decide.DecisionError, match="alpha"):
        decide.DecisionConfig(alpha=1.5)
    with pytest.raises(decide.DecisionError, match="categorical effect"):
        decide.DecisionConfig(categorical=decide.Rule("wasserstein", 0.1))
    cfg = decide.DecisionConfig(overrides={"k": decide.Rule("ks", 0.1)})
    with pytest.raises(decide.DecisionError, match=r"overrides\.k"):
        cfg.rule_for("k", "categorical")


def test_prediction_features_get_their_own_status() -> None:
    profile = build_profile(_data(20_000, 9), "sha")
    cfg = decide.DecisionConfig(predictions=frozenset({"a"}))
    verdict = _verdict(profile, _data(5000, 10, shift=0.6), cfg)
    assert verdict.prediction_status is decide.Status.DRIFT
    assert next(f for f in verdict.features if f.name == "a").role == "prediction"


def test_verdict_json_is_strict_json() -> None:
    profile = build_profile(_data(2000, 11), "sha")
    verdict = _verdict(profile, _data(600, 12), decide.DecisionConfig())
    doc = decide.verdict_to_json(verdict)
    text = json.dumps(doc, allow_nan=False)
    assert json.loads(text)["status"] == "no_drift"
    assert {f["name"] for f in doc["features"]} == {"a", "b", "c", "k"}


def test_segment_shift_is_seen_when_the_whole_is_stable() -> None:
    rng = np.random.default_rng(13)
    n, m = 40_000, 10_000
    seg = rng.choice(np.array(["s0", "s1", "s2", "s3", "s4"], dtype=object), n)
    ref = {"x": rng.normal(size=n), "seg": seg}
    cseg = rng.choice(np.array(["s0", "s1", "s2", "s3", "s4"], dtype=object), m)
    x = rng.normal(size=m)
    x[cseg == "s2"] += 0.6  # one segment in five moves; the whole moves 0.12 sigma
    profile = build_profile(ref, "sha", segments=["seg"])
    cur = {"x": x, "seg": cseg}
    numeric, codes = encode_table(profile.layout, cur)
    (whole,) = histograms(profile.layout, numeric, codes)
    groups = np.where(codes[:, 0] < 5, codes[:, 0], -1)
    parts = histograms(profile.layout, numeric, codes, groups, 5)
    cats = profile.layout.categorical[0].categories
    scopes = [decide.Scope(stats.compare(profile.layout, profile.reference, whole), whole.rows)]
    cfg = decide.DecisionConfig(numeric=decide.Rule("wasserstein", 0.15))
    for cat, hist in zip(cats, parts, strict=True):
        st = stats.compare(profile.layout, profile.segments["seg"][cat], hist)
        scopes.append(decide.Scope(st, hist.rows, f"seg={cat}"))
    verdict = decide.decide(profile.layout, scopes, cfg)
    assert verdict.status is decide.Status.DRIFT
    assert verdict.drifted == ("x@seg=s2",)
    whole_x = next(f for f in verdict.features if f.name == "x" and f.segment is None)
    assert whole_x.status is decide.Status.NO_DRIFT
    assert verdict.hypotheses == 12
