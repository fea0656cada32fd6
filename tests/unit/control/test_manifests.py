"""Merge-patch arithmetic behind the applier's three-way patches.

We test these aspects:
- RFC 7386 semantics (null deletes, objects merge, lists replace), inputs never mutated;
- the apply patch removes only fields we applied before and no longer render;
- a no-op patch is recognised so no write is sent.
"""

from __future__ import annotations

import copy

from driftline.operator.manifests import (
    apply_patch,
    canonical,
    is_noop,
    key_of,
    merge_patch,
    owner_reference,
    removals,
)


def test_merging_follows_rfc_7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "l": [3]}
    before = copy.deepcopy(target)
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}, "l": [3]}
    assert target == before


def test_removals_name_only_fields_we_dropped() -> None:
    last = {"spec": {"replicas": 2, "template": {"x": 1}}, "metadata": {"labels": {"a": "1"}}}
    desired = {"spec": {"template": {"x": 2}}, "metadata": {"labels": {"b": "2"}}}
    assert removals(last, desired) == {
        "spec": {"replicas": None},
        "metadata": {"labels": {"a": None}},
    }


def test_apply_patch_keeps_fields_written_by_others() -> None:
    live = {"spec": {"replicas": 7, "image": "a"}, "metadata": {"annotations": {"team": "ml"}}}
    desired = {"spec": {"image": "b"}, "metadata": {"annotations": {}}}
    patch = apply_patch({"spec": {"image": "a"}}, desired)
    assert merge_patch(live, patch) == {
        "spec": {"replicas": 7, "image": "b"},
        "metadata": {"annotations": {"team": "ml"}},
    }


def test_unknown_last_applied_removes_nothing() -> None:
    assert apply_patch(None, {"a": 1}) == {"a": 1}


def test_recognising_a_noop() -> None:
    live = {"a": 1, "b": {"c": 2}, "status": {"x": 1}}
    assert is_noop(live, {"b": {"c": 2}})
    assert not is_noop(live, {"b": {"c": 3}})
    assert not is_noop(live, {"a": None})


def test_canonical_json_is_order_independent() -> None:
    assert canonical({"b": 1, "a": [1, {"y": 2, "x": 1}]}) == canonical(
        {"a": [1, {"x": 1, "y": 2}], "b": 1}
    )


def test_keys_and_owner_references() -> None:
    ref = owner_reference("driftline.dev/v1alpha1", "Deployment", "iris", "u1")
    assert ref["controller"] and ref["blockOwnerDeletion"]
    key = key_of(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s", "namespace": "n", "labels": {}},
        }
    )
    assert (key.kind, key.namespace, key.name) == ("Service", "n", "s")
    assert "Service/s" in str(key)
