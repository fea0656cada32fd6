"""`driftline validate` and the pydantic error summary.

We test these aspects:
- valid example folders pass with exit 0, an invalid file fails with exit 1 and the API server's
  message naming the field; unreadable input exits 2; non-Driftline documents are skipped;
- stdin is accepted;
- field_problems/summarize render pydantic errors as Kubernetes field paths.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from driftline.operator.api import DeploymentSpec
from driftline.operator.api.errors import field_path, field_problems, summarize
from driftline.operator.cli import driftline

ROOT = Path(__file__).resolve().parents[3]


def test_validating_the_examples_passes() -> None:
    result = CliRunner().invoke(driftline, ["validate", str(ROOT / "examples")])
    assert result.exit_code == 0, result.output
    assert result.output.count(": valid") == 6


def test_validating_an_invalid_file_names_the_field() -> None:
    bad = ROOT / "tests" / "unit" / "api" / "invalid" / "model-bad-digest.yaml"
    result = CliRunner().invoke(driftline, ["validate", str(bad)])
    assert result.exit_code == 1
    assert 'Model.driftline.dev "churn-v1" is invalid:' in result.output
    assert 'spec.format: Unsupported value: "pickle"' in result.output


def test_other_documents_are_skipped_and_stdin_works() -> None:
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n"
        "apiVersion: driftline.dev/v1alpha1\nkind: Deployment\nmetadata: {name: web}\n"
        "spec: {model: m, replicas: -1}\n"
    )
    result = CliRunner().invoke(driftline, ["validate", "-"], input=text)
    assert result.exit_code == 1
    assert "<stdin>#1 Deployment/web" in result.output
    assert "spec.replicas: Invalid value: -1" in result.output
    assert "1 Driftline manifest(s) checked, 1 invalid" in result.output


@pytest.mark.parametrize("content", ["key: [unclosed", None])
def test_unreadable_input_exits_2(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "x.yaml"
    if content is not None:
        path.write_text(content)
    result = CliRunner().invoke(driftline, ["validate", str(path)])
    assert result.exit_code == 2
    assert "cannot read" in result.output


def test_field_paths_use_kubernetes_syntax() -> None:
    assert field_path(("rollout", "steps", 1, "weight"), root="spec") == (
        "spec.rollout.steps[1].weight"
    )
    assert field_path(()) == ""


def test_summarizing_a_validation_error() -> None:
    with pytest.raises(ValidationError) as info:
        DeploymentSpec.model_validate(
            {"model": "m", "rollout": {"steps": [{"weight": 0}], "stepz": 1}, "replicas": -1}
        )
    lines = field_problems(info.value, root="spec")
    assert "spec.rollout.steps[0].weight: Input should be greater than or equal to 1" in lines
    assert "spec.rollout.stepz: unknown field" in lines
    assert any(line.startswith("spec.replicas: ") for line in lines)
    short = summarize(info.value, root="spec", limit=1)
    assert short.endswith("(and 2 more)")


def test_summarizing_strips_the_value_error_prefix() -> None:
    with pytest.raises(ValidationError) as info:
        DeploymentSpec.model_validate(
            {"model": "m", "replicas": 1, "autoscaling": {"maxReplicas": 2}}
        )
    assert field_problems(info.value, root="spec") == [
        "spec: replicas and autoscaling are mutually exclusive: set one"
    ]
