"""Models with remote artifacts and reference data, end to end: kopf, the emulator, an HTTP origin.

We test these aspects:
- a Model whose artifact and reference are served over HTTP (127.0.0.1) becomes Ready: signature,
  size, the profile ConfigMap (owned by the Model, a profile that loads, versioned with both
  digests) and its name and size in status; a Deployment's monitor sidecar mounts it and takes
  its flags from the DriftMonitor watching the Deployment; a deleted profile ConfigMap is rebuilt
  when the operator resumes;
- a wrong digest, an unreadable model and a reference whose columns do not match the features
  each fail the Model (Ready=False, Stalled=True) with the reason that says which, are fetched
  once (no retry storm), and a Deployment asked to roll onto one keeps serving its stable Model;
- an origin answering 503 leaves the Model Pending (FetchRetrying), retried with backoff, and
  Ready once the origin recovers.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import kubernetes
import numpy as np
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
    patch_spec,
    status_of,
    write_model,
)

from driftline.operator import names
from driftline.operator.settings import OperatorSettings
from driftline.serving.drift.profile import profile_from_json

pytestmark = [
    pytest.mark.integration,
    pytest.mark.usefixtures("kubeconfig"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

SETTINGS = OperatorSettings(
    standalone=True, metrics_port=0, resync_interval=0.3, temporary_error_delay=0.2
)


class Origin:
    """An HTTP origin on 127.0.0.1: files by path, and paths that answer 503 a few times first."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.busy: dict[str, int] = {}
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with origin.lock:
                    origin.hits[self.path] = origin.hits.get(self.path, 0) + 1
                    busy = origin.busy.get(self.path, 0)
                    if busy:
                        origin.busy[self.path] = busy - 1
                    body = origin.files.get(self.path)
                status = 503 if busy else (200 if body is not None else 404)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body) if status == 200 and body else 0))
                self.end_headers()
                if status == 200 and body:
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def put(self, path: str, body: bytes) -> str:
        """Serve ``body`` at ``path``; its sha256."""
        self.files[path] = body
        return hashlib.sha256(body).hexdigest()


@pytest.fixture
def origin() -> Iterator[Origin]:
    o = Origin()
    o.thread.start()
    try:
        yield o
    finally:
        o.server.shutdown()
        o.server.server_close()
        o.thread.join(5)


def reference(columns: tuple[str, ...] = ("a", "b", "c", "label")) -> bytes:
    rng = np.random.default_rng(7)
    buf = io.BytesIO()
    np.savez(buf, **{c: rng.normal(size=400) for c in columns})
    return buf.getvalue()


def model_bytes(tmp_path: Path) -> bytes:
    write_model(tmp_path / "m.onnx", 1.0)
    return (tmp_path / "m.onnx").read_bytes()


def model_body(
    name: str, origin: Origin, path: str, sha: str, ref: tuple[str, str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "family": "tiny",
        "version": name.rsplit("-", 1)[-1],
        "source": {"uri": f"{origin.url}{path}", "sha256": sha},
        "features": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
    }
    if ref is not None:
        spec["reference"] = {"uri": f"{origin.url}{ref[0]}", "sha256": ref[1]}
    return {
        "apiVersion": names.API_VERSION,
        "kind": "Model",
        "metadata": {"name": name},
        "spec": spec,
    }


def phase_is(k8s: KMockThread, name: str, phase: str) -> dict[str, Any] | None:
    s = status_of(k8s, MODELS, name)
    return s if s.get("phase") == phase else None


async def test_http_model_with_reference_becomes_ready_with_its_profile(
    k8s: KMockThread, origin: Origin, tmp_path: Path
) -> None:
    sha = origin.put("/m/model.onnx", model_bytes(tmp_path))
    ref_sha = origin.put("/m/ref.npz", reference())
    create(
        names.DRIFT_MONITOR.plural,
        {
            "apiVersion": names.API_VERSION,
            "kind": "DriftMonitor",
            "metadata": {"name": "tiny-drift"},
            "spec": {
                "deployment": "tiny",
                "window": {"size": 2000},
                "minSamples": 100,
                "tests": {"numeric": {"method": "ks", "threshold": 0.01}},
            },
        },
    )
    async with running_operator(SETTINGS):
        create(
            names.MODEL.plural,
            model_body("tiny-v1", origin, "/m/model.onnx", sha, ("/m/ref.npz", ref_sha)),
        )
        status = await aeventually(lambda: phase_is(k8s, "tiny-v1", "Ready"), what="Ready")
        assert status["verifiedSha256"] == sha
        assert status["signature"]["inputs"] == [
            {"name": "x", "datatype": "FP32", "shape": [-1, 3]}
        ]
        assert status["profileConfigMap"] == "tiny-v1-profile"
        assert condition(status, "Ready") == ("True", "Verified")
        cm = k8s.objects("v1/configmaps", NS)["tiny-v1-profile"]
        text = cm["data"][names.PROFILE_KEY]
        assert status["profileSizeBytes"] == len(text.encode())
        uid = k8s.objects(MODELS, NS)["tiny-v1"]["metadata"]["uid"]
        assert [r["uid"] for r in cm["metadata"]["ownerReferences"]] == [uid]
        profile = profile_from_json(json.loads(text))
        # the label column is not a feature; the model's output over the reference is
        assert profile.layout.names == ("a", "b", "c", "prediction")
        assert status["predictionReference"] == "output 'y' column 0 (numeric)"
        assert "prediction reference: output 'y'" in status["message"]
        assert (profile.reference_sha256, profile.model_sha256) == (ref_sha, sha)
        assert profile.reference.rows == 400

        create(names.DEPLOYMENT.plural, deployment_body("tiny-v1"))
        child = await aeventually(
            lambda: k8s.objects(APPS, NS).get("tiny-stable"), what="stable child"
        )
        pod = child["spec"]["template"]["spec"]
        assert {"name": "profile", "configMap": {"name": "tiny-v1-profile", "items": [
            {"key": "profile.json", "path": "profile.json"}]}} in pod["volumes"]  # fmt: skip
        monitor = next(c for c in pod["containers"] if c["name"] == "monitor")
        env = {v["name"]: v["value"] for v in monitor["env"]}
        assert env["DRIFTLINE_MONITOR_WINDOW_ROWS"] == "2000"
        assert (env["DRIFTLINE_MONITOR_NUMERIC_EFFECT"], env["DRIFTLINE_MONITOR_ALPHA"]) == (
            "ks",
            "0.01",
        )
        assert origin.hits["/m/model.onnx"] == 1 and origin.hits["/m/ref.npz"] == 1

    # The profile ConfigMap deleted behind the operator's back is rebuilt when it resumes.
    kubernetes.client.CoreV1Api().delete_namespaced_config_map("tiny-v1-profile", NS)
    assert "tiny-v1-profile" not in k8s.objects("v1/configmaps", NS)
    async with running_operator(SETTINGS):
        again = await aeventually(
            lambda: k8s.objects("v1/configmaps", NS).get("tiny-v1-profile"), what="rebuilt"
        )
        assert again["data"][names.PROFILE_KEY] == text
        assert origin.hits["/m/ref.npz"] == 2


async def test_permanent_failures_say_which_and_nothing_rolls_onto_them(
    k8s: KMockThread, origin: Origin, tmp_path: Path
) -> None:
    good = origin.put("/good.onnx", model_bytes(tmp_path))
    junk = origin.put("/junk.onnx", b"this is not an ONNX graph")
    ref_sha = origin.put("/ref.npz", reference())
    narrow_sha = origin.put("/narrow.npz", reference(("a", "b")))
    digest = model_body("tiny-digest", origin, "/good.onnx", "0" * 64)
    columns = model_body("tiny-columns", origin, "/good.onnx", good, ("/narrow.npz", narrow_sha))
    cases = {
        "tiny-digest": (digest, "DigestMismatch"),
        "tiny-junk": (model_body("tiny-junk", origin, "/junk.onnx", junk), "UnreadableModel"),
        "tiny-columns": (columns, "ReferenceColumnsMismatch"),
        "tiny-missing": (model_body("tiny-missing", origin, "/none.onnx", good), "FetchFailed"),
    }
    async with running_operator(SETTINGS):
        v1 = model_body("tiny-v1", origin, "/good.onnx", good, ("/ref.npz", ref_sha))
        create(names.MODEL.plural, v1)
        await aeventually(lambda: phase_is(k8s, "tiny-v1", "Ready"), what="v1 Ready")
        create(names.DEPLOYMENT.plural, deployment_body("tiny-v1"))
        await aeventually(
            lambda: status_of(k8s, DEPLOYS, "tiny").get("stableModel") == "tiny-v1", what="stable"
        )
        for body, _ in cases.values():
            create(names.MODEL.plural, body)
        for name, (_, reason) in cases.items():
            status = await aeventually(lambda n=name: phase_is(k8s, n, "Failed"), what=name)
            assert condition(status, "Ready") == ("False", reason), name
            assert condition(status, "Stalled") == ("True", reason), name
        columns = status_of(k8s, MODELS, "tiny-columns")["message"]
        assert "no column for 'c'" in columns and "the reference has 'a', 'b'" in columns
        assert "0" * 64 in status_of(k8s, MODELS, "tiny-digest")["message"]
        assert "tiny-columns-profile" not in k8s.objects("v1/configmaps", NS)

        # Roll the Deployment onto a failed Model: it keeps serving v1, waiting for the Model.
        patch_spec(names.DEPLOYMENT.plural, "tiny", {"model": "tiny-junk"})
        generation = k8s.objects(DEPLOYS, NS)["tiny"]["metadata"]["generation"]
        dep = await aeventually(
            lambda: (
                status_of(k8s, DEPLOYS, "tiny").get("observedGeneration") == generation
                and status_of(k8s, DEPLOYS, "tiny")
            ),
            what="the change observed",
        )
        assert dep["stableModel"] == "tiny-v1"
        assert "canaryModel" not in dep
        assert set(k8s.objects(APPS, NS)) == {"tiny-stable", "tiny-router"}
        assert (
            k8s.objects(APPS, NS)["tiny-stable"]["metadata"]["labels"][names.LABEL_MODEL]
            == "tiny-v1"
        )
        # Several resyncs later, no failed artifact was fetched again (no retry storm).
        reads = k8s.requests("GET", APPS)
        await aeventually(lambda: k8s.requests("GET", APPS) >= reads + 6, what="resyncs")
        assert origin.hits["/junk.onnx"] == 1
        assert origin.hits["/narrow.npz"] == 1
        assert origin.hits["/none.onnx"] == 1


async def test_a_temporary_503_then_success_recovers(
    k8s: KMockThread, origin: Origin, tmp_path: Path
) -> None:
    sha = origin.put("/busy.onnx", model_bytes(tmp_path))
    origin.busy["/busy.onnx"] = 2
    async with running_operator(SETTINGS):
        create(names.MODEL.plural, model_body("tiny-v1", origin, "/busy.onnx", sha))
        pending = await aeventually(lambda: phase_is(k8s, "tiny-v1", "Pending"), what="Pending")
        assert condition(pending, "Ready") == ("False", "FetchRetrying")
        assert "503" in pending["message"]
        ready = await aeventually(lambda: phase_is(k8s, "tiny-v1", "Ready"), what="recovered")
        assert (condition(ready, "Stalled") or ("False", ""))[0] == "False"
        assert origin.hits["/busy.onnx"] == 3
