"""The copy-once ``merge_patch`` and the build-nothing ``is_noop`` keep RFC 7386 semantics."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from kmock_plus import rfc7386_merge as reference

from driftline.operator.manifests import JsonObject, is_noop, merge_patch

scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["a", "b"]))
keys = st.sampled_from(["a", "b", "c", "d"])
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)
objects = st.dictionaries(keys, json_values, max_size=4)


@settings(max_examples=60, deadline=None)
@given(objects, objects)
def test_merge_patch_matches_the_rfc_and_mutates_nothing(
    target: JsonObject, patch: JsonObject
) -> None:
    before_target, before_patch = copy.deepcopy(target), copy.deepcopy(patch)
    merged = merge_patch(target, patch)
    assert merged == reference(target, patch)
    assert target == before_target and patch == before_patch
    if isinstance(merged, dict) and merged:
        merged.clear()  # the result shares nothing with the arguments
        assert target == before_target and patch == before_patch


@settings(max_examples=60, deadline=None)
@given(objects, objects)
def test_is_noop_is_merging_changes_nothing(live: JsonObject, patch: JsonObject) -> None:
    assert is_noop(live, patch) == (reference(live, patch) == live)
    assert is_noop(live, {}) and is_noop(reference(live, patch), patch)
