"""The local control loop's edges that need no process.

We test these aspects: a Model whose artifact does not match its digest is reported (Model status
Failed with both digests, the Deployment's message naming it, printed once) and nothing starts;
commands for an unknown Deployment and unreadable command files are answered, not fatal; an
``apply`` naming an unknown Model is refused with the reason and changes nothing; every object is
recorded in the state directory.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from driftline.operator.local.manifests import load_documents, parse_bundle
from driftline.operator.local.runtime import LocalRuntime
from driftline.operator.local.settings import LocalSettings
from driftline.operator.local.state import StateDir

MANIFESTS = """
apiVersion: driftline.dev/v1alpha1
kind: Model
metadata: {name: m1}
spec:
  family: churn
  version: v1
  source: {uri: "file://model.onnx", sha256: "%s"}
---
apiVersion: driftline.dev/v1alpha1
kind: Deployment
metadata: {name: web}
spec: {model: m1}
"""


async def test_a_model_that_fails_its_digest_is_reported_and_nothing_starts(
    tmp_path: Path,
) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not the model you are looking for")
    (tmp_path / "all.yaml").write_text(MANIFESTS % ("0" * 64))
    bundle = parse_bundle(load_documents([tmp_path / "all.yaml"]))
    said: list[str] = []
    settings = LocalSettings(state_dir=tmp_path / "state", port=0)
    runtime = LocalRuntime(settings, bundle, say=said.append)
    state = StateDir(settings.state_dir)
    state.prepare()
    try:
        await runtime.tick()
        await runtime.tick()
        model = state.read_object("Model", "m1")
        assert model is not None
        assert model["status"]["phase"] == "Failed"  # type: ignore[index,call-overload]
        actual = hashlib.sha256(b"not the model you are looking for").hexdigest()
        assert actual in str(model["status"]["message"])  # type: ignore[index,call-overload]
        dep = state.read_object("Deployment", "web")
        assert dep is not None
        assert "Model m1 cannot be served" in str(dep["status"]["message"])  # type: ignore[index,call-overload]
        assert sum("cannot be served" in line for line in said) == 1
        assert runtime.supervisor.names() == []

        # commands: an unknown Deployment, a broken file, an apply naming an unknown Model
        unknown = state.send_command("promote", target="nope")
        (state.commands_dir / "0-broken.json").write_text("{")
        bad_apply = state.send_command(
            "apply",
            manifests=[
                {
                    "apiVersion": "driftline.dev/v1alpha1",
                    "kind": "Deployment",
                    "metadata": {"name": "web"},
                    "spec": {"model": "m9"},
                }
            ],
        )
        await runtime.tick()
        answer = state.read_answer(unknown.id)
        assert answer is not None and not answer.ok and "no Deployment 'nope'" in answer.message
        broken = state.read_answer("0-broken")
        assert broken is not None and not broken.ok and "not a command" in broken.message
        refused = state.read_answer(bad_apply.id)
        assert refused is not None and not refused.ok
        assert "spec.model 'm9' names no Model" in refused.message
        assert runtime.bundle.deployments["web"].spec.model == "m1"
        assert list(state.pending_commands()) == []
    finally:
        runtime.supervisor.stop_all_now()
        await runtime.aclose()
