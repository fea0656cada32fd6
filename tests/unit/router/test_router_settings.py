"""RouterSettings and the route command: env prefix, flags win, bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from driftline.operator.cli import driftline
from driftline.serving.router.settings import RouterSettings


def test_environment_is_read_with_the_route_prefix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DRIFTLINE_ROUTE_TABLE", str(tmp_path / "t.yaml"))
    monkeypatch.setenv("DRIFTLINE_ROUTE_PORT", "9001")
    monkeypatch.setenv("DRIFTLINE_ROUTE_SHADOW_TIMEOUT_S", "0.5")
    settings = RouterSettings()
    assert settings.port == 9001 and settings.table == tmp_path / "t.yaml"
    config = settings.proxy_config()
    assert config.shadow_timeout_s == 0.5
    assert RouterSettings(port=9002).port == 9002  # an explicit value (a flag) wins


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"port": 70000}, "port"),
        ({"admin_port": 8000, "port": 8000}, "admin_port must differ"),
        ({"ejection_s": 10, "max_ejection_s": 5}, "max_ejection_s"),
        ({"feedback_path": "/v2/feedback"}, "feedback_path"),
        ({"shadow_max_inflight": 0}, "shadow_max_inflight"),
    ],
)
def test_rejecting_bad_settings(kwargs: dict[str, object], field: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=field):
        RouterSettings(table=tmp_path / "t.yaml", **kwargs)  # type: ignore[arg-type]


def test_route_command_is_registered_and_fails_clearly_on_a_bad_table(tmp_path: Path) -> None:
    runner = CliRunner()
    assert "weighted canary split" in runner.invoke(driftline, ["route", "--help"]).output
    table = tmp_path / "bad.yaml"
    table.write_text("version: 1\nstable: {model_version: '1', weight: 50, endpoints: ['h:1']}\n")
    result = runner.invoke(driftline, ["route", "--table", str(table), "--port", "0"])
    assert result.exit_code != 0
    assert "must sum to 100" in result.output
    missing = runner.invoke(driftline, ["route", "--table", str(tmp_path / "nope.yaml")])
    assert missing.exit_code != 0 and "cannot read route table" in missing.output
