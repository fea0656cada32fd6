"""KubeClient (the Applier/Reader seam) against the API emulator over real HTTP.

We test these aspects:
- create-or-patch is idempotent: a second apply writes nothing;
- a changed manifest is patched; a field we stop rendering is removed, a field others own stays;
- injected 409 and 500 answers are retried and never duplicate a child;
- a 422 is not retried (permanent) and a persistent 503 ends as a temporary error;
- prune deletes only owned, selected objects that are no longer desired;
- prune reuses apply's lists even when apply itself took longer than the reuse window.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kube_env import KMockThread

from driftline.operator import k8s as k8s_module
from driftline.operator import names
from driftline.operator.errors import ApiRejected, ApiUnavailable
from driftline.operator.k8s import ApplyResult, KubeClient, RetryPolicy
from driftline.operator.manifests import Manifest, ObjectKey, owner_reference

pytestmark = pytest.mark.integration

CM = "v1/configmaps"
DEPLOY = "apps/v1/deployments"
OWNER = owner_reference(names.API_VERSION, "Deployment", "iris", "uid-iris")
LABELS = {names.LABEL_MANAGED_BY: names.MANAGED_BY_VALUE, names.LABEL_DEPLOYMENT: "iris"}


def config_map(name: str, data: dict[str, str], labels: dict[str, str] | None = None) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "labels": labels or dict(LABELS)},
        "data": data,
    }


def deployment(name: str, replicas: int | None, image: str = "driftline:1") -> Manifest:
    spec: dict[str, object] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "server", "image": image}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": dict(LABELS)},
        "spec": spec,  # type: ignore[typeddict-item]
    }


@pytest.fixture
def client(kubeconfig: Path) -> Iterator[KubeClient]:
    c = KubeClient(kubernetes.client.ApiClient(), retry=RetryPolicy(attempts=4, base_delay=0.01))
    yield c
    c.close()


async def test_applying_twice_writes_once(k8s: KMockThread, client: KubeClient) -> None:
    first = await client.apply([config_map("routes", {"a": "1"})], OWNER)
    second = await client.apply([config_map("routes", {"a": "1"})], OWNER)
    assert [r.action for r in first] == ["created"]
    assert [r.action for r in second] == ["unchanged"]
    assert k8s.requests("post", CM) == 1
    assert k8s.requests("patch", CM) == 0
    stored = k8s.objects(CM, "default")["routes"]
    assert stored["data"] == {"a": "1"}
    assert stored["metadata"]["ownerReferences"] == [dict(OWNER)]
    assert names.ANNOTATION_LAST_APPLIED in stored["metadata"]["annotations"]


async def test_patching_removes_only_our_stale_fields(k8s: KMockThread, client: KubeClient) -> None:
    await client.apply([deployment("iris-stable", replicas=2)], OWNER)
    # An HPA (someone else) takes over spec.replicas; a user adds an annotation.
    api = kubernetes.client.AppsV1Api()
    api.patch_namespaced_deployment(
        "iris-stable", "default", {"metadata": {"annotations": {"team": "ml"}}}
    )
    # We stop rendering replicas (the HPA owns them now) and change the image.
    result = await client.apply([deployment("iris-stable", None, image="driftline:2")], OWNER)
    assert [r.action for r in result] == ["patched"]
    stored = k8s.objects(DEPLOY, "default")["iris-stable"]
    assert "replicas" not in stored["spec"]  # ours, no longer rendered: removed
    assert stored["metadata"]["annotations"]["team"] == "ml"  # someone else's: kept
    assert stored["spec"]["template"]["spec"]["containers"][0]["image"] == "driftline:2"


async def test_conflicts_and_server_errors_are_retried_without_duplicates(
    k8s: KMockThread, client: KubeClient
) -> None:
    k8s.inject("post", CM, 500)
    k8s.inject("get", CM, 503)
    created = await client.apply([config_map("routes", {"a": "1"})], OWNER)
    assert [r.action for r in created] == ["created"]
    k8s.inject("patch", CM, 409, times=2)
    patched = await client.apply([config_map("routes", {"a": "2"})], OWNER)
    assert [r.action for r in patched] == ["patched"]
    assert list(k8s.objects(CM, "default")) == ["routes"]
    assert k8s.objects(CM, "default")["routes"]["data"] == {"a": "2"}
    assert k8s.requests("patch", CM) == 3  # two conflicts, one success


async def test_a_create_that_already_exists_turns_into_a_patch(
    k8s: KMockThread, client: KubeClient
) -> None:
    # Another writer created the object without our labels, so the LIST that apply reads the live
    # children with does not show it: our create meets 409 AlreadyExists, then a read and a patch.
    kubernetes.client.CoreV1Api().create_namespaced_config_map(
        "default", {"metadata": {"name": "routes"}, "data": {"a": "0"}}
    )
    result = await client.apply([config_map("routes", {"a": "1"})], OWNER)
    assert [r.action for r in result] == ["patched"]
    stored = k8s.objects(CM, "default")["routes"]
    assert stored["data"] == {"a": "1"}
    assert stored["metadata"]["labels"] == LABELS
    assert k8s.requests("post", CM) == 2  # the other writer's and our one refused create


async def test_an_unchanged_reconcile_reads_each_kind_once(
    k8s: KMockThread, client: KubeClient
) -> None:
    # apply lists each kind once (no GET per object); prune right after reuses those lists.
    manifests = [config_map("a", {"x": "1"}), config_map("b", {"x": "2"}), deployment("d", 1)]
    await client.apply(manifests, OWNER)
    before = k8s.requests("get", CM), k8s.requests("get", DEPLOY)
    result = await client.apply(manifests, OWNER)
    keep = [
        ObjectKey(m["apiVersion"], m["kind"], "default", m["metadata"]["name"]) for m in manifests
    ]
    pruned = await client.prune(
        "default", LABELS, keep, [("v1", "ConfigMap"), ("apps/v1", "Deployment")], "uid-iris"
    )
    assert [r.action for r in result] == ["unchanged"] * 3 and pruned == []
    assert (k8s.requests("get", CM), k8s.requests("get", DEPLOY)) == (before[0] + 1, before[1] + 1)
    assert k8s.requests("patch", CM) == 0 and k8s.requests("patch", DEPLOY) == 0


async def test_prune_reuses_the_lists_of_an_apply_that_outlasted_the_reuse_window(
    k8s: KMockThread, client: KubeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow API server: the window counts from apply's end, not from its LISTs."""
    manifests = [config_map("a", {"x": "1"}), deployment("d", 1)]
    await client.apply(manifests, OWNER)
    monkeypatch.setattr(k8s_module, "LIST_REUSE_S", 0.5)
    one = client._apply_one

    async def slow_apply_one(*args: Any, **kwargs: Any) -> ApplyResult:
        await asyncio.sleep(0.4)  # stands in for a slow server: two objects outlast the window
        return await one(*args, **kwargs)

    monkeypatch.setattr(client, "_apply_one", slow_apply_one)
    before = k8s.requests("get", CM), k8s.requests("get", DEPLOY)
    await client.apply(manifests, OWNER)
    keep = [
        ObjectKey(m["apiVersion"], m["kind"], "default", m["metadata"]["name"]) for m in manifests
    ]
    await client.prune(
        "default", LABELS, keep, [("v1", "ConfigMap"), ("apps/v1", "Deployment")], "uid-iris"
    )
    assert (k8s.requests("get", CM), k8s.requests("get", DEPLOY)) == (before[0] + 1, before[1] + 1)


async def test_rejections_are_permanent_and_not_retried(
    k8s: KMockThread, client: KubeClient
) -> None:
    k8s.inject("post", CM, 422)
    with pytest.raises(ApiRejected) as info:
        await client.apply([config_map("routes", {"a": "1"})], OWNER)
    assert info.value.status == 422
    assert k8s.requests("post", CM) == 1
    assert k8s.objects(CM, "default") == {}


async def test_persistent_unavailability_is_temporary(k8s: KMockThread, client: KubeClient) -> None:
    k8s.inject("get", CM, 503, times=10)
    with pytest.raises(ApiUnavailable) as info:
        await client.apply([config_map("routes", {"a": "1"})], OWNER)
    assert info.value.status == 503
    assert k8s.requests("get", CM) == 4  # the whole budget, then give up


async def test_pruning_deletes_only_owned_undesired_children(
    k8s: KMockThread, client: KubeClient
) -> None:
    await client.apply([config_map("keep", {}), config_map("stale", {})], OWNER)
    foreign = owner_reference(names.API_VERSION, "Deployment", "x", "uid-x")
    await client.apply([config_map("theirs", {})], foreign)  # same labels, another owner
    kubernetes.client.CoreV1Api().create_namespaced_config_map(
        "default", {"metadata": {"name": "unowned", "labels": LABELS}}
    )
    await client.apply([config_map("unlabelled", {}, labels={"x": "y"})], OWNER)
    deleted = await client.prune(
        "default",
        LABELS,
        keep=[ObjectKey("v1", "ConfigMap", "default", "keep")],
        kinds=[("v1", "ConfigMap"), ("apps/v1", "Deployment")],
        owner_uid=OWNER["uid"],
    )
    assert [k.name for k in deleted] == ["stale"]
    assert sorted(k8s.objects(CM, "default")) == ["keep", "theirs", "unlabelled", "unowned"]


async def test_reading_a_missing_object_returns_none(client: KubeClient) -> None:
    assert await client.get(names.API_VERSION, "Model", "default", "nope") is None
