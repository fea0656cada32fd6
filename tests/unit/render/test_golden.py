"""The renderer against golden files, plus the properties every manifest must have.

We test these aspects:
- rendering is deterministic and matches tests/unit/render/golden/*.yaml (regenerate with
  DRIFTLINE_UPDATE_GOLDEN=1 and review the diff);
- every child carries the owner reference and the labels the pruner selects by;
- serving pods follow the restricted Pod Security profile, with probes and requests/limits;
- the route table is valid for the router (weights sum to 100, shadow mirrored).

Golden files: YAML, one document per manifest, in apply order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.operator import names
from driftline.operator.api import Deployment, Model
from driftline.operator.manifests import owner_reference
from driftline.operator.plan import desired
from driftline.operator.render import manifests

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("DRIFTLINE_UPDATE_GOLDEN") == "1"
IMAGE = "ghcr.io/driftline/driftline:test"
OWNER = owner_reference(
    names.API_VERSION, "Deployment", "churn", "11111111-2222-3333-4444-555555555555"
)
SHA = "0123456789abcdef" * 4


def model(name: str, version: str) -> Model:
    return Model.from_manifest(
        {
            "apiVersion": "driftline.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": name, "namespace": "ml"},
            "spec": {
                "family": "churn",
                "version": version,
                "source": {
                    "uri": f"https://models.example/churn/{version}/model.onnx",
                    "sha256": SHA,
                },
                "features": [{"name": "tenure"}, {"name": "plan", "type": "categorical"}],
            },
            "status": {"profileConfigMap": f"{name}-profile"},
        }
    )


MODELS = {m.metadata.name: m for m in (model("churn-v1", "v1"), model("churn-v2", "v2"))}

CASES: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "stable-only": ({"model": "churn-v1", "replicas": 2}, None),
    "canary-autoscaled": (
        {
            "model": "churn-v2",
            "autoscaling": {"minReplicas": 2, "maxReplicas": 10, "targetRequestsPerSecond": 50},
            "resources": {
                "requests": {"cpu": "500m", "memory": "512Mi"},
                "limits": {"memory": "1Gi"},
            },
            "traffic": {"stickyHeader": "x-user-id"},
            "router": {"replicas": 2},
        },
        {"stableModel": "churn-v1", "canaryModel": "churn-v2", "canaryWeight": 20},
    ),
    "shadow": (
        {"model": "churn-v2", "rollout": {"shadow": {"percent": 50}}, "monitor": {"window": 5000}},
        {"stableModel": "churn-v1", "shadowModel": "churn-v2"},
    ),
    # Promoting: the canary (v2) takes all traffic while the stable Deployment rolls to v2.
    "promoting": (
        {"model": "churn-v2", "replicas": 4},
        {
            "stableModel": "churn-v2",
            "canaryModel": "churn-v2",
            "canaryWeight": 100,
            "rollout": {"stage": "Promoting", "target": "churn-v2", "previous": "churn-v1"},
        },
    ),
}


def render(case: str) -> list[Any]:
    spec, status = CASES[case]
    body: dict[str, Any] = {
        "apiVersion": "driftline.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": {"name": "churn", "namespace": "ml"},
        "spec": spec,
    }
    if status:
        body["status"] = status
    return list(manifests(desired(Deployment.from_manifest(body), MODELS), OWNER, IMAGE))


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendering_matches_the_golden_file(case: str) -> None:
    text = yaml.safe_dump_all(render(case), sort_keys=True, default_flow_style=False)
    path = GOLDEN / f"{case}.yaml"
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"missing {path}: run with DRIFTLINE_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path} differs: review, then DRIFTLINE_UPDATE_GOLDEN=1"


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendering_is_deterministic(case: str) -> None:
    assert json.dumps(render(case), sort_keys=True) == json.dumps(render(case), sort_keys=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_child_is_owned_and_labelled(case: str) -> None:
    for m in render(case):
        meta = m["metadata"]
        assert meta["ownerReferences"] == [OWNER]
        assert meta["namespace"] == "ml"
        assert meta["labels"][names.LABEL_DEPLOYMENT] == "churn"
        assert meta["labels"][names.LABEL_MANAGED_BY] == names.MANAGED_BY_VALUE
        assert len(meta["name"]) <= names.MAX_NAME


def _pods(case: str) -> list[dict[str, Any]]:
    return [m["spec"]["template"]["spec"] for m in render(case) if m["kind"] == "Deployment"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_pods_follow_the_restricted_profile(case: str) -> None:
    for pod in _pods(case):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in pod.get("initContainers", []) + pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert c["resources"]["requests"] and c["resources"]["limits"]


def test_servers_probe_the_oip_health_endpoints() -> None:
    for pod in _pods("stable-only"):
        server = next((c for c in pod["containers"] if c["name"] == "server"), None)
        if server is None:
            continue  # the router pod
        assert server["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert [c["name"] for c in pod["initContainers"]] == ["fetch"]
        assert SHA in pod["initContainers"][0]["args"]


def _table(case: str) -> dict[str, Any]:
    cm = next(m for m in render(case) if m["kind"] == "ConfigMap")
    table: dict[str, Any] = json.loads(cm["data"][names.ROUTE_TABLE_KEY])
    return table


def test_route_table_weights_sum_to_100() -> None:
    table = _table("canary-autoscaled")
    assert table["stable"]["weight"] + table["canary"]["weight"] == 100
    assert table["canary"]["weight"] == 20
    assert table["sticky_header"] == "x-user-id"
    assert table["canary"]["endpoints"] == ["churn-canary.ml.svc:8080"]


def test_route_table_mirrors_to_the_shadow() -> None:
    table = _table("shadow")
    assert table["shadow"]["mirror_percent"] == 50
    assert "weight" not in table["shadow"]
    assert table["stable"]["weight"] == 100


def test_promoting_routes_everything_to_the_canary_and_rolls_the_stable_pods() -> None:
    table = _table("promoting")
    assert (table["stable"]["weight"], table["canary"]["weight"]) == (0, 100)
    assert table["stable"]["model_version"] == table["canary"]["model_version"] == "churn-v2"
    deployments = {
        m["metadata"]["name"]: m for m in render("promoting") if m["kind"] == "Deployment"
    }
    for name in ("churn-stable", "churn-canary"):  # both at full size on the new model
        spec = deployments[name]["spec"]
        assert spec["replicas"] == 4
        assert spec["template"]["metadata"]["labels"][names.LABEL_MODEL] == "churn-v2"


def test_route_table_version_changes_with_content() -> None:
    assert _table("shadow")["version"] != _table("canary-autoscaled")["version"]


def test_autoscaled_variants_leave_replicas_to_their_hpa() -> None:
    docs = render("canary-autoscaled")
    hpas = {
        m["metadata"]["name"]: m["spec"] for m in docs if m["kind"] == "HorizontalPodAutoscaler"
    }
    assert (hpas["churn-stable"]["minReplicas"], hpas["churn-stable"]["maxReplicas"]) == (2, 10)
    assert (hpas["churn-canary"]["minReplicas"], hpas["churn-canary"]["maxReplicas"]) == (1, 2)
    servers = [
        m for m in docs if m["kind"] == "Deployment" and "router" not in m["metadata"]["name"]
    ]
    assert all("replicas" not in m["spec"] for m in servers)
