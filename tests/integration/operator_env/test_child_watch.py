"""The child-Deployment watch: readiness reaches the owner's status without waiting for the resync.

We test these aspects:
- with a 60 s resync, a child Deployment's pods becoming ready (the stand-in controller patches
  its status) turn the owner Healthy within seconds: the watch pokes the owner's reconcile;
- a child losing its ready pods takes the owner back to WaitingForPods the same way;
- a reconcile of a settled Deployment reads its Model and children from the watches: no GET of
  the Model or of a child Deployment.
"""

from __future__ import annotations

import time
from pathlib import Path

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
    status_of,
    write_model,
)

from driftline.operator import names
from driftline.operator.settings import OperatorSettings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.usefixtures("kubeconfig"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

RESYNC_S = 60.0
"""Far longer than any wait below: what the test sees cannot come from the resync."""
SOON_S = 15.0
"""The deadline of each wait: a quarter of the resync, generous for a loaded 2-core box."""


async def test_child_readiness_reaches_the_owner_without_the_resync(
    k8s: KMockThread, tmp_path: Path
) -> None:
    settings = OperatorSettings(standalone=True, metrics_port=0, resync_interval=RESYNC_S)
    async with running_operator(settings):
        sha = write_model(tmp_path / "m.onnx", 1.0)
        create(names.MODEL.plural, model_body("tiny-v1", tmp_path / "m.onnx", sha))
        await aeventually(
            lambda: status_of(k8s, MODELS, "tiny-v1").get("phase") == "Ready",
            timeout=SOON_S,
            what="Model Ready",
        )
        create(names.DEPLOYMENT.plural, deployment_body("tiny-v1", replicas=1))
        await aeventually(
            lambda: (
                condition(status_of(k8s, DEPLOYS, "tiny"), "Ready") == ("False", "WaitingForPods")
            ),
            timeout=SOON_S,
            what="waiting for pods",
        )
        started = time.monotonic()
        assert set(mark_ready(k8s)) == {"tiny-stable", "tiny-router"}
        await aeventually(
            lambda: status_of(k8s, DEPLOYS, "tiny").get("phase") == "Healthy",
            timeout=SOON_S,
            what="Healthy before any resync",
        )
        assert time.monotonic() - started < RESYNC_S / 4

        # Settled: the Model and the child Deployments are known from the watches. A spec change
        # reconciles without reading either by name.
        before = k8s.request_counts()
        patch_spec(names.DEPLOYMENT.plural, "tiny", {"replicas": 2})
        await aeventually(
            lambda: k8s.objects(APPS, NS)["tiny-stable"]["spec"]["replicas"] == 2,
            timeout=SOON_S,
            what="replicas patched",
        )
        await aeventually(
            lambda: (
                condition(status_of(k8s, DEPLOYS, "tiny"), "Ready") == ("False", "WaitingForPods")
            ),
            timeout=SOON_S,
            what="one of two pods ready",
        )
        reads = k8s.request_counts() - before
        assert reads[f"GET {MODELS} one"] == 0, reads
        assert reads[f"GET {APPS} one"] == 0, reads
        assert reads[f"GET {APPS} collection"] >= 1, reads  # it did reconcile (apply LISTs)

        # A pod more becomes ready: the owner is Healthy again, still long before the resync.
        started = time.monotonic()
        assert mark_ready(k8s) == ["tiny-stable"]
        await aeventually(
            lambda: status_of(k8s, DEPLOYS, "tiny").get("phase") == "Healthy",
            timeout=SOON_S,
            what="Healthy again",
        )
        assert time.monotonic() - started < RESYNC_S / 4
