"""The plan: spec + Models + rollout state -> desired topology.

We test these aspects:
- a first deploy serves spec.model as stable with 100% of traffic;
- a canary gets its weight and proportional HPA bounds / replicas, stable keeps full bounds;
- a shadow gets the mirror percent and no live weight;
- a missing Model is a temporary DependencyNotReady naming the Model and the role.
"""

from __future__ import annotations

from typing import Any

import pytest

from driftline.operator.api import Deployment, Model
from driftline.operator.errors import DependencyNotReady
from driftline.operator.plan import desired, referenced_models

SHA = "a" * 64


def model(name: str, version: str) -> Model:
    return Model.from_manifest(
        {
            "apiVersion": "driftline.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": name, "namespace": "ml"},
            "spec": {
                "family": "churn",
                "version": version,
                "source": {"uri": f"s3://models/churn/{version}/model.onnx", "sha256": SHA},
                "features": [{"name": "tenure"}, {"name": "plan", "type": "categorical"}],
            },
        }
    )


MODELS = {
    m.metadata.name: m
    for m in (model("churn-v1", "v1"), model("churn-v2", "v2"), model("churn-v3", "v3"))
}


def deployment(spec: dict[str, Any], status: dict[str, Any] | None = None) -> Deployment:
    body: dict[str, Any] = {
        "apiVersion": "driftline.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": {"name": "churn", "namespace": "ml", "generation": 1},
        "spec": spec,
    }
    if status is not None:
        body["status"] = status
    return Deployment.from_manifest(body)


def test_first_deploy_serves_spec_model_as_stable() -> None:
    topo = desired(deployment({"model": "churn-v1", "replicas": 3}), MODELS)
    assert [(v.role, v.model.name, v.weight, v.replicas) for v in topo.variants] == [
        ("stable", "churn-v1", 100, 3)
    ]
    assert topo.variants[0].autoscaling is None
    assert topo.variants[0].model.features == ("tenure", "plan")


def test_canary_bounds_are_proportional_to_its_weight() -> None:
    dep = deployment(
        {"model": "churn-v2", "autoscaling": {"minReplicas": 2, "maxReplicas": 20}},
        {"stableModel": "churn-v1", "canaryModel": "churn-v2", "canaryWeight": 10},
    )
    topo = desired(dep, MODELS)
    stable, canary = topo.variant("stable"), topo.variant("canary")
    assert stable is not None and canary is not None
    assert (stable.weight, canary.weight) == (90, 10)
    assert stable.autoscaling is not None and canary.autoscaling is not None
    assert (stable.autoscaling.min_replicas, stable.autoscaling.max_replicas) == (2, 20)
    assert (canary.autoscaling.min_replicas, canary.autoscaling.max_replicas) == (1, 2)
    assert canary.autoscaling.cpu_utilization == 80  # the default target


def test_fixed_replicas_of_a_canary_follow_its_weight() -> None:
    dep = deployment(
        {"model": "churn-v2", "replicas": 4},
        {"stableModel": "churn-v1", "canaryModel": "churn-v2", "canaryWeight": 50},
    )
    topo = desired(dep, MODELS)
    assert [(v.role, v.replicas) for v in topo.variants] == [("stable", 4), ("canary", 2)]


def test_dark_canary_still_runs_one_pod() -> None:
    dep = deployment(
        {"model": "churn-v2", "replicas": 4},
        {"stableModel": "churn-v1", "canaryModel": "churn-v2", "canaryWeight": 0},
    )
    canary = desired(dep, MODELS).variant("canary")
    assert canary is not None and (canary.weight, canary.replicas) == (0, 1)


def test_shadow_is_mirrored_not_weighted() -> None:
    dep = deployment(
        {"model": "churn-v3", "rollout": {"shadow": {"percent": 25}}},
        {"stableModel": "churn-v1", "shadowModel": "churn-v3"},
    )
    topo = desired(dep, MODELS)
    shadow = topo.variant("shadow")
    assert shadow is not None
    assert (shadow.weight, shadow.mirror_percent) == (0, 25)
    assert topo.weights == {"stable": 100, "shadow": 0}


def test_missing_model_is_a_temporary_error_naming_it() -> None:
    with pytest.raises(DependencyNotReady, match=r"churn-v9.*stable"):
        desired(deployment({"model": "churn-v9"}), MODELS)


def test_referenced_models_lists_each_once() -> None:
    dep = deployment(
        {"model": "churn-v2"},
        {"stableModel": "churn-v1", "canaryModel": "churn-v2", "canaryWeight": 5},
    )
    assert referenced_models(dep) == ("churn-v2", "churn-v1")
