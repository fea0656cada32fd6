"""Local mode's state directory, manifest reading and status rendering (no processes).

We test these aspects: atomic JSON writes leave no temporary file and replace whole files; the
command queue round-trips in order and answers remove a command; unreadable command files are
reported, not fatal; process records and events round-trip; the quickstart manifests parse with
relative file:// URIs made absolute; bad manifests are rejected with the API server's message
naming the file and field; duplicates and dangling model references are refused; the
limitations are said once per topic; the status view renders variants, rollout, analysis and
history from a Deployment.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from driftline.operator.api import Deployment
from driftline.operator.local import manifests as mf
from driftline.operator.local.state import CommandAnswer, ProcessRecord, StateDir, write_atomic
from driftline.operator.statusview import ago, render_deployment, render_table

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def test_writing_atomically_replaces_the_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "x.json"
    write_atomic(target, b'{"a": 1}')
    write_atomic(target, b"{}")
    assert target.read_bytes() == b"{}"
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def test_queueing_and_answering_commands(tmp_path: Path) -> None:
    state = StateDir(tmp_path / ".driftline")
    state.prepare()
    first = state.send_command("promote", target="churn")
    second = state.send_command("apply", manifests=[{"kind": "Model"}])
    (state.commands_dir / "zz-broken.json").write_text("{nope")
    pending = list(state.pending_commands())
    assert [c.id for _, c in pending[:2] if not isinstance(c, str)] == [first.id, second.id]
    assert isinstance(pending[2][1], str) and "zz-broken.json" in pending[2][1]
    path, command = pending[0]
    assert not isinstance(command, str)
    assert state.read_answer(command.id) is None
    state.answer(path, CommandAnswer(id=command.id, ok=True, message="promoted", done_at=NOW))
    assert not path.exists()
    answer = state.read_answer(command.id)
    assert answer is not None and answer.ok and answer.message == "promoted"


def test_round_tripping_processes_and_events(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    record = ProcessRecord(
        name="churn-router",
        role="route",
        deployment="churn",
        pid=12,
        port=8000,
        url="http://127.0.0.1:8000",
        state="ready",
        log="x.log",
    )
    state.write_processes([record])
    assert state.read_processes() == [record]
    state.append_event({"action": "Promoted", "model": "churn-v2"})
    state.append_event({"action": "RolledBack", "model": "churn-v3"})
    assert [e["action"] for e in state.read_events()] == ["Promoted", "RolledBack"]
    assert StateDir(tmp_path / "empty").read_processes() == []
    assert StateDir(tmp_path / "empty").read_up() is None


def test_reading_the_quickstart_manifests(repo_root: Path) -> None:
    folder = repo_root / "examples" / "quickstart" / "manifests"
    bundle = mf.parse_bundle(mf.load_documents([folder]))
    assert sorted(bundle.models) == ["churn-v1", "churn-v2", "churn-v3"]
    assert list(bundle.deployments) == ["churn"]
    uri = bundle.models["churn-v1"].spec.source.uri
    assert uri == "file://" + str((folder.parent / "artifacts" / "model-v1.onnx").resolve())
    notes = mf.limitations(bundle)
    assert any("RetrainPolicy churn-retrain" in n and "cluster" in n for n in notes)
    assert any("autoscaling" in n for n in notes)
    assert len(notes) == len(set(notes))


MODEL = """
apiVersion: driftline.dev/v1alpha1
kind: Model
metadata: {name: m1}
spec:
  family: churn
  version: v1
  source: {uri: "file://m.onnx", sha256: "%s"}
"""
DEPLOYMENT = """
apiVersion: driftline.dev/v1alpha1
kind: Deployment
metadata: {name: web}
spec: {model: %s, replicas: %s}
"""


def _bundle(tmp_path: Path, text: str) -> mf.Bundle:
    path = tmp_path / "all.yaml"
    path.write_text(text)
    return mf.parse_bundle(mf.load_documents([path]))


def test_rejecting_an_invalid_field_with_the_api_servers_words(tmp_path: Path) -> None:
    text = MODEL % ("0" * 64) + "---" + DEPLOYMENT % ("m1", "-1")
    with pytest.raises(mf.ManifestError) as info:
        _bundle(tmp_path, text)
    message = str(info.value)
    assert "all.yaml (document 2)" in message
    assert 'Deployment.driftline.dev "web" is invalid' in message
    assert "spec.replicas" in message


def test_rejecting_a_bad_digest_and_unknown_fields(tmp_path: Path) -> None:
    with pytest.raises(mf.ManifestError, match=r"spec\.source\.sha256"):
        _bundle(tmp_path, MODEL % "abc")
    with pytest.raises(mf.ManifestError, match=r'unknown field "spec\.colour"'):
        _bundle(tmp_path, MODEL % ("0" * 64) + "  colour: red\n")


def test_refusing_duplicates_and_dangling_models(tmp_path: Path) -> None:
    model = MODEL % ("0" * 64)
    with pytest.raises(mf.ManifestError, match="also defined in"):
        _bundle(tmp_path, model + "---" + model)
    with pytest.raises(mf.ManifestError, match=r"spec\.model 'nope' names no Model"):
        _bundle(tmp_path, model + "---" + DEPLOYMENT % ("nope", "1"))


def test_skipping_other_kinds_with_a_note(tmp_path: Path) -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---" + MODEL % ("0" * 64)
    bundle = _bundle(tmp_path, text)
    assert list(bundle.models) == ["m1"]
    assert any("skipped v1/ConfigMap" in n for n in bundle.notes)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("- a\n- b\n", "a manifest is a mapping"), ("a: [\n", "not valid YAML")],
)
def test_rejecting_unreadable_documents(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(mf.ManifestError, match=expected):
        _bundle(tmp_path, text)


def test_rejecting_missing_paths_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(mf.ManifestError, match="no such file"):
        mf.load_documents([tmp_path / "nope.yaml"])
    with pytest.raises(mf.ManifestError, match=r"no \.yaml"):
        mf.load_documents([tmp_path])


def test_resolving_relative_file_uris() -> None:
    base = Path("/srv/manifests")
    assert mf.resolve_uri("file://../a/m.onnx", base) == "file:///srv/a/m.onnx"
    assert mf.resolve_uri("file:///abs/m.onnx", base) == "file:///abs/m.onnx"
    assert mf.resolve_uri("https://x/m.onnx", base) == "https://x/m.onnx"


def _deployment() -> Deployment:
    t = NOW - timedelta(seconds=40)
    return Deployment.from_manifest(
        {
            "apiVersion": "driftline.dev/v1alpha1",
            "kind": "Deployment",
            "metadata": {"name": "churn", "generation": 2},
            "spec": {"model": "churn-v2"},
            "status": {
                "observedGeneration": 2,
                "phase": "Progressing",
                "stableModel": "churn-v1",
                "canaryModel": "churn-v2",
                "canaryWeight": 10,
                "currentStep": 0,
                "rolloutStartedAt": t.isoformat(),
                "stepStartedAt": (NOW - timedelta(seconds=12)).isoformat(),
                "endpoint": "http://127.0.0.1:8000/v2/models/churn/infer",
                "message": "step 1/3, weight 10%",
                "variants": [
                    {
                        "name": "stable",
                        "model": "churn-v1",
                        "weight": 90,
                        "replicas": 1,
                        "readyReplicas": 1,
                    },
                    {
                        "name": "canary",
                        "model": "churn-v2",
                        "weight": 10,
                        "replicas": 1,
                        "readyReplicas": 0,
                    },
                ],
                "analysis": {
                    "time": (NOW - timedelta(seconds=3)).isoformat(),
                    "verdict": "Successful",
                    "checks": [
                        {
                            "name": "errorRate",
                            "value": 0.0,
                            "threshold": 0.01,
                            "passed": True,
                            "samples": 120,
                        }
                    ],
                },
                "history": [
                    {
                        "time": t.isoformat(),
                        "model": "churn-v2",
                        "action": "RolloutStarted",
                        "reason": "SpecChanged",
                        "message": "from churn-v1",
                    }
                ],
            },
        }
    )


def test_rendering_a_deployment_status() -> None:
    text = render_deployment(_deployment(), NOW)
    assert text.splitlines()[0] == "Deployment churn: Progressing (generation 2, observed 2)"
    assert "endpoint    http://127.0.0.1:8000/v2/models/churn/infer" in text
    assert "stable      churn-v1     weight  90%   replicas 1/1" in text
    assert "canary      churn-v2     weight  10%   replicas 0/1" in text
    assert "step 1/3 since 12s; started 40s ago" in text
    assert "analysis    Successful 3s ago: errorRate 0 ok (bound 0.01, n=120)" in text
    assert "RolloutStarted" in text and "SpecChanged: from churn-v1" in text


def test_rendering_the_table_and_relative_times() -> None:
    table = render_table([_deployment()], NOW)
    header, row = table.splitlines()
    assert header.startswith("NAME")
    assert row.split()[:5] == ["churn", "Progressing", "churn-v1", "churn-v2", "10%"]
    assert ago(None, NOW) == "-"
    assert ago(NOW - timedelta(seconds=185), NOW) == "3m5s"
    assert ago(NOW - timedelta(hours=2, minutes=1), NOW) == "2h1m"
