"""What the watches saw: child readiness, the owner to poke, and Models.

We test these aspects:
- the owner is the controlling Driftline Deployment of the ownerReferences, nothing else;
- ready pods are read defensively (absent, malformed, negative: 0);
- a child's first event pokes its owner only when it already has ready pods, a change pokes, an
  unchanged count does not, a deletion of a ready child pokes; foreign objects are ignored;
- Models are kept by namespace and name until deleted.
"""

from __future__ import annotations

from typing import Any

import pytest

from driftline.operator import names
from driftline.operator.observed import ChildSeen, Observed, owner_name, ready_replicas


def child(
    name: str = "shop-stable", ready: Any = None, owner: str | None = "shop"
) -> dict[str, Any]:
    refs = (
        [
            {
                "apiVersion": names.API_VERSION,
                "kind": "Deployment",
                "name": owner,
                "uid": "u-1",
                "controller": True,
            }
        ]
        if owner
        else []
    )
    body: dict[str, Any] = {"metadata": {"name": name, "ownerReferences": refs}}
    if ready is not None:
        body["status"] = {"readyReplicas": ready}
    return body


def test_the_owner_is_the_controlling_driftline_deployment() -> None:
    assert owner_name(child()) == "shop"
    assert owner_name(child(owner=None)) is None
    assert owner_name({"metadata": {}}) is None
    foreign = child()
    foreign["metadata"]["ownerReferences"][0]["apiVersion"] = "apps/v1"
    assert owner_name(foreign) is None
    not_controller = child()
    not_controller["metadata"]["ownerReferences"][0]["controller"] = False
    assert owner_name(not_controller) is None


@pytest.mark.parametrize(
    ("ready", "expected"), [(None, 0), (3, 3), (0, 0), (-1, 0), ("2", 0), (True, 0)]
)
def test_ready_replicas_are_read_defensively(ready: Any, expected: int) -> None:
    assert ready_replicas(child(ready=ready)) == expected


def test_a_change_in_ready_pods_pokes_the_owner_and_nothing_else_does() -> None:
    seen = Observed()
    assert seen.ready("ns", "shop-stable") is None
    assert seen.child_event("ns", child()) == ChildSeen(owner="shop", poke=False)
    assert seen.ready("ns", "shop-stable") == 0
    assert seen.child_event("ns", child(ready=2)) == ChildSeen(owner="shop", poke=True)
    assert seen.child_event("ns", child(ready=2)) == ChildSeen(owner="shop", poke=False)
    assert seen.ready("ns", "shop-stable") == 2
    assert seen.child_event("ns", child(ready=1)).poke
    assert seen.child_event("ns", child(ready=1), deleted=True) == ChildSeen("shop", poke=True)
    assert seen.ready("ns", "shop-stable") is None


def test_a_first_event_with_ready_pods_pokes() -> None:
    """kopf batches one object's events: created and readied may arrive as one event."""
    seen = Observed()
    assert seen.child_event("ns", child(ready=1)).poke
    assert seen.ready("other-ns", "shop-stable") is None


def test_objects_no_driftline_deployment_controls_are_ignored() -> None:
    seen = Observed()
    assert seen.child_event("ns", child(owner=None, ready=3)) == ChildSeen(owner=None, poke=False)
    assert seen.ready("ns", "shop-stable") is None


def test_models_are_kept_until_deleted() -> None:
    seen = Observed()
    body: dict[str, Any] = {"metadata": {"name": "m"}, "status": {"phase": "Ready"}}
    assert seen.model("ns", "m") is None
    seen.model_event("ns", "m", body)
    assert seen.model("ns", "m") == body
    assert seen.model("other", "m") is None
    seen.model_event("ns", "m", None)
    assert seen.model("ns", "m") is None
