"""Reference profiles: binning, JSON round trip and validation, merging shards, segments.

Covers: decile edges and grids, categorical vocabularies with an unseen bucket, a JSON round
trip that preserves every count, validation errors that name the field, exact merging of
shards built over the same binning, and per-segment reference counts.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from driftline.serving.drift.profile import (
    ProfileError,
    Source,
    build_profile,
    encode_table,
    histograms,
    merge_profiles,
    profile_from_json,
    profile_to_json,
)


def _table(rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "age": rng.normal(40, 10, rows),
        "calls": rng.poisson(2, rows).astype(float),
        "region": rng.choice(np.array(["eu", "us", "apac"], dtype=object), rows),
        "plan": rng.choice(3, rows).astype(float),
    }


def test_profile_has_grid_edges_and_vocabularies() -> None:
    profile = build_profile(_table(5000, 0), "sha", categorical=["plan"], segments=["region"])
    layout = profile.layout
    assert [s.name for s in layout.numeric] == ["age", "calls"]
    assert [c.name for c in layout.categorical] == ["region", "plan"]
    age = layout.numeric[0]
    assert len(age.edges) == 9 and np.isin(age.edges, age.grid).all()
    assert len(age.grid) <= 512 + 9
    calls = layout.numeric[1]
    assert calls.grid.tolist() == sorted(set(_table(5000, 0)["calls"].tolist()))
    assert set(layout.categorical[1].categories) == {"0", "1", "2"}
    assert profile.reference.rows == 5000
    assert profile.reference.numeric.sum(axis=1).tolist() == [5000, 5000]
    assert profile.reference.categorical[:, -1].tolist() == [0, 0]  # unseen bucket empty
    assert profile.order == ("age", "calls", "region", "plan")


def test_json_round_trip_preserves_everything() -> None:
    profile = build_profile(_table(3000, 1), "sha", segments=["region"], model_sha256="m")
    doc = json.loads(json.dumps(profile_to_json(profile)))
    back = profile_from_json(doc)
    assert profile_to_json(back) == profile_to_json(profile)
    assert np.array_equal(back.reference.numeric, profile.reference.numeric)
    assert back.segments["region"]["eu"].rows == profile.segments["region"]["eu"].rows


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="other"), "format"),
        (lambda d: d["features"][0].update(grid=[3.0, 1.0]), "strictly increasing"),
        (lambda d: d["reference"]["numeric"][0].pop(), "expected"),
        (lambda d: d["reference"]["categorical"][0].__setitem__(0, -5), "non-negative"),
        (lambda d: d["segments"].update(age={}), r"segments\.age"),
        (lambda d: d["features"][1].update(name="age"), "duplicate"),
    ],
)
def test_invalid_documents_are_rejected_naming_the_field(mutate, message) -> None:
    doc = json.loads(json.dumps(profile_to_json(build_profile(_table(500, 2), "sha"))))
    mutate(doc)
    with pytest.raises(ProfileError, match=message):
        profile_from_json(doc)


def test_shards_built_like_the_first_merge_exactly() -> None:
    full = _table(6000, 3)
    first = {k: v[:4000] for k, v in full.items()}
    second = {k: v[4000:] for k, v in full.items()}
    a = build_profile(first, "sha", segments=["region"])
    b = build_profile(second, "sha2", like=a, segments=["region"])
    merged = merge_profiles(a, b)
    whole = build_profile(full, "sha", like=a, segments=["region"])
    assert np.array_equal(merged.reference.numeric, whole.reference.numeric)
    assert np.array_equal(merged.reference.categorical, whole.reference.categorical)
    assert np.allclose(merged.reference.moments, whole.reference.moments)
    assert merged.segments["region"]["us"].rows == whole.segments["region"]["us"].rows
    assert merged.reference.rows == 6000


def test_profiles_with_different_binning_do_not_merge() -> None:
    a = build_profile(_table(1000, 4), "a")
    b = build_profile(_table(1000, 5), "b")
    with pytest.raises(ProfileError, match="different binning"):
        merge_profiles(a, b)


def test_segment_counts_add_up_to_the_whole() -> None:
    profile = build_profile(_table(4000, 6), "sha", segments=["region"])
    parts = profile.segments["region"].values()
    assert sum(h.rows for h in parts) == 4000
    total = sum(h.numeric for h in parts)
    assert np.array_equal(total, profile.reference.numeric)


def test_unknown_categories_and_missing_values_are_counted_apart() -> None:
    profile = build_profile(_table(1000, 7), "sha", categorical=["plan"])
    current = _table(10, 8)
    current["region"][:3] = np.array(["mars", "", None], dtype=object)
    current["age"][:2] = [np.nan, np.inf]
    current["plan"][0] = 7.0
    (hist,) = histograms(profile.layout, *encode_table(profile.layout, current))
    assert hist.categorical[0, -1] == 1  # "mars" is unseen
    assert hist.categorical_missing[0] == 2  # "" and None
    assert hist.categorical[1, -1] == 1  # plan 7 is unseen
    assert hist.numeric_missing[0] == 2
    assert hist.numeric[0].sum() == 8


def test_bad_references_are_rejected_naming_the_column() -> None:
    with pytest.raises(ProfileError, match="'x'"):
        build_profile({"x": np.array([np.nan, np.nan])}, "sha")
    with pytest.raises(ProfileError, match="not in the reference"):
        build_profile({"x": np.arange(5.0)}, "sha", categorical=["y"])
    with pytest.raises(ProfileError, match="differ in length"):
        build_profile({"x": np.arange(5.0), "y": np.arange(4.0)}, "sha")
    with pytest.raises(ProfileError, match="segment feature 'x'"):
        build_profile({"x": np.arange(5.0)}, "sha", segments=["x"])


def test_sources_travel_with_the_profile() -> None:
    sources = {"age": Source("input", "input", 0), "calls": Source("input", "input", 1)}
    table = {k: v for k, v in _table(200, 9).items() if k in sources}
    back = profile_from_json(
        json.loads(json.dumps(profile_to_json(build_profile(table, "s", sources=sources))))
    )
    assert back.layout.numeric[1].source == Source("input", "input", 1)


def test_sorted_and_binned_counting_agree() -> None:
    table = _table(3000, 10)
    table["age"][:5] = [np.nan, np.inf, -np.inf, 1e9, -1e9]
    profile = build_profile(_table(2000, 11), "sha", categorical=["plan"])
    numeric, codes = encode_table(profile.layout, table)
    (fast,) = histograms(profile.layout, numeric, codes)
    (grouped,) = histograms(profile.layout, numeric, codes, np.zeros(3000, np.intp), 1)
    assert np.array_equal(fast.numeric, grouped.numeric)
    assert np.array_equal(fast.numeric_missing, grouped.numeric_missing)
    assert np.allclose(fast.sums, grouped.sums, rtol=1e-9, atol=1e-3)
    assert np.allclose(fast.moments, grouped.moments, rtol=1e-9, atol=1e-3)
    assert fast.numeric_missing[0] == 3
    assert np.array_equal(fast.categorical, grouped.categorical)
    assert np.array_equal(fast.categorical_missing, grouped.categorical_missing)
    assert fast.rows == grouped.rows == 3000
    # A column with no finite value, next to a feature with a short (padded) grid.
    table["calls"][:] = np.nan
    numeric, codes = encode_table(profile.layout, table)
    (fast,) = histograms(profile.layout, numeric, codes)
    (grouped,) = histograms(profile.layout, numeric, codes, np.zeros(3000, np.intp), 1)
    assert np.array_equal(fast.numeric, grouped.numeric)
    assert np.allclose(fast.sums, grouped.sums, rtol=1e-9, atol=1e-3)
    assert fast.numeric_missing.tolist() == [3, 3000]
    assert fast.numeric[1].sum() == 0 and fast.sums[1].sum() == 0.0
