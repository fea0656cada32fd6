"""The one settings-field -> click option builder (``driftline.serving.flags``).

Covers: ``serve`` and ``monitor`` get one flag per settings field, each explained in ``--help``
with its default and environment variable; a monitor flag is read from its environment
variable by click (and the flag on the command line wins); an invalid environment value is a
usage error naming the variable; a field type without a flag form is refused.
"""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from driftline.operator.cli import driftline
from driftline.serving.cli import serve
from driftline.serving.flags import option_for, options_for, settings_from_flags
from driftline.serving.monitor.cli import monitor
from driftline.serving.monitor.settings import MonitorSettings
from driftline.serving.settings import ServerSettings


@pytest.mark.parametrize(
    ("command", "settings_cls", "prefix"),
    [
        ("serve", ServerSettings, "DRIFTLINE_SERVE_"),
        ("monitor", MonitorSettings, "DRIFTLINE_MONITOR_"),
    ],
)
def test_help_explains_every_flag_with_default_and_env_var(
    command: str, settings_cls: type[BaseModel], prefix: str
) -> None:
    result = CliRunner().invoke(driftline, [command, "--help"])
    assert result.exit_code == 0, result.output
    cmd = {"serve": serve, "monitor": monitor}[command]
    ctx = click.Context(cmd)
    records = {p.name: p.get_help_record(ctx) for p in cmd.params}
    assert set(settings_cls.model_fields) <= set(records)
    for name, info in settings_cls.model_fields.items():
        record = records[name]
        assert record is not None
        opts, text = record
        assert opts.startswith(f"--{name.replace('_', '-')}")
        assert opts.split()[0].split("/")[0] in result.output
        assert f"env var: {prefix}{name.upper()}" in text, text
        assert ("[required]" in text) if info.is_required() else ("[default:" in text), text
        first_word = (info.description or "").split()[0].replace("``", "")
        assert text.startswith(first_word), text


def _capture(command: click.Command) -> tuple[click.Command, list[dict[str, object]]]:
    """``command``'s own options with a callback that records the parsed flags."""
    seen: list[dict[str, object]] = []
    return click.Command("probe", params=command.params, callback=lambda **f: seen.append(f)), seen


def test_a_monitor_flag_is_read_from_its_environment_variable(tmp_path: Path) -> None:
    probe, seen = _capture(monitor)
    env = {
        "DRIFTLINE_MONITOR_PROFILE": str(tmp_path / "p.json"),
        "DRIFTLINE_MONITOR_WINDOW_ROWS": "2500",
        "DRIFTLINE_MONITOR_CORRECTION": "fdr",
    }
    result = CliRunner().invoke(probe, [], env=env)
    assert result.exit_code == 0, result.output
    flags = seen[0]
    assert flags["profile"] == tmp_path / "p.json"
    assert flags["window_rows"] == 2500
    assert flags["correction"] == "fdr"
    assert flags["port"] is None  # not set anywhere: the settings default applies
    settings = settings_from_flags(MonitorSettings, flags)
    assert (settings.window_rows, settings.correction, settings.port) == (2500, "fdr", 8081)


def test_a_flag_on_the_command_line_wins_over_the_environment(tmp_path: Path) -> None:
    probe, seen = _capture(monitor)
    result = CliRunner().invoke(
        probe, ["--profile", str(tmp_path / "p.json"), "--port", "9001"],
        env={"DRIFTLINE_MONITOR_PORT": "9002"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert seen[0]["port"] == 9001


def test_an_invalid_environment_value_is_a_usage_error_naming_the_variable() -> None:
    probe, seen = _capture(monitor)
    result = CliRunner().invoke(probe, [], env={"DRIFTLINE_MONITOR_PORT": "eighty"})
    assert result.exit_code == 2
    assert "DRIFTLINE_MONITOR_PORT" in result.output
    assert seen == []


def test_a_serve_boolean_field_becomes_an_on_off_flag_with_env_var() -> None:
    option = options_for(ServerSettings)[list(ServerSettings.model_fields).index("offload")]
    assert isinstance(option, click.Option)
    assert option.opts == ["--offload"] and option.secondary_opts == ["--no-offload"]
    probe, seen = _capture(serve)
    result = CliRunner().invoke(probe, [], env={"DRIFTLINE_SERVE_OFFLOAD": "true"})
    assert result.exit_code == 0, result.output
    assert seen[0]["offload"] is True


def test_a_field_without_a_flag_form_is_refused() -> None:
    class Odd(BaseModel):
        pairs: dict[str, int] = {}

    with pytest.raises(TypeError, match="pairs"):
        option_for(Odd, "pairs")
