"""kopf runs Driftline's registry unmodified against the API emulator.

We test these aspects:
- the operator starts, watches our kinds, and stops cleanly on its stop flag;
- with peering, it registers in the ClusterKopfPeering object and removes itself on exit;
- the ``driftline operator`` command parses its flags into settings (without starting).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from kube_env import KMockThread, aeventually, running_operator

from driftline.operator import names
from driftline.operator.settings import OperatorSettings

pytestmark = pytest.mark.integration

PEERING = "kopf.dev/v1/clusterkopfpeerings"


async def test_operator_watches_our_kinds_and_stops(k8s: KMockThread, kubeconfig: Path) -> None:
    settings = OperatorSettings(standalone=True, metrics_port=0)
    async with running_operator(settings) as ready:
        await asyncio.wait_for(ready.wait(), timeout=10)
        # kopf logs in with the kubeconfig and scans the API groups for its resources.
        await aeventually(lambda: k8s.call(lambda: len(k8s.handler["get /apis"])), what="discovery")


async def test_peering_registers_and_unregisters(k8s: KMockThread, kubeconfig: Path) -> None:
    k8s.call(
        lambda: k8s.handler.seed(
            PEERING,
            {
                "apiVersion": "kopf.dev/v1",
                "kind": "ClusterKopfPeering",
                "metadata": {"name": names.PEERING_NAME},
            },
        )
    )
    settings = OperatorSettings(standalone=False, priority=100, metrics_port=0)
    async with running_operator(settings):
        peers = await aeventually(
            lambda: k8s.objects(PEERING)[names.PEERING_NAME].get("status"),
            what="this operator in the peering status",
        )
        assert [p["priority"] for p in peers.values()] == [100]
    assert not k8s.objects(PEERING)[names.PEERING_NAME].get("status")
