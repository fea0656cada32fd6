"""The resync timer acts on a rollout's own schedule, not on the resync grid.

With ``resync_interval`` 30 s, a canary step of 1 s (analysis interval 1 s, ``noData: pass``: the
analysis sources are unreachable here) must reach ``Promoting`` within seconds (before
``cadence``, each step waited for the next 30-second resync), and the promotion must end within
seconds of the stable Deployment's rollout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import kubernetes
import pytest
from kube_env import KMockThread, aeventually
from kube_objects import (
    DEPLOYS,
    MODELS,
    create,
    deployment_body,
    mark_ready,
    model_body,
    patch_spec,
    status_of,
    write_model,
)
from prometheus_client import CollectorRegistry

from driftline.operator import analysis, names, runner
from driftline.operator.analysis_http import Endpoints
from driftline.operator.k8s import KubeClient, RetryPolicy
from driftline.operator.metrics import Metrics
from driftline.operator.settings import OperatorSettings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.usefixtures("kubeconfig"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

RESYNC_S = 30.0


def unreachable(_: analysis.Target) -> Endpoints:
    return Endpoints(routers=("http://127.0.0.1:1",), monitors=())  # refused at once: no data


@contextlib.asynccontextmanager
async def operator_with_resync(resync: float) -> AsyncIterator[None]:
    settings = OperatorSettings(standalone=True, metrics_port=0, resync_interval=resync)
    client = KubeClient(
        kubernetes.client.ApiClient(), retry=RetryPolicy(attempts=5, base_delay=0.01)
    )
    stop = asyncio.Event()
    task = asyncio.create_task(
        runner.run(
            settings,
            metrics=Metrics(CollectorRegistry()),
            cluster=client,
            stop_flag=stop,
            resolve=unreachable,
        )
    )
    try:
        yield
    finally:
        client.close()
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def test_a_canary_step_advances_at_its_interval_not_at_the_resync(
    k8s: KMockThread, tmp_path: Path
) -> None:
    async with operator_with_resync(RESYNC_S):
        for name, scale in (("tiny-v1", 1.0), ("tiny-v2", 2.0)):
            path = tmp_path / f"{name}.onnx"
            create(names.MODEL.plural, model_body(name, path, write_model(path, scale), name[-2:]))
        for name in ("tiny-v1", "tiny-v2"):
            await aeventually(
                lambda n=name: status_of(k8s, MODELS, n).get("phase") == "Ready",
                timeout=20,
                what=f"{name} Ready",
            )
        rollout = {
            "steps": [{"weight": 50, "pause": "1s"}, {"weight": 100, "pause": "1s"}],
            "analysis": {"interval": "1s", "noData": "pass"},
            "drain": "1s",
        }
        create(names.DEPLOYMENT.plural, deployment_body("tiny-v1", replicas=1, rollout=rollout))
        await aeventually(lambda: mark_ready(k8s) or True, timeout=5)
        await aeventually(
            lambda: status_of(k8s, DEPLOYS, "tiny").get("stableModel") == "tiny-v1",
            timeout=20,
            what="stable tiny-v1",
        )
        started = time.monotonic()
        patch_spec(names.DEPLOYMENT.plural, "tiny", {"model": "tiny-v2"})
        await aeventually(
            lambda: (
                (status_of(k8s, DEPLOYS, "tiny").get("rollout") or {}).get("stage") == "Promoting"
            ),
            timeout=RESYNC_S - 5,
            what="promoting before the first resync",
        )
        took = time.monotonic() - started
        assert 2.0 <= took < 15.0, took  # two 1-second steps, not two 30-second resyncs
        # Promoting polls the stable Deployment's rollout (at most every interval): once the
        # Deployment controller (this test) reports it rolled out on v2, the promotion ends.
        await aeventually(
            lambda: (
                mark_ready(k8s) is not None
                and (s := status_of(k8s, DEPLOYS, "tiny")).get("stableModel") == "tiny-v2"
                and not s.get("canaryModel")
            ),
            timeout=RESYNC_S - 5,
            what="promoted before the first resync",
        )
        assert time.monotonic() - started < 20.0
