"""Manifest validation as the API server does it: structural schema, then CEL with a real engine.

We test these aspects:
- every Driftline manifest under examples/ passes the generated schema and every CEL rule, and
  parses into the pydantic models;
- each bad manifest (table below, and the files in tests/unit/api/invalid/) is rejected with the
  API server's wording, naming the field; the pydantic models reject the same manifest too, so the
  two sources of truth cannot disagree;
- every CEL rule in every CRD compiles with cel-python and is seen failing at least once;
- transition rules (oldSelf) run on update only;
- unknown fields, nulls, defaults, apiVersion/kind and metadata.name are handled as the server does.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from pydantic import ValidationError

from driftline.operator.api import Deployment, crdgen, kind_class
from driftline.operator.api.validate import Problem, format_problems, validate_manifest

ROOT = Path(__file__).resolve().parents[3]
QUICKSTART = ROOT / "examples" / "quickstart" / "manifests"
INVALID = Path(__file__).resolve().parent / "invalid"


def _driftline_documents(folder: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(folder.rglob("*.yaml")):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith(
                "driftline.dev/"
            ):
                yield f"{path.relative_to(ROOT)}#{i}", doc


EXAMPLES = list(_driftline_documents(ROOT / "examples"))


def _load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((QUICKSTART / name).read_text())
    return doc


def _parse(doc: dict[str, Any]) -> None:
    cls = kind_class(doc["kind"])
    assert cls is not None
    cls.from_manifest(doc)


def test_examples_exist_for_every_kind() -> None:
    kinds = {doc["kind"] for _, doc in EXAMPLES}
    assert kinds == {"Model", "Deployment", "DriftMonitor", "RetrainPolicy"}


@pytest.mark.parametrize(("where", "doc"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_every_example_is_accepted(where: str, doc: dict[str, Any]) -> None:
    assert validate_manifest(doc) == [], where
    _parse(doc)


# ---------------------------------------------------------------------------------- bad manifests

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _drop(path: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]

    return mutate


BAD: list[tuple[str, str, Mutation, str]] = [
    # (id, base manifest, mutation, expected message)
    (
        "steps-not-ascending",
        "deployment.yaml",
        _set("spec.rollout.steps", [{"weight": 10}, {"weight": 40}, {"weight": 30}]),
        'spec.rollout.steps: Invalid value: "array": steps[2].weight must be greater than the '
        "previous step's weight",
    ),
    (
        "step-weight-equal",
        "deployment.yaml",
        _set("spec.rollout.steps", [{"weight": 50}, {"weight": 50}]),
        "steps[1].weight must be greater than the previous step's weight",
    ),
    (
        "step-weight-above-100",
        "deployment.yaml",
        _set("spec.rollout.steps.2.weight", 130),
        "spec.rollout.steps[2].weight: Invalid value: 130: spec.rollout.steps[2].weight in body "
        "should be less than or equal to 100",
    ),
    (
        "step-weight-zero",
        "deployment.yaml",
        _set("spec.rollout.steps.0.weight", 0),
        "spec.rollout.steps[0].weight: Invalid value: 0: spec.rollout.steps[0].weight in body "
        "should be greater than or equal to 1",
    ),
    (
        "too-many-steps",
        "deployment.yaml",
        _set("spec.rollout.steps", [{"weight": w} for w in range(1, 23)]),
        "spec.rollout.steps: Too many: 22: must have at most 20 items",
    ),
    (
        "no-steps",
        "deployment.yaml",
        _set("spec.rollout.steps", []),
        "spec.rollout.steps: Invalid value: 0: spec.rollout.steps in body should have at least 1 "
        "items",
    ),
    (
        "min-above-max",
        "deployment.yaml",
        _set("spec.autoscaling.minReplicas", 5),
        'spec.autoscaling.minReplicas: Invalid value: "object": minReplicas must be less than or '
        "equal to maxReplicas",
    ),
    (
        "replicas-and-autoscaling",
        "deployment.yaml",
        _set("spec.replicas", 2),
        'spec.replicas: Invalid value: "object": replicas and autoscaling are mutually exclusive',
    ),
    (
        "shadow-percent",
        "deployment.yaml",
        _set("spec.rollout.shadow.percent", 101),
        "spec.rollout.shadow.percent: Invalid value: 101: spec.rollout.shadow.percent in body "
        "should be less than or equal to 100",
    ),
    (
        "shadow-with-direct",
        "deployment.yaml",
        _set("spec.rollout.strategy", "direct"),
        'spec.rollout.shadow: Invalid value: "object": shadow needs strategy canary',
    ),
    (
        "unknown-strategy",
        "deployment.yaml",
        _set("spec.rollout.strategy", "bluegreen"),
        'spec.rollout.strategy: Unsupported value: "bluegreen": supported values: "canary", '
        '"direct"',
    ),
    (
        "bad-duration",
        "deployment.yaml",
        _set("spec.rollout.progressDeadline", "10 minutes"),
        'spec.rollout.progressDeadline: Invalid value: "10 minutes": spec.rollout.progressDeadline '
        "in body should match",
    ),
    (
        "string-replicas",
        "deployment.yaml",
        lambda d: (d["spec"].pop("autoscaling"), d["spec"].update(replicas="two")),
        'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer',
    ),
    ("missing-model", "deployment.yaml", _drop("spec.model"), "spec.model: Required value"),
    (
        "unknown-field",
        "deployment.yaml",
        _set("spec.rollout.stepz", []),
        'unknown field "spec.rollout.stepz"',
    ),
    (
        "tolerate-exists-with-value",
        "deployment.yaml",
        _set("spec.pod", {"tolerations": [{"key": "gpu", "operator": "Exists", "value": "x"}]}),
        'spec.pod.tolerations[0].value: Invalid value: "object": value must be empty when operator '
        "is Exists",
    ),
    (
        "bad-quantity",
        "deployment.yaml",
        _set("spec.resources.requests.cpu", "lots"),
        'spec.resources.requests.cpu: Invalid value: "lots": spec.resources.requests.cpu in body '
        "should match",
    ),
    (
        "sha-upper-case",
        "model-v1.yaml",
        _set("spec.source.sha256", "A" * 64),
        'spec.source.sha256: Invalid value: "' + "A" * 64 + '": spec.source.sha256 in body should '
        "match '^[0-9a-f]{64}$'",
    ),
    (
        "sha-short",
        "model-v1.yaml",
        _set("spec.reference.sha256", "abc123"),
        'spec.reference.sha256: Invalid value: "abc123": spec.reference.sha256 in body should be '
        "at least 64 chars long",
    ),
    (
        "bad-uri-scheme",
        "model-v1.yaml",
        _set("spec.source.uri", "ftp://host/m.onnx"),
        'spec.source.uri: Invalid value: "ftp://host/m.onnx": spec.source.uri in body should match',
    ),
    (
        "duplicate-feature",
        "model-v1.yaml",
        _set("spec.features.1.name", "tenure_months"),
        'spec.features: Invalid value: "object": feature names must be unique',
    ),
    (
        "bad-feature-type",
        "model-v1.yaml",
        _set("spec.features.5.type", "text"),
        'spec.features[5].type: Unsupported value: "text": supported values: "numeric", '
        '"categorical"',
    ),
    (
        "bad-format",
        "model-v1.yaml",
        _set("spec.format", "pickle"),
        'spec.format: Unsupported value: "pickle": supported values: "onnx"',
    ),
    (
        "bad-family",
        "model-v1.yaml",
        _set("spec.family", "Churn_Model"),
        'spec.family: Invalid value: "Churn_Model": spec.family in body should match',
    ),
    (
        "ks-threshold",
        "driftmonitor.yaml",
        _set("spec.tests.numeric", {"method": "ks", "threshold": 5}),
        'spec.tests.numeric.threshold: Invalid value: "object": the threshold of a p-value '
        "test is a significance level: it must be below 1",
    ),
    (
        "chisquare-threshold",
        "driftmonitor.yaml",
        _set("spec.tests.categorical.threshold", 1.5),
        'spec.tests.categorical.threshold: Invalid value: "object": the threshold of a p-value',
    ),
    (
        "prediction-ks-threshold",
        "driftmonitor.yaml",
        _set("spec.predictionDrift", {"method": "ks", "threshold": 2}),
        'spec.predictionDrift.threshold: Invalid value: "object": the threshold of a p-value test',
    ),
    (
        "accuracy-above-one",
        "driftmonitor.yaml",
        _set("spec.performance.threshold", 65),
        'spec.performance.threshold: Invalid value: "object": an accuracy or auc threshold must be '
        "between 0 and 1",
    ),
    (
        "bad-window-kind",
        "driftmonitor.yaml",
        _set("spec.window.kind", "hopping"),
        'spec.window.kind: Unsupported value: "hopping": supported values: "tumbling", "sliding"',
    ),
    (
        "bad-action",
        "driftmonitor.yaml",
        _set("spec.action", "page"),
        'spec.action: Unsupported value: "page"',
    ),
    (
        "no-trigger",
        "retrainpolicy.yaml",
        _set("spec.triggers", {"manual": False}),
        'spec.triggers: Invalid value: "object": at least one trigger is needed',
    ),
    (
        "bad-cron",
        "retrainpolicy.yaml",
        _set("spec.triggers.schedule", "every monday"),
        'spec.triggers.schedule: Invalid value: "every monday": spec.triggers.schedule in body '
        "should match",
    ),
    (
        "env-value-and-secret",
        "retrainpolicy.yaml",
        _set(
            "spec.job.env",
            [{"name": "A", "value": "1", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        ),
        'spec.job.env[0].valueFrom: Invalid value: "object": value and valueFrom are mutually '
        "exclusive",
    ),
    (
        "bad-template",
        "retrainpolicy.yaml",
        _set("spec.output.modelName", "{family}-{build}"),
        'spec.output.modelName: Invalid value: "{family}-{build}": spec.output.modelName in body '
        "should match",
    ),
    (
        "bad-promotion",
        "retrainpolicy.yaml",
        _set("spec.promotion", "yolo"),
        'spec.promotion: Unsupported value: "yolo": supported values: "auto", "manual"',
    ),
    (
        "missing-job-image",
        "retrainpolicy.yaml",
        _drop("spec.job.image"),
        "spec.job.image: Required value",
    ),
]


@pytest.mark.parametrize(
    ("base", "mutate", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_rejecting_a_bad_manifest_names_the_field(
    base: str, mutate: Mutation, expected: str
) -> None:
    doc = copy.deepcopy(_load(base))
    mutate(doc)
    messages = [str(p) for p in validate_manifest(doc)]
    assert any(expected in m for m in messages), messages
    # The pydantic models refuse it too: one source of truth, two enforcement points.
    with pytest.raises(ValidationError):
        _parse(doc)


def _invalid_files() -> list[Path]:
    return sorted(INVALID.glob("*.yaml"))


@pytest.mark.parametrize("path", _invalid_files(), ids=lambda p: p.name)
def test_rejecting_the_invalid_manifest_files(path: Path) -> None:
    text = path.read_text()
    expected = [
        line.removeprefix("# expect:").strip()
        for line in text.splitlines()
        if line.startswith("# expect:")
    ]
    assert expected, f"{path.name} needs a '# expect: <message>' line"
    doc = yaml.safe_load(text)
    messages = [str(p) for p in validate_manifest(doc)]
    for want in expected:
        assert any(want in m for m in messages), (want, messages)
    with pytest.raises(ValidationError):
        _parse(doc)


def test_there_are_invalid_files_for_every_kind() -> None:
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in _invalid_files()}
    assert kinds == {"Model", "Deployment", "DriftMonitor", "RetrainPolicy"}


# ----------------------------------------------------------------------------------- CEL coverage


def _rules() -> Iterator[tuple[str, dict[str, Any]]]:
    def walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for rule in node.get("x-kubernetes-validations", []):
            yield path, rule
        for name, child in node.get("properties", {}).items():
            yield from walk(child, f"{path}.{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                yield from walk(node[key], f"{path}[*]" if key == "items" else f"{path}.*")

    for crd in crdgen.crds():
        yield from walk(
            crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], crd["spec"]["names"]["kind"]
        )


def test_every_cel_rule_compiles_with_a_real_cel_engine() -> None:
    env = celpy.Environment()
    for _path, rule in _rules():
        env.program(env.compile(rule["rule"]))
        if "messageExpression" in rule:
            env.program(env.compile(rule["messageExpression"]))
        assert rule.get("message") or rule.get("messageExpression")


def test_every_cel_rule_is_seen_failing() -> None:
    failed: set[str | None] = set()
    for _id, base, mutate, _ in BAD:
        doc = copy.deepcopy(_load(base))
        mutate(doc)
        failed.update(p.rule for p in validate_manifest(doc))
    model = _load("model-v1.yaml")
    changed = copy.deepcopy(model)
    changed["spec"]["version"] = "v9"
    failed.update(p.rule for p in validate_manifest(changed, old=model))
    unseen = [(path, rule["rule"]) for path, rule in _rules() if rule["rule"] not in failed]
    assert not unseen, f"CEL rules no bad manifest exercises: {unseen}"


def test_transition_rules_run_on_update_only() -> None:
    model = _load("model-v1.yaml")
    changed = copy.deepcopy(model)
    changed["spec"]["description"] = "edited"
    assert validate_manifest(changed) == []
    assert [str(p) for p in validate_manifest(changed, old=model)] == [
        'spec: Invalid value: "object": a Model is one immutable version: create a new Model '
        "instead of changing this one"
    ]
    assert validate_manifest(model, old=model) == []


# ------------------------------------------------------------------------- API-server behaviours


def test_nulls_are_pruned_and_defaults_applied_before_rules() -> None:
    doc = _load("deployment.yaml")
    doc["spec"]["replicas"] = None  # pruned: not a conflict with autoscaling
    doc["spec"]["autoscaling"] = {"maxReplicas": 4}  # minReplicas defaults to 1 before CEL
    assert validate_manifest(doc) == []


def test_numbers_are_doubles_in_cel_even_when_written_as_integers() -> None:
    doc = _load("driftmonitor.yaml")
    doc["spec"]["performance"]["threshold"] = 1  # an int literal in a `number` field
    assert validate_manifest(doc) == []


def test_status_is_ignored_as_on_create() -> None:
    doc = _load("deployment.yaml")
    doc["status"] = {"phase": "Nonsense"}
    assert validate_manifest(doc) == []


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (
            {"apiVersion": "driftline.dev/v1"},
            'apiVersion: Unsupported value: "driftline.dev/v1": supported values: '
            '"driftline.dev/v1alpha1"',
        ),
        (
            {"kind": "Rollout"},
            'kind: Unsupported value: "Rollout": supported values: "Model", "Deployment", '
            '"DriftMonitor", "RetrainPolicy"',
        ),
        ({"metadata": {}}, "metadata.name: Required value: name or generateName is required"),
        (
            {"metadata": {"name": "Churn"}},
            'metadata.name: Invalid value: "Churn": a lowercase RFC 1123',
        ),
    ],
)
def test_envelope_problems(patch: dict[str, Any], expected: str) -> None:
    doc = _load("deployment.yaml") | patch
    messages = [str(p) for p in validate_manifest(doc)]
    assert any(m.startswith(expected) for m in messages), messages


def test_formatting_the_rejection_like_kubectl() -> None:
    problems = [
        Problem("spec.model", "Required value"),
        Problem("spec.replicas", "Invalid value", -1, "must be positive"),
    ]
    assert format_problems("Deployment", "churn", problems) == (
        'Deployment.driftline.dev "churn" is invalid: [spec.model: Required value; '
        "spec.replicas: Invalid value: -1: must be positive]"
    )
    assert format_problems("Model", "m", problems[:1]) == (
        'Model.driftline.dev "m" is invalid: spec.model: Required value'
    )


def test_null_switches_off_a_check_that_has_a_default() -> None:
    # maxErrorRate defaults to 0.01; null must survive the API server (nullable) and mean "off".
    doc = _load("deployment.yaml")
    doc["spec"]["rollout"]["analysis"]["maxErrorRate"] = None
    assert validate_manifest(doc) == []
    assert Deployment.from_manifest(doc).spec.rollout.analysis.max_error_rate is None
    doc["spec"]["rollout"]["analysis"]["maxErrorRate"] = "high"
    assert [str(p) for p in validate_manifest(doc)] == [
        'spec.rollout.analysis.maxErrorRate: Invalid value: "string": '
        'spec.rollout.analysis.maxErrorRate in body must be of type number: "string"'
    ]
