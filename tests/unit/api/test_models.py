"""The API models: parsing good and bad input, wire names, defaults, durations.

We test these aspects:
- each kind parses a minimal manifest and round-trips through to_manifest;
- camelCase on the wire, snake_case in Python, both accepted when parsing;
- models are frozen and reject unknown fields;
- bad input fails with an error whose location names the field;
- cross-field rules (ascending weights, min <= max, replicas xor autoscaling, triggers) in Python;
- Go-style durations parse to seconds and bad ones are refused.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from driftline.operator import names
from driftline.operator.api import (
    KINDS,
    Deployment,
    DeploymentSpec,
    DriftMonitor,
    Model,
    RetrainPolicy,
    kind_class,
    parse_duration,
)

SHA = "a" * 64


def _manifest(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "driftline.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "demo", "namespace": "ml", "generation": 2},
        "spec": spec,
    }


MINIMAL: dict[str, dict[str, Any]] = {
    "Model": {
        "family": "churn",
        "version": "v1",
        "source": {"uri": "file://m.onnx", "sha256": SHA},
    },
    "Deployment": {"model": "churn-v1"},
    "DriftMonitor": {"deployment": "churn"},
    "RetrainPolicy": {
        "deployment": "churn",
        "triggers": {"schedule": "0 3 * * 1"},
        "job": {"image": "ghcr.io/acme/train:1"},
        "output": {"storageUri": "s3://models/{family}/{run}/model.onnx"},
    },
}


def _errors(exc: ValidationError) -> list[tuple[str, str]]:
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]


@pytest.mark.parametrize("cls", KINDS, ids=lambda c: c.kind_names.kind)
def test_parsing_a_minimal_manifest_and_round_tripping(cls: type[Model]) -> None:
    kind = cls.kind_names.kind
    obj = cls.from_manifest(_manifest(kind, MINIMAL[kind]))
    assert obj.kind == kind
    assert obj.metadata.name == "demo"
    assert obj.api_version == names.API_VERSION
    again = cls.from_manifest(obj.to_manifest())
    assert again == obj
    assert kind_class(kind) is cls


def test_unknown_kind_has_no_class() -> None:
    assert kind_class("Pod") is None


def test_parsing_the_wrong_kind_names_kind() -> None:
    with pytest.raises(ValidationError) as info:
        Deployment.from_manifest(_manifest("Model", MINIMAL["Deployment"]))
    assert "kind" in [loc for loc, _ in _errors(info.value)]


def test_wire_names_are_camel_case_and_python_names_snake_case() -> None:
    spec = DeploymentSpec.model_validate(
        {
            "model": "m",
            "autoscaling": {
                "minReplicas": 2,
                "maxReplicas": 5,
                "targetCPUUtilizationPercentage": 70,
            },
        }
    )
    assert spec.autoscaling is not None
    assert spec.autoscaling.min_replicas == 2
    assert spec.autoscaling.target_cpu_utilization_percentage == 70
    wire = spec.to_wire()
    assert wire["autoscaling"] == {
        "minReplicas": 2,
        "maxReplicas": 5,
        "targetCPUUtilizationPercentage": 70,
    }
    by_name = DeploymentSpec.model_validate({"model": "m", "rollout": {"on_failure": "pause"}})
    assert by_name.rollout.on_failure == "pause"


def test_defaults_are_filled_in() -> None:
    spec = DeploymentSpec.model_validate({"model": "m"})
    assert spec.rollout.strategy == "canary"
    assert [s.weight for s in spec.rollout.steps] == [10, 50, 100]
    assert spec.rollout.analysis.no_data == "pause"
    assert parse_duration(spec.rollout.progress_deadline) == 600


def test_models_are_frozen() -> None:
    spec = DeploymentSpec.model_validate({"model": "m"})
    with pytest.raises(ValidationError):
        spec.model = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kind", "spec", "field", "text"),
    [
        ("Model", {**MINIMAL["Model"], "sourc": {}}, "spec.sourc", "Extra inputs"),
        (
            "Model",
            {**MINIMAL["Model"], "source": {"uri": "file://m.onnx", "sha256": "ABC"}},
            "spec.source.sha256",
            "64",
        ),
        ("Model", {**MINIMAL["Model"], "format": "pickle"}, "spec.format", "onnx"),
        (
            "Model",
            {**MINIMAL["Model"], "features": [{"name": "a"}, {"name": "a"}]},
            "spec.features",
            "unique",
        ),
        (
            "Model",
            {**MINIMAL["Model"], "features": [{"name": "a", "type": "text"}]},
            "spec.features.0.type",
            "numeric",
        ),
        ("Deployment", {"model": "Bad_Name"}, "spec.model", "pattern"),
        (
            "Deployment",
            {"model": "m", "rollout": {"steps": [{"weight": 40}, {"weight": 30}]}},
            "spec.rollout.steps",
            "steps[1].weight (30) must be greater",
        ),
        (
            "Deployment",
            {"model": "m", "rollout": {"steps": [{"weight": 130}]}},
            "spec.rollout.steps.0.weight",
            "less than or equal to 100",
        ),
        (
            "Deployment",
            {"model": "m", "rollout": {"steps": [{"weight": 10, "pause": "5 min"}]}},
            "spec.rollout.steps.0.pause",
            "Go-style duration",
        ),
        (
            "Deployment",
            {"model": "m", "autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
            "spec.autoscaling",
            "minReplicas (5) must be less than or equal to maxReplicas (2)",
        ),
        (
            "Deployment",
            {"model": "m", "replicas": 2, "autoscaling": {"maxReplicas": 3}},
            "spec",
            "mutually exclusive",
        ),
        (
            "Deployment",
            {"model": "m", "rollout": {"shadow": {"percent": 101}}},
            "spec.rollout.shadow.percent",
            "less than or equal to 100",
        ),
        (
            "Deployment",
            {"model": "m", "rollout": {"strategy": "direct", "shadow": {}}},
            "spec.rollout",
            "shadow needs strategy canary",
        ),
        (
            "DriftMonitor",
            {"deployment": "d", "window": {"kind": "hopping"}},
            "spec.window.kind",
            "tumbling",
        ),
        (
            "DriftMonitor",
            {"deployment": "d", "pValueCorrection": "holm"},
            "spec.pValueCorrection",
            "bonferroni",
        ),
        (
            "RetrainPolicy",
            {**MINIMAL["RetrainPolicy"], "triggers": {"manual": False}},
            "spec.triggers",
            "at least one trigger",
        ),
        (
            "RetrainPolicy",
            {**MINIMAL["RetrainPolicy"], "triggers": {"schedule": "daily"}},
            "spec.triggers.schedule",
            "pattern",
        ),
        (
            "RetrainPolicy",
            {**MINIMAL["RetrainPolicy"], "output": {"storageUri": "s3://m/{nope}/x.onnx"}},
            "spec.output.storageUri",
            "pattern",
        ),
    ],
)
def test_rejecting_bad_input_names_the_field(
    kind: str, spec: dict[str, Any], field: str, text: str
) -> None:
    cls = kind_class(kind)
    assert cls is not None
    with pytest.raises(ValidationError) as info:
        cls.from_manifest(_manifest(kind, spec))
    errors = _errors(info.value)
    matching = [msg for loc, msg in errors if loc == field]
    assert matching, f"no error at {field}: {errors}"
    assert any(text in msg for msg in matching), errors


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("1.5h", 5400), ("0s", 0)],
)
def test_parsing_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "5 m", "1d", "-1s", "m5", "1h 30m"])
def test_refusing_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="Go-style duration"):
        parse_duration(text)


def test_other_kinds_expose_their_names() -> None:
    assert Model.kind_names is names.MODEL
    assert DriftMonitor.kind_names is names.DRIFT_MONITOR
    assert RetrainPolicy.kind_names.short_names == ("dlretrain",)
