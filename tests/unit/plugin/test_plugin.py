"""``kubectl driftline`` over a fake ``Api``: arguments, messages, exit codes (no network)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from driftline.operator import names
from driftline.operator.api import Deployment
from driftline.operator.cli import kubectl_driftline
from driftline.operator.errors import ApiRejected, ApiUnavailable
from driftline.operator.plugin import PluginContext, PluginError, advice, command_message
from driftline.operator.rollout import parse_command

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


def _obj(name: str, namespace: str = "team-a", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "generation": 2},
        "spec": {"model": "churn-v2"},
        **({"status": status} if status else {}),
    }


CANARY = {
    "observedGeneration": 2,
    "phase": "Progressing",
    "stableModel": "churn-v1",
    "canaryModel": "churn-v2",
    "canaryWeight": 10,
    "currentStep": 0,
    "rolloutStartedAt": (NOW - timedelta(seconds=40)).isoformat(),
    "stepStartedAt": (NOW - timedelta(seconds=12)).isoformat(),
    "message": "step 1/3, weight 10%",
    "variants": [
        {"name": "stable", "model": "churn-v1", "weight": 90, "replicas": 2, "readyReplicas": 2},
        {"name": "canary", "model": "churn-v2", "weight": 10, "replicas": 1, "readyReplicas": 1},
    ],
    "rollout": {"stage": "Canary", "target": "churn-v2"},
}
HEALTHY = {"phase": "Healthy", "stableModel": "churn-v1", "rollout": {"stage": "Idle"}}


class FakeApi:
    def __init__(self, objects: list[dict[str, Any]], namespace: str = "team-a") -> None:
        self.objects = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects}
        self.namespace = namespace
        self.server = "https://fake:6443"
        self.calls: list[tuple[str, Any, ...]] = []
        self.closed = False
        self.fail: Exception | None = None

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get", namespace, name))
        if self.fail:
            raise self.fail
        return copy.deepcopy(self.objects.get((namespace, name)))

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        self.calls.append(("list", namespace))
        if self.fail:
            raise self.fail
        return [copy.deepcopy(o) for (ns, _), o in self.objects.items() if namespace in (None, ns)]

    def patch(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any] | None:
        self.calls.append(("patch", namespace, name, body))
        if self.fail:
            raise self.fail
        obj = self.objects.get((namespace, name))
        if obj is None:
            return None
        obj["metadata"].setdefault("annotations", {}).update(body["metadata"]["annotations"])
        return copy.deepcopy(obj)

    def close(self) -> None:
        self.closed = True


def _run(api: FakeApi, *args: str) -> Any:
    seen: list[tuple[str | None, str | None]] = []

    def connect(kubeconfig: str | None, context: str | None) -> FakeApi:
        seen.append((kubeconfig, context))
        return api

    ctx = PluginContext(connect=connect, now=lambda: NOW)
    result = CliRunner().invoke(kubectl_driftline, list(args), obj=ctx, env={"KUBECONFIG": ""})
    result.connected = seen
    return result


def test_status_of_one_deployment_renders_the_shared_view() -> None:
    api = FakeApi([_obj("churn", **CANARY)])
    result = _run(api, "status", "churn")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Deployment churn: Progressing (generation 2, observed 2)"
    assert "canary      churn-v2     weight  10%   replicas 1/1" in result.output
    assert "step 1/3 since 12s; started 40s ago" in result.output
    assert api.calls == [("get", "team-a", "churn")]  # the context's namespace by default
    assert api.closed


def test_status_without_a_name_is_a_table_of_the_namespace() -> None:
    api = FakeApi([_obj("b", **HEALTHY), _obj("a", **CANARY), _obj("c", "team-b", **HEALTHY)])
    result = _run(api, "status", "-n", "team-a")
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.startswith("NAME")
    assert [r.split()[:2] for r in rows] == [["a", "Progressing"], ["b", "Healthy"]]
    assert api.calls == [("list", "team-a")]


def test_status_all_namespaces_adds_a_namespace_column() -> None:
    api = FakeApi([_obj("a", **HEALTHY), _obj("c", "team-b", **CANARY)])
    result = _run(api, "status", "-A")
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split()[:2] == ["NAMESPACE", "NAME"]
    assert [r.split()[:3] for r in rows] == [
        ["team-a", "a", "Healthy"],
        ["team-b", "c", "Progressing"],
    ]
    assert api.calls == [("list", None)]


def test_status_of_an_empty_namespace_says_so() -> None:
    result = _run(FakeApi([]), "status", "-n", "empty")
    assert result.exit_code == 0
    assert "No Driftline Deployments found in namespace empty." in result.output


def test_status_json_and_yaml_print_the_objects() -> None:
    api = FakeApi([_obj("churn", **CANARY)])
    one = json.loads(_run(api, "status", "churn", "-o", "json").output)
    assert one["status"]["canaryWeight"] == 10
    listed = yaml.safe_load(_run(api, "status", "-o", "yaml").output)
    assert listed["kind"] == "List"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["churn"]


def test_status_name_and_all_namespaces_is_a_usage_error() -> None:
    result = _run(FakeApi([]), "status", "churn", "-A")
    assert result.exit_code == 2
    assert "exclude each other" in result.output


def test_not_found_names_the_object_and_namespace() -> None:
    for args in (("status", "nope", "-n", "team-b"), ("promote", "nope", "-n", "team-b")):
        result = _run(FakeApi([_obj("churn", **CANARY)]), *args)
        assert result.exit_code == 1, args
        assert 'Driftline Deployment "nope" not found in namespace "team-b"' in result.output
        assert "Traceback" not in result.output


@pytest.mark.parametrize("verb", ["promote", "abort", "retry", "pause", "resume"])
def test_each_verb_patches_the_command_annotation_with_a_fresh_id(verb: str) -> None:
    api = FakeApi([_obj("churn", **CANARY)])
    first = _run(api, verb, "churn", "--context", "prod", "--kubeconfig", "/k")
    second = _run(api, verb, "churn")
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert first.connected == [("/k", "prod")]
    patches = [c for c in api.calls if c[0] == "patch"]
    values = [p[3]["metadata"]["annotations"][names.ANNOTATION_COMMAND] for p in patches]
    assert len(values) == 2
    commands = [parse_command(v) for v in values]
    assert {c.verb for c in commands} == {verb}
    assert commands[0].id != commands[1].id
    assert commands[0].id.startswith(f"{int(NOW.timestamp())}-")
    assert patches[0][1:3] == ("team-a", "churn")
    assert f"{verb} requested for Deployment churn in namespace team-a" in first.output
    assert "kubectl driftline status churn -n team-a" in first.output


def test_a_command_that_will_not_apply_is_sent_with_a_note() -> None:
    api = FakeApi([_obj("churn", **HEALTHY)])
    result = _run(api, "promote", "churn")
    assert result.exit_code == 0
    assert "Note: there is no rollout to promote (phase Healthy, stage Idle)" in result.output
    assert "CommandIgnored" in result.output


def test_advice_follows_the_state_machine_rules() -> None:
    canary = Deployment.from_manifest(_obj("churn", **CANARY))
    paused = Deployment.from_manifest(_obj("churn", **{**CANARY, "pauseReason": "ManualPause"}))
    aborted = Deployment.from_manifest(
        _obj("churn", phase="Degraded", rollout={"stage": "Aborted", "target": "churn-v2"})
    )
    fresh = Deployment.from_manifest(_obj("churn"))
    assert advice("promote", canary) is None
    assert advice("abort", canary) is None
    assert advice("pause", canary) is None
    assert "no paused rollout" in (advice("resume", canary) or "")
    assert advice("resume", paused) is None
    assert "no running rollout" in (advice("pause", paused) or "")
    assert advice("retry", aborted) is None
    assert advice("promote", aborted) is None
    assert "no rollout in progress" in (advice("abort", aborted) or "")
    assert "not reported a status" in (advice("promote", fresh) or "")


def test_confirmation_names_the_effect_on_traffic() -> None:
    text = command_message("abort", "churn", "team-a", "abort:1-a")
    assert "driftline.dev/command=abort:1-a" in text
    assert "all traffic returns to stable" in text


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ApiUnavailable("get: connection failed", status=0), "cannot reach the Kubernetes API"),
        (ApiRejected("get: HTTP 403: forbidden", status=403), "check your RBAC permissions"),
    ],
)
def test_api_errors_exit_1_with_one_line(error: Exception, expected: str) -> None:
    api = FakeApi([_obj("churn", **CANARY)])
    api.fail = error
    for args in (("status", "churn"), ("status",), ("abort", "churn")):
        result = _run(api, *args)
        assert result.exit_code == 1, (args, result.output)
        assert expected in result.output and "https://fake:6443" in result.output
        assert "Traceback" not in result.output
        assert api.closed


def test_a_connect_failure_exits_1() -> None:
    def connect(kubeconfig: str | None, context: str | None) -> FakeApi:
        raise PluginError(f"no kubeconfig found at {kubeconfig}")

    result = CliRunner().invoke(
        kubectl_driftline, ["status", "--kubeconfig", "/none"], obj=PluginContext(connect=connect)
    )
    assert result.exit_code == 1
    assert "no kubeconfig found at /none" in result.output


def test_an_object_that_does_not_parse_is_named() -> None:
    bad = _obj("churn", **CANARY)
    bad["status"]["canaryWeight"] = 250
    result = _run(FakeApi([bad]), "status", "churn")
    assert result.exit_code == 1
    assert "Deployment team-a/churn does not parse: status.canaryWeight" in result.output


def test_help_of_every_command_explains_traffic() -> None:
    for cmd in ("status", "promote", "abort", "retry", "pause", "resume"):
        result = CliRunner().invoke(kubectl_driftline, [cmd, "--help"])
        assert result.exit_code == 0
        assert "traffic" in result.output, cmd
        for flag in ("--kubeconfig", "--context", "--namespace"):
            assert flag in result.output
