"""The monitor sidecar's settings: the Model's profile and the DriftMonitor's tests, as flags.

Pure. ``driftline monitor`` reads ``DRIFTLINE_MONITOR_*`` variables (its flags' environment
form); this module decides which ones a variant's sidecar gets.

- Profile: the sidecar runs only when the variant's Model has a stored reference profile
  (``status.profileConfigMap``); it mounts that ConfigMap at ``/etc/driftline/profile`` and loads
  ``profile.json``. A Model without ``spec.reference`` is served without a monitor (and its
  drift checks report no data).
- Without a DriftMonitor: the Deployment's ``monitor.window`` rows and the monitor's defaults.
- With one (``Topology.drift``), mapped field by field:

  ============================== ==================================================
  DriftMonitor                   monitor flag
  ============================== ==================================================
  ``window.size`` / ``kind``     ``--window-rows`` / ``--window-kind``
  ``minSamples``                 ``--min-samples`` (at most the window's rows)
  ``pValueCorrection``           ``--correction``
  ``minDriftedFeatures``         ``--min-drifted``
  ``tests.numeric`` psi,         ``--numeric-effect`` psi, wasserstein,
  wasserstein, jensenshannon     jensen_shannon + ``--numeric-threshold``
  ``tests.numeric`` ks           ``--numeric-effect ks`` (default gate) + ``--alpha``
  ``tests.categorical`` psi,     ``--categorical-effect`` + ``--categorical-threshold``
  jensenshannon
  ``tests.categorical``          default gate + ``--alpha``
  chisquare
  ``features``                   ``--features`` (comma-separated; the sidecar refuses a
                                 name its profile lacks, naming ``--features``)
  ============================== ==================================================

  The monitor has one significance level: when both tests are p-value tests (``ks``,
  ``chisquare``) ``--alpha`` is the smaller threshold. Not mapped (the sidecar has no such knob
  yet): ``segments``, ``predictionDrift``,
  ``performance``, ``window.maxAge``, ``interval``, ``action``, ``variant`` (every variant's
  sidecar gets the same flags, so a canary is judged like the stable).
"""

from __future__ import annotations

from typing import Final

from driftline.operator import names
from driftline.operator.api.driftmonitor import DriftMonitorSpec
from driftline.operator.manifests import JsonObject
from driftline.operator.plan import Topology, VariantPlan

PROFILE_VOLUME: Final = "profile"
PROFILE_PATH: Final = f"{names.PROFILE_DIR}/{names.PROFILE_KEY}"
"""Where the sidecar reads its profile."""

_NUMERIC_EFFECT: Final = {
    "psi": "psi",
    "wasserstein": "wasserstein",
    "jensenshannon": "jensen_shannon",
    "ks": "ks",
}
_CATEGORICAL_EFFECT: Final = {"psi": "psi", "jensenshannon": "jensen_shannon"}


def has_monitor(topology: Topology, variant: VariantPlan) -> bool:
    """Whether the variant's pods run a monitor sidecar (enabled, and a profile to load)."""
    return topology.monitor_enabled and variant.model.profile_config_map is not None


def _number(value: float) -> str:
    return repr(float(value))


def drift_flags(drift: DriftMonitorSpec | None, window: int) -> dict[str, str]:
    """The monitor variables a DriftMonitor sets (see the module docstring for the mapping)."""
    prefix = "DRIFTLINE_MONITOR_"
    if drift is None:
        return {f"{prefix}WINDOW_ROWS": str(window)}
    rows = drift.window.size
    flags = {
        f"{prefix}WINDOW_ROWS": str(rows),
        f"{prefix}WINDOW_KIND": drift.window.kind,
        f"{prefix}MIN_SAMPLES": str(min(drift.min_samples, rows)),
        f"{prefix}CORRECTION": drift.p_value_correction,
        f"{prefix}MIN_DRIFTED": str(drift.min_drifted_features),
    }
    levels: list[float] = []
    numeric, categorical = drift.tests.numeric, drift.tests.categorical
    flags[f"{prefix}NUMERIC_EFFECT"] = _NUMERIC_EFFECT[numeric.method]
    if numeric.method == "ks":
        levels.append(numeric.threshold)
    else:
        flags[f"{prefix}NUMERIC_THRESHOLD"] = _number(numeric.threshold)
    if categorical.method == "chisquare":
        levels.append(categorical.threshold)
    else:
        flags[f"{prefix}CATEGORICAL_EFFECT"] = _CATEGORICAL_EFFECT[categorical.method]
        flags[f"{prefix}CATEGORICAL_THRESHOLD"] = _number(categorical.threshold)
    if levels:
        flags[f"{prefix}ALPHA"] = _number(min(levels))
    if drift.features:
        flags[f"{prefix}FEATURES"] = ",".join(drift.features)
    return dict(sorted(flags.items()))


def monitor_env(topology: Topology, variant: VariantPlan) -> dict[str, str]:
    """Every variable of one variant's monitor sidecar."""
    return {
        "DRIFTLINE_MONITOR_HOST": "0.0.0.0",
        "DRIFTLINE_MONITOR_PORT": str(names.PORT_MONITOR),
        "DRIFTLINE_MONITOR_PROFILE": PROFILE_PATH,
        **drift_flags(topology.drift, topology.monitor_window),
    }


def profile_volume(variant: VariantPlan) -> JsonObject:
    """The pod volume of the Model's profile ConfigMap (only the profile key)."""
    return {
        "name": PROFILE_VOLUME,
        "configMap": {
            "name": variant.model.profile_config_map,
            "items": [{"key": names.PROFILE_KEY, "path": names.PROFILE_KEY}],
        },
    }
