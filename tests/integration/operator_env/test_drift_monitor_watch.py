"""A DriftMonitor change reaches the monitor sidecars of the Deployment it names.

Against the emulator with kopf unmodified and a 30 s resync: a Model with a reference (so its
variants run a monitor sidecar), a Deployment, then a DriftMonitor; its window size appears in
the child Deployment's sidecar environment, and a patch of the DriftMonitor (new window size and
correction) reaches it within seconds (the DriftMonitor watch makes the Deployment due at once),
long before the resync would; the DriftMonitor controller writes the monitor's status (no sidecar
process answers here: Pending, NoMonitorData, for the patched generation). Deleting the
DriftMonitor returns the sidecar to the defaults.
"""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path
from typing import Any

import kubernetes
import numpy as np
import pytest
from kube_env import KMockThread, aeventually
from kube_objects import (
    APPS,
    MODELS,
    NS,
    create,
    deployment_body,
    mark_ready,
    patch_spec,
    status_of,
    write_model,
)
from kube_objects import model_body as plain_model_body
from test_timer_cadence import RESYNC_S, operator_with_resync

from driftline.operator import names

pytestmark = [
    pytest.mark.integration,
    pytest.mark.usefixtures("kubeconfig"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


def monitor_env(k8s: KMockThread) -> dict[str, str] | None:
    """The stable variant's monitor sidecar environment, or None while it has none."""
    child = k8s.objects(APPS, NS).get(names.variant_name("tiny", "stable"))
    if child is None:
        return None
    for container in child["spec"]["template"]["spec"]["containers"]:
        if container["name"] == "monitor":
            return {e["name"]: e.get("value", "") for e in container.get("env", [])}
    return None


def drift_monitor(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": "DriftMonitor",
        "metadata": {"name": "tiny-drift"},
        "spec": {"deployment": "tiny", **spec},
    }


async def test_a_drift_monitor_change_reaches_the_sidecar_flags(
    k8s: KMockThread, tmp_path: Path
) -> None:
    path = tmp_path / "tiny-v1.onnx"
    body = plain_model_body("tiny-v1", path, write_model(path, 1.0))
    buf = io.BytesIO()
    rng = np.random.default_rng(3)
    np.savez(buf, **{c: rng.normal(size=300) for c in ("a", "b", "c")})
    ref = tmp_path / "ref.npz"
    ref.write_bytes(buf.getvalue())
    digest = hashlib.sha256(ref.read_bytes()).hexdigest()
    body["spec"]["reference"] = {"uri": f"file://{ref}", "sha256": digest}
    rows = "DRIFTLINE_MONITOR_WINDOW_ROWS"
    async with operator_with_resync(RESYNC_S):
        create(names.MODEL.plural, body)
        await aeventually(
            lambda: status_of(k8s, MODELS, "tiny-v1").get("phase") == "Ready",
            timeout=20,
            what="tiny-v1 Ready with its profile",
        )
        create(names.DEPLOYMENT.plural, deployment_body("tiny-v1", replicas=1))
        await aeventually(lambda: monitor_env(k8s) is not None, timeout=20, what="a sidecar")
        mark_ready(k8s)
        before = monitor_env(k8s)
        assert before is not None and "DRIFTLINE_MONITOR_CORRECTION" not in before

        started = time.monotonic()
        create(names.DRIFT_MONITOR.plural, drift_monitor({"window": {"size": 300}}))
        await aeventually(
            lambda: (monitor_env(k8s) or {}).get(rows) == "300",
            timeout=RESYNC_S - 10,
            what="the DriftMonitor's window in the sidecar",
        )
        patch_spec(
            names.DRIFT_MONITOR.plural,
            "tiny-drift",
            {"window": {"size": 700}, "pValueCorrection": "fdr"},
        )
        await aeventually(
            lambda: (
                (monitor_env(k8s) or {}).get(rows) == "700"
                and (monitor_env(k8s) or {}).get("DRIFTLINE_MONITOR_CORRECTION") == "fdr"
            ),
            timeout=RESYNC_S - 10,
            what="the patched DriftMonitor in the sidecar",
        )
        # The DriftMonitor controller evaluates it on its timer: no sidecar process answers here
        # (the Services do not resolve), so its status says so, for the patched generation.
        evaluated = await aeventually(
            lambda: (
                st
                if (st := status_of(k8s, names.DRIFT_MONITOR.resource, "tiny-drift")).get(
                    "observedGeneration"
                )
                == 2
                else None
            ),
            timeout=RESYNC_S - 10,
            what="the DriftMonitor's status",
        )
        assert evaluated["phase"] == "Pending" and evaluated["drifted"] is False
        reasons = {c["type"]: c["reason"] for c in evaluated["conditions"]}
        assert reasons == {
            "Ready": "NoMonitorData", "Reconciling": "NoMonitorData",
            "Stalled": "NoMonitorData", "Drifted": "NoMonitorData",
        }  # fmt: skip
        assert "lastEvaluated" in evaluated
        kubernetes.client.CustomObjectsApi().delete_namespaced_custom_object(
            names.GROUP, names.VERSION, NS, names.DRIFT_MONITOR.plural, "tiny-drift"
        )
        await aeventually(
            lambda: "DRIFTLINE_MONITOR_CORRECTION" not in (monitor_env(k8s) or {"x": ""}),
            timeout=RESYNC_S - 10,
            what="the defaults back after the delete",
        )
        assert time.monotonic() - started < RESYNC_S  # the watch, not the resync, did it
