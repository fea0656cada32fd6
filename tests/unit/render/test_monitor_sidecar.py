"""The monitor sidecar as rendered: the Model's profile ConfigMap and the DriftMonitor's flags.

We test these aspects:
- a variant whose Model has a stored profile mounts its ConfigMap read-only and loads
  profile.json; a Model without one is served without a monitor (no sidecar, no monitor URL on
  the server, no monitor port on the Service);
- without a DriftMonitor the sidecar gets the Deployment's window; with one, every mapped field
  reaches its flag (distance tests as thresholds, p-value tests as alpha, the smaller of two);
- every variable is a setting the monitor accepts, with a value it parses.
"""

from __future__ import annotations

from typing import Any

import pytest

from driftline.operator import names
from driftline.operator.api import Deployment, Model
from driftline.operator.api.driftmonitor import DriftMonitorSpec
from driftline.operator.manifests import owner_reference
from driftline.operator.plan import desired
from driftline.operator.render import manifests
from driftline.operator.render.monitoring import drift_flags
from driftline.serving.monitor.settings import MonitorSettings

OWNER = owner_reference(names.API_VERSION, "Deployment", "churn", "uid-1")
SHA = "0123456789abcdef" * 4


def model(name: str, profile: bool) -> Model:
    return Model.from_manifest(
        {
            "apiVersion": names.API_VERSION,
            "kind": "Model",
            "metadata": {"name": name, "namespace": "ml"},
            "spec": {
                "family": "churn",
                "version": name.rsplit("-", 1)[-1],
                "source": {"uri": "https://m.example/model.onnx", "sha256": SHA},
            },
            "status": {"profileConfigMap": f"{name}-profile"} if profile else {},
        }
    )


def render(drift: dict[str, Any] | None, with_profile: bool = True) -> dict[str, Any]:
    dep = Deployment.from_manifest(
        {
            "apiVersion": names.API_VERSION,
            "kind": "Deployment",
            "metadata": {"name": "churn", "namespace": "ml"},
            "spec": {"model": "churn-v1", "monitor": {"window": 700}},
        }
    )
    spec = DriftMonitorSpec.model_validate(drift) if drift is not None else None
    out = manifests(
        desired(dep, {"churn-v1": model("churn-v1", with_profile)}, drift=spec), OWNER, "i"
    )
    return {f"{m['kind']}/{m['metadata']['name']}": m for m in out}


def containers(objs: dict[str, Any]) -> dict[str, Any]:
    pod = objs["Deployment/churn-stable"]["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod["containers"]}


def env(container: dict[str, Any]) -> dict[str, str]:
    return {v["name"]: v["value"] for v in container["env"]}


def test_the_profile_config_map_is_mounted_into_the_monitor() -> None:
    objs = render(None)
    pod = objs["Deployment/churn-stable"]["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "profile")
    assert volume["configMap"]["name"] == "churn-v1-profile"
    monitor = containers(objs)["monitor"]
    mount = next(m for m in monitor["volumeMounts"] if m["name"] == "profile")
    assert mount == {"name": "profile", "mountPath": names.PROFILE_DIR, "readOnly": True}
    assert env(monitor)["DRIFTLINE_MONITOR_PROFILE"] == f"{names.PROFILE_DIR}/profile.json"
    assert env(monitor)["DRIFTLINE_MONITOR_WINDOW_ROWS"] == "700"
    assert "DRIFTLINE_SERVE_MONITOR_URL" in env(containers(objs)["server"])


def test_a_model_without_a_profile_runs_without_a_monitor() -> None:
    objs = render(None, with_profile=False)
    assert set(containers(objs)) == {"server"}
    assert "DRIFTLINE_SERVE_MONITOR_URL" not in env(containers(objs)["server"])
    pod = objs["Deployment/churn-stable"]["spec"]["template"]["spec"]
    assert "profile" not in {v["name"] for v in pod["volumes"]}
    ports = objs["Service/churn-stable"]["spec"]["ports"]
    assert [p["name"] for p in ports] == [names.PORT_NAME_HTTP]


DRIFT = {
    "deployment": "churn",
    "window": {"size": 5000, "kind": "tumbling"},
    "minSamples": 300,
    "pValueCorrection": "fdr",
    "minDriftedFeatures": 2,
    "tests": {
        "numeric": {"method": "wasserstein", "threshold": 0.15},
        "categorical": {"method": "chisquare", "threshold": 0.01},
    },
}


def test_the_drift_monitor_becomes_the_sidecar_flags() -> None:
    got = env(containers(render(DRIFT))["monitor"])
    assert {k: v for k, v in got.items() if k not in ("DRIFTLINE_MONITOR_PROFILE",)} == {
        "DRIFTLINE_MONITOR_HOST": "0.0.0.0",
        "DRIFTLINE_MONITOR_PORT": "9100",
        "DRIFTLINE_MONITOR_WINDOW_ROWS": "5000",
        "DRIFTLINE_MONITOR_WINDOW_KIND": "tumbling",
        "DRIFTLINE_MONITOR_MIN_SAMPLES": "300",
        "DRIFTLINE_MONITOR_CORRECTION": "fdr",
        "DRIFTLINE_MONITOR_MIN_DRIFTED": "2",
        "DRIFTLINE_MONITOR_NUMERIC_EFFECT": "wasserstein",
        "DRIFTLINE_MONITOR_NUMERIC_THRESHOLD": "0.15",
        "DRIFTLINE_MONITOR_ALPHA": "0.01",
    }


@pytest.mark.parametrize(
    ("numeric", "categorical", "expected"),
    [
        (("psi", 0.2), ("jensenshannon", 0.3), {"NUMERIC_EFFECT": "psi", "NUMERIC_THRESHOLD": "0.2",
         "CATEGORICAL_EFFECT": "jensen_shannon", "CATEGORICAL_THRESHOLD": "0.3"}),
        (("ks", 0.02), ("chisquare", 0.05), {"NUMERIC_EFFECT": "ks", "ALPHA": "0.02"}),
        (("jensenshannon", 0.1), ("psi", 0.25), {"NUMERIC_EFFECT": "jensen_shannon",
         "NUMERIC_THRESHOLD": "0.1", "CATEGORICAL_EFFECT": "psi", "CATEGORICAL_THRESHOLD": "0.25"}),
    ],
)  # fmt: skip
def test_tests_map_to_gates_or_alpha(
    numeric: tuple[str, float], categorical: tuple[str, float], expected: dict[str, str]
) -> None:
    spec = DriftMonitorSpec.model_validate(
        {
            "deployment": "churn",
            "minSamples": 5000,
            "tests": {
                "numeric": {"method": numeric[0], "threshold": numeric[1]},
                "categorical": {"method": categorical[0], "threshold": categorical[1]},
            },
        }
    )
    flags = drift_flags(spec, 700)
    short = {k.removeprefix("DRIFTLINE_MONITOR_"): v for k, v in flags.items()}
    for key in ("WINDOW_ROWS", "WINDOW_KIND", "MIN_SAMPLES", "CORRECTION", "MIN_DRIFTED"):
        short.pop(key)
    assert short == expected
    assert flags["DRIFTLINE_MONITOR_MIN_SAMPLES"] == "1000"  # never more than the window holds


@pytest.mark.parametrize("drift", [None, DRIFT])
def test_every_variable_is_a_setting_the_monitor_accepts(
    drift: dict[str, Any] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env(containers(render(drift))["monitor"]).items():
        monkeypatch.setenv(key, value)
    settings = MonitorSettings()  # type: ignore[call-arg]
    assert str(settings.profile) == f"{names.PROFILE_DIR}/profile.json"
    if drift is not None:
        assert (settings.window_rows, settings.alpha) == (5000, 0.01)
