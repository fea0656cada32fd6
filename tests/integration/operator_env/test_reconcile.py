"""kopf runs Driftline's handlers against the API emulator: Models and Deployments end to end.

We test these aspects:
- a Model with a real ONNX artifact becomes Ready with its signature, opset and size;
- a wrong digest makes the Model Failed/Stalled with the reason, and no Deployment serves it;
- a Deployment gets every child (variant + router Deployments, Services, route table, PDBs),
  owned by it, and becomes Ready once the child Deployments report ready pods;
- spec changes are patched into the children; a canary change waits for the rollout engine while
  stable keeps serving; a direct change replaces the stable model;
- injected 409/500 answers are retried without duplicate children;
- deleting the Deployment garbage-collects its children.
"""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes
import pytest
from kube_env import KMockThread, aeventually, running_operator
from kube_objects import (
    APPS,
    DEPLOYS,
    MODELS,
    NS,
    condition,
    create,
    deployment_body,
    mark_ready,
    model_body,
    patch_spec,
    stable_template_model,
    status_of,
    write_model,
)

from driftline.operator import names, rollout

pytestmark = [
    pytest.mark.integration,
    pytest.mark.usefixtures("kubeconfig"),
    # Known: after kopf.operator() returns, one aiohttp connection of kopf's (opened while our
    # resync timer was mid-flight at stop) is left for the garbage collector. The conftest collects
    # garbage after every test, so it surfaces here, in the test that ran kopf, and is ignored.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


async def test_model_becomes_ready_with_its_signature(k8s: KMockThread, tmp_path: Path) -> None:
    async with running_operator():
        sha = write_model(tmp_path / "m.onnx", 1.0)
        create(names.MODEL.plural, model_body("tiny-v1", tmp_path / "m.onnx", sha))
        status = await aeventually(
            lambda: (
                status_of(k8s, MODELS, "tiny-v1").get("phase") == "Ready"
                and status_of(k8s, MODELS, "tiny-v1")
            ),
            what="Model Ready",
        )
        assert status["verifiedSha256"] == sha
        assert status["opset"] == 17
        assert status["sizeBytes"] == (tmp_path / "m.onnx").stat().st_size
        assert status["signature"]["inputs"] == [
            {"name": "x", "datatype": "FP32", "shape": [-1, 3]}
        ]
        assert condition(status, "Ready") == ("True", "Verified")
        assert status["observedGeneration"] == 1


async def test_wrong_digest_fails_the_model_and_nothing_serves_it(
    k8s: KMockThread, tmp_path: Path
) -> None:
    async with running_operator():
        write_model(tmp_path / "m.onnx", 1.0)
        create(names.MODEL.plural, model_body("bad", tmp_path / "m.onnx", "0" * 64))
        status = await aeventually(
            lambda: (
                status_of(k8s, MODELS, "bad").get("phase") == "Failed"
                and status_of(k8s, MODELS, "bad")
            ),
            what="Model Failed",
        )
        assert condition(status, "Stalled") == ("True", "DigestMismatch")
        assert condition(status, "Ready") == ("False", "DigestMismatch")
        assert "0" * 64 in status["message"]
        create(names.DEPLOYMENT.plural, deployment_body("bad"))
        dep = await aeventually(
            lambda: (
                condition(status_of(k8s, DEPLOYS, "tiny"), "Reconciling")
                and status_of(k8s, DEPLOYS, "tiny")
            ),
            what="Deployment waiting",
        )
        assert condition(dep, "Reconciling") == ("True", "WaitingForModel")
        assert "bad" in dep["message"]
        assert k8s.objects(APPS, NS) == {}


async def test_deployment_gets_its_children_and_becomes_ready(
    k8s: KMockThread, tmp_path: Path
) -> None:
    async with running_operator():
        sha = write_model(tmp_path / "m.onnx", 1.0)
        create(names.MODEL.plural, model_body("tiny-v1", tmp_path / "m.onnx", sha))
        create(names.DEPLOYMENT.plural, deployment_body("tiny-v1", replicas=2))
        await aeventually(
            lambda: {"tiny-stable", "tiny-router"} <= set(k8s.objects(APPS, NS)), what="children"
        )
        uid = k8s.objects(DEPLOYS, NS)["tiny"]["metadata"]["uid"]
        children = {
            "v1/services": {"tiny", "tiny-stable"},
            "v1/configmaps": {"tiny-routes"},
            "policy/v1/poddisruptionbudgets": {"tiny-stable", "tiny-router"},
            APPS: {"tiny-stable", "tiny-router"},
        }
        for resource, expected in children.items():
            objs = await aeventually(
                lambda r=resource, e=expected: set(k8s.objects(r, NS)) == e and k8s.objects(r, NS),
                what=resource,
            )
            for obj in objs.values():
                assert obj["metadata"]["ownerReferences"][0]["uid"] == uid
        table = json.loads(
            k8s.objects("v1/configmaps", NS)["tiny-routes"]["data"][names.ROUTE_TABLE_KEY]
        )
        assert table["stable"]["weight"] == 100
        await aeventually(
            lambda: (
                condition(status_of(k8s, DEPLOYS, "tiny"), "Ready") == ("False", "WaitingForPods")
            ),
            what="waiting for pods",
        )
        mark_ready(k8s)
        ready = await aeventually(
            lambda: (
                condition(status_of(k8s, DEPLOYS, "tiny"), "Ready") == ("True", "Succeeded")
                and status_of(k8s, DEPLOYS, "tiny")
            ),
            what="Deployment Ready",
        )
        assert ready["phase"] == "Healthy"
        assert ready["stableModel"] == "tiny-v1"
        assert ready["observedGeneration"] == 1
        assert ready["variants"] == [
            {"name": "stable", "model": "tiny-v1", "weight": 100, "replicas": 2, "readyReplicas": 2}
        ]
        assert ready["endpoint"] == "http://tiny.default.svc:8080/v2/models/tiny"
        assert len(ready["history"]) == 1
        await aeventually(
            lambda: (
                {"Deployed", "Succeeded"}
                <= {e.get("reason") for e in k8s.objects("v1/events", NS).values()}
            ),
            what="Events for the decisions",
        )


async def test_spec_changes_reach_the_children(k8s: KMockThread, tmp_path: Path) -> None:
    async with running_operator():
        sha1 = write_model(tmp_path / "m1.onnx", 1.0)
        sha2 = write_model(tmp_path / "m2.onnx", 2.0)
        create(names.MODEL.plural, model_body("tiny-v1", tmp_path / "m1.onnx", sha1))
        create(names.MODEL.plural, model_body("tiny-v2", tmp_path / "m2.onnx", sha2, "v2"))
        # drain 1s: at promotion the stable Deployment rolls 1s after the canary took 100%
        create(
            names.DEPLOYMENT.plural,
            deployment_body("tiny-v1", replicas=1, rollout={"drain": "1s"}),
        )
        await aeventually(lambda: "tiny-stable" in k8s.objects(APPS, NS), what="stable child")
        patch_spec(names.DEPLOYMENT.plural, "tiny", {"replicas": 3})
        await aeventually(
            lambda: k8s.objects(APPS, NS)["tiny-stable"]["spec"]["replicas"] == 3, what="scaled"
        )
        # A model change starts a canary rollout: step 1 of the default steps, 10% of traffic.
        await aeventually(
            lambda: status_of(k8s, MODELS, "tiny-v2").get("phase") == "Ready", what="v2 Ready"
        )
        patch_spec(names.DEPLOYMENT.plural, "tiny", {"model": "tiny-v2"})
        canary = await aeventually(
            lambda: (
                status_of(k8s, DEPLOYS, "tiny").get("canaryModel") == "tiny-v2"
                and status_of(k8s, DEPLOYS, "tiny")
            ),
            what="canary started",
        )
        assert canary["stableModel"] == "tiny-v1"
        assert canary["canaryWeight"] == 10
        assert canary["phase"] in ("Progressing", "Paused")
        await aeventually(lambda: "tiny-canary" in k8s.objects(APPS, NS), what="canary child")
        mark_ready(k8s)  # a canary gets its weight in the route table once a pod of it is ready
        table = await aeventually(
            lambda: (
                json.loads(
                    k8s.objects("v1/configmaps", NS)["tiny-routes"]["data"][names.ROUTE_TABLE_KEY]
                )
                .get("canary", {})
                .get("weight")
                and json.loads(
                    k8s.objects("v1/configmaps", NS)["tiny-routes"]["data"][names.ROUTE_TABLE_KEY]
                )
            ),
            what="route table with the canary",
        )
        assert (table["stable"]["weight"], table["canary"]["weight"]) == (90, 10)
        # kubectl driftline promote: an annotation, applied once; the canary becomes stable.
        command = rollout.Command("promote", "1763776800-test")
        kubernetes.client.CustomObjectsApi().patch_namespaced_custom_object(
            names.GROUP,
            names.VERSION,
            NS,
            names.DEPLOYMENT.plural,
            "tiny",
            rollout.command_patch(command),
        )
        # Promoting at 10%: the canary (1 pod for its 10%) first scales to the stable's 3 pods
        # and keeps its 10% until all 3 are ready; nothing else moves meanwhile.
        scaling = await aeventually(
            lambda: (
                (s := status_of(k8s, DEPLOYS, "tiny")).get("rollout", {}).get("stage")
                == "Promoting"
                and k8s.objects(APPS, NS)["tiny-canary"]["spec"]["replicas"] == 3
                and s
            ),
            what="canary scaled to full size",
        )
        assert scaling["canaryWeight"] == 10
        assert stable_template_model(k8s) == "tiny-v1"
        mark_ready(k8s)  # the canary's 3 pods are ready
        # Then the canary takes 100% while <dep>-stable rolls to v2; it stays so until the
        # stable Deployment reports a finished rollout on v2.
        promoting = await aeventually(
            lambda: (
                (s := status_of(k8s, DEPLOYS, "tiny")).get("rollout", {}).get("stage")
                == "Promoting"
                and stable_template_model(k8s) == "tiny-v2"
                and s
            ),
            what="promoting",
        )
        assert (promoting["canaryModel"], promoting["canaryWeight"]) == ("tiny-v2", 100)
        assert promoting["phase"] == "Progressing"
        table = json.loads(
            k8s.objects("v1/configmaps", NS)["tiny-routes"]["data"][names.ROUTE_TABLE_KEY]
        )
        assert (table["stable"]["weight"], table["canary"]["weight"]) == (0, 100)
        mark_ready(k8s)  # the Deployment controller finishes rolling tiny-stable onto v2
        promoted = await aeventually(
            lambda: (
                status_of(k8s, DEPLOYS, "tiny").get("stableModel") == "tiny-v2"
                and "canaryModel" not in status_of(k8s, DEPLOYS, "tiny")
                and status_of(k8s, DEPLOYS, "tiny")
            ),
            what="promoted",
        )
        assert promoted["phase"] == "Healthy"
        table = json.loads(
            k8s.objects("v1/configmaps", NS)["tiny-routes"]["data"][names.ROUTE_TABLE_KEY]
        )
        assert table["stable"]["weight"] == 100
        assert table["stable"]["model_version"] == "tiny-v2"
        actions = [h["action"] for h in status_of(k8s, DEPLOYS, "tiny")["history"]]
        assert "RolloutStarted" in actions and "Promoted" in actions


async def test_api_errors_are_retried_without_duplicates(k8s: KMockThread, tmp_path: Path) -> None:
    async with running_operator():
        sha = write_model(tmp_path / "m.onnx", 1.0)
        k8s.inject("post", APPS, 500, times=2)
        k8s.inject("post", "v1/services", 409, times=1)
        create(names.MODEL.plural, model_body("tiny-v1", tmp_path / "m.onnx", sha))
        create(names.DEPLOYMENT.plural, deployment_body("tiny-v1"))
        await aeventually(
            lambda: (
                set(k8s.objects(APPS, NS)) == {"tiny-stable", "tiny-router"}
                and set(k8s.objects("v1/services", NS)) == {"tiny", "tiny-stable"}
            ),
            what="children despite errors",
        )
        mark_ready(k8s)
        await aeventually(
            lambda: status_of(k8s, DEPLOYS, "tiny").get("phase") == "Healthy", what="Healthy"
        )
        assert len(k8s.objects(APPS, NS)) == 2
        assert k8s.requests("post", APPS) == 4  # two injected failures, then one create per child


async def test_deleting_the_deployment_collects_its_children(
    k8s: KMockThread, tmp_path: Path
) -> None:
    async with running_operator():
        sha = write_model(tmp_path / "m.onnx", 1.0)
        create(names.MODEL.plural, model_body("tiny-v1", tmp_path / "m.onnx", sha))
        create(names.DEPLOYMENT.plural, deployment_body("tiny-v1"))
        await aeventually(lambda: "tiny-router" in k8s.objects(APPS, NS), what="children")
        kubernetes.client.CustomObjectsApi().delete_namespaced_custom_object(
            names.GROUP, names.VERSION, NS, names.DEPLOYMENT.plural, "tiny"
        )
        await aeventually(lambda: not k8s.objects(DEPLOYS, NS), what="deleted")
        assert k8s.objects(APPS, NS) == {}
        assert k8s.objects("v1/configmaps", NS) == {}
