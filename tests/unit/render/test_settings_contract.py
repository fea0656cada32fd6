"""Every environment variable the renderer sets is a setting the container's process reads.

The renderer configures ``driftline serve|monitor|route`` through ``DRIFTLINE_*`` variables; a
misspelt one would be ignored or rejected only when a pod starts in a cluster. This test pins the
contract between ``driftline.operator.render`` and the data plane's settings classes.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic_settings import BaseSettings

from driftline.serving.monitor.settings import MonitorSettings
from driftline.serving.router.settings import RouterSettings
from driftline.serving.settings import ServerSettings

from .test_golden import CASES, render

SETTINGS: dict[str, tuple[str, type[BaseSettings]]] = {
    "server": ("DRIFTLINE_SERVE_", ServerSettings),
    "monitor": ("DRIFTLINE_MONITOR_", MonitorSettings),
    "router": ("DRIFTLINE_ROUTE_", RouterSettings),
}


def _containers(case: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for obj in render(case):
        if obj["kind"] == "Deployment":
            found.extend(obj["spec"]["template"]["spec"]["containers"])
    return found


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_rendered_variable_names_a_setting(case: str) -> None:
    checked = 0
    for container in _containers(case):
        prefix, settings = SETTINGS[container["name"]]
        for var in container.get("env", []):
            assert var["name"].startswith(prefix), (container["name"], var["name"])
            field = var["name"][len(prefix) :].lower()
            assert field in settings.model_fields, f"{container['name']}: {var['name']} is unknown"
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_servers_report_the_model_name_as_their_version(case: str) -> None:
    for obj in render(case):
        if obj["kind"] != "Deployment" or obj["metadata"]["name"].endswith("-router"):
            continue
        model = obj["spec"]["template"]["metadata"]["labels"]["driftline.dev/model"]
        (server,) = [
            c for c in obj["spec"]["template"]["spec"]["containers"] if c["name"] == "server"
        ]
        env = {v["name"]: v.get("value") for v in server["env"]}
        assert env["DRIFTLINE_SERVE_VERSION"] == model
