"""The command-line entry points: help, version, and the kubectl plugin name."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from driftline.operator import __version__, names
from driftline.operator.cli import driftline, kubectl_driftline


def test_printing_version_names_the_api() -> None:
    result = CliRunner().invoke(driftline, ["version"])
    assert result.exit_code == 0, result.output
    assert __version__ in result.output
    assert names.API_VERSION in result.output


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(driftline, ["--help"])
    assert result.exit_code == 0
    assert "version" in result.output


def test_kubectl_plugin_answers_version() -> None:
    result = CliRunner().invoke(kubectl_driftline, ["version"])
    assert result.exit_code == 0
    assert "driftline" in result.output


def test_unknown_command_fails_with_usage() -> None:
    result = CliRunner().invoke(driftline, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_operator_command_lists_its_flags() -> None:
    result = CliRunner().invoke(driftline, ["operator", "--help"])
    assert result.exit_code == 0, result.output
    for flag in ("--namespace", "--standalone", "--metrics-port", "--priority"):
        assert flag in result.output


def test_operator_command_rejects_invalid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_OPERATOR_API_RETRY_ATTEMPTS", "0")
    result = CliRunner().invoke(driftline, ["operator", "--metrics-port", "0"])
    assert result.exit_code == 2
    assert "api_retry_attempts" in result.output
