"""The default analysis provider: read the router's stats and the monitors' verdicts over HTTP.

The thin I/O edge behind ``driftline.operator.analysis.Provider``. For one variant it fetches, in
parallel:

- ``GET <router>/stats?window=<s>`` from every router replica: per variant ``requests``,
  ``errors``, ``latency_ms.p50/p99`` and ``model_version``; per (primary, shadow) pair the
  mirrored, failed and compared counts and ``class_agreement``;
- ``GET <monitor>/v1/verdict`` from every monitor sidecar of the variant: per variant the drift
  ``verdict.share`` (share of drifted features, the dataset score) over ``verdict.rows``,
  ``performance`` from delayed labels (``labelled``, ``accuracy``/``auc``/``mae``/``rmse``), and
  ``prediction_counts`` (label → count) when the monitor reports them.

Shapes are parsed at the edge with lenient pydantic models (unknown fields ignored, every field
optional): a source that is down, slow, answers non-200, sends invalid JSON or a shape this code
does not know contributes *no data* (logged at WARNING), never an exception, so the judge says
``inconclusive`` and the ``noData`` policy decides. Numbers that belong to another model (the
router's or monitor's ``model_version`` differs from the target's Model, e.g. right after a route
change) are no data too: a canary is never judged on its predecessor's traffic.

Usage::

    async with httpx.AsyncClient(timeout=2.0) as client:
        provider = HttpProvider(client, resolve, window_s=30)
        m = await provider.measure(Target("default", "churn", "canary", "churn-v2"))

where ``resolve(target)`` returns the base URLs, directly or as an awaitable (the operator lists
the ready pods' IPs through the API, local mode returns its own ports).

Several pods: counts (requests, errors, rows, labelled samples, prediction counts) add up; p50,
agreement and performance are sample-weighted means; p99 takes the worst pod (``analysis.combine``).

Drift across pods (the fleet's verdict, not the worst pod's): with a ``drift`` source (the
operator passes one that reads the Model's profile ConfigMap and the DriftMonitor of the
Deployment), the provider also fetches ``GET <monitor>/v1/window`` from every monitor of the
variant, sums the pods' counts over the reference bins
(``driftline.serving.monitor.state.merge_variant_windows``: exact, the counts of the
concatenated rows) and judges the merged window once with the sidecars' own engine and the
DriftMonitor's tests, thresholds, correction and ``minSamples`` (:func:`fleet_decision`). The
drift score is that verdict's share of drifted features over the merged rows; a merged window
below ``minSamples`` gives no score (the judge says ``inconclusive``: "not enough data" is never
"no drift"). A pod whose window document is unreachable, malformed, counted over another profile
version or from another model version is skipped, counted by reason and logged, never fatal.
Without a drift source, or when the Model has no stored profile, the drift score falls back to
the worst pod's verdict share (conservative: shares of drifted features cannot be averaged).
The Prometheus provider (``analysis_prometheus``) keeps the worst pod's score: Prometheus holds
the pods' verdicts, not their counts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from driftline.operator.analysis import Measurements, Target, combine
from driftline.operator.api.driftmonitor import DriftMonitorSpec
from driftline.operator.render.monitoring import drift_flags
from driftline.serving.drift.decide import (
    DEFAULT_THRESHOLDS,
    Correction,
    DecisionConfig,
    Rule,
    Status,
    Verdict,
)
from driftline.serving.drift.profile import Profile
from driftline.serving.monitor.settings import MonitorSettings
from driftline.serving.monitor.state import MergedWindow, judge, merge_variant_windows

__all__ = [
    "DriftSource",
    "Endpoints",
    "FleetDrift",
    "FleetDriftResult",
    "HttpProvider",
    "MonitorVerdictDoc",
    "Resolver",
    "RouterStatsDoc",
    "fleet_decision",
    "fleet_drift",
    "measurements_from_monitor",
    "measurements_from_router",
]

log = logging.getLogger(__name__)

STATS_PATH: Final = "/stats"
"""The router's JSON stats endpoint (public and admin port)."""
VERDICT_PATH: Final = "/v1/verdict"
"""The monitor sidecar's JSON verdict endpoint."""
WINDOW_PATH: Final = "/v1/window"
"""The monitor sidecar's mergeable window state."""
SKIP_UNREACHABLE: Final = "unreachable"
"""Skip reason of a pod whose window document could not be read (down, non-200, not JSON)."""


@dataclass(frozen=True)
class Endpoints:
    """Where one variant's numbers live.

    Attributes:
        routers: base URLs of every router replica (``http://10.0.0.5:8080``); their stats add up.
        monitors: base URLs of every monitor sidecar of the variant's pods.
    """

    routers: tuple[str, ...] = ()
    monitors: tuple[str, ...] = ()


Resolver = Callable[[Target], Endpoints | Awaitable[Endpoints]]
"""Maps a variant to its endpoints, at once or asynchronously (the operator: ready pod IPs from
the API; local mode and tests: fixed URLs)."""


# ------------------------------------------------------------------------------- wire shapes


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Latency(_Lenient):
    p50: float | None = None
    p99: float | None = None


class _RouterVariant(_Lenient):
    model_version: str | None = None
    requests: int = 0
    errors: int = 0
    latency_ms: _Latency = _Latency()


class _RouterShadow(_Lenient):
    primary: str | None = None
    model_version: str | None = None
    mirrored: int = 0
    compared: int = 0
    shadow_errors: int = 0
    shadow_timeouts: int = 0
    class_n: int = 0
    class_agreement: float | None = None


class RouterStatsDoc(_Lenient):
    """The parts of the router's ``GET /stats`` document the analysis reads."""

    window_s: float | None = None
    variants: dict[str, _RouterVariant] = {}
    shadow: list[_RouterShadow] = []


class _Verdict(_Lenient):
    rows: int = 0
    share: float | None = None


class _MonitorVariant(_Lenient):
    version: str | None = None
    verdict: _Verdict | None = None
    performance: list[dict[str, object]] = []
    prediction_counts: dict[str, float] = {}


class MonitorVerdictDoc(_Lenient):
    """The parts of a monitor sidecar's verdict document the analysis reads."""

    variants: dict[str, _MonitorVariant] = {}


# ------------------------------------------------------------------------------- pure conversions


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _number(value: object) -> float | None:
    """A finite JSON number as a float; None for anything else (null, strings, booleans, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _same_model(reported: str | None, target: Target) -> bool:
    return reported is None or reported == target.model


def measurements_from_router(doc: RouterStatsDoc, target: Target) -> Measurements:
    """One router replica's numbers for ``target`` (pure).

    A canary or stable variant reads its own entry; a shadow reads the (stable, shadow) pair:
    mirrored copies are its requests, failed and timed-out copies its errors, and the class
    agreement over compared answers its agreement (no latency: shadow answers are discarded).

    Args:
        doc: the parsed stats document.
        target: the variant.

    Returns:
        The measurements; ``Measurements()`` when the document has nothing for this variant or
        reports another model.
    """
    if target.role == "shadow":
        pair = next((s for s in doc.shadow if s.primary in (None, "stable")), None)
        if pair is None or not _same_model(pair.model_version, target):
            return Measurements()
        agreement = _finite(pair.class_agreement) if pair.class_n > 0 else None
        return Measurements(
            requests=pair.mirrored,
            errors=pair.shadow_errors + pair.shadow_timeouts,
            shadow_agreement=agreement,
            shadow_compared=pair.compared if agreement is not None else 0,
        )
    entry = doc.variants.get(target.role)
    if entry is None or not _same_model(entry.model_version, target):
        return Measurements()
    return Measurements(
        requests=max(entry.requests, 0),
        errors=max(entry.errors, 0),
        latency_p50_ms=_finite(entry.latency_ms.p50),
        latency_p99_ms=_finite(entry.latency_ms.p99),
    )


def measurements_from_monitor(doc: MonitorVerdictDoc, target: Target) -> Measurements:
    """One monitor sidecar's numbers for ``target`` (pure).

    Reads the entry of the target's role (or the only entry, when the sidecar reports one
    variant under another name); performance values come with their ``labelled`` count.

    Args:
        doc: the parsed verdict document.
        target: the variant.

    Returns:
        The measurements; ``Measurements()`` when there is nothing for this variant or the
        sidecar reports another model.
    """
    entry = doc.variants.get(target.role)
    if entry is None and len(doc.variants) == 1:
        entry = next(iter(doc.variants.values()))
    if entry is None or not _same_model(entry.version, target):
        return Measurements()
    verdict = entry.verdict
    drift = _finite(verdict.share) if verdict is not None else None
    rows = verdict.rows if verdict is not None and drift is not None else 0
    performance: dict[str, float] = {}
    labelled = 0
    for item in entry.performance:
        if item.get("version") not in (None, target.model):
            continue
        n = _number(item.get("labelled"))
        labelled = int(n) if n is not None and n > 0 else 0
        for name, value in item.items():
            number = _number(value)
            if name not in ("variant", "version", "labelled") and number is not None:
                performance[name] = number
    counts = {k: v for k, v in entry.prediction_counts.items() if math.isfinite(v) and v >= 0}
    return Measurements(
        drift_score=drift,
        drift_samples=max(rows, 0),
        prediction_counts=counts,
        prediction_samples=int(sum(counts.values())),
        performance=performance if labelled > 0 else {},
        labelled_samples=labelled if performance else 0,
    )


# ------------------------------------------------------------------------------- fleet drift


@dataclass(frozen=True)
class FleetDrift:
    """What judging a variant's merged window needs.

    Attributes:
        profile: the Model's reference profile (the one its sidecars count over).
        decision: the tests and thresholds the sidecars apply (:func:`fleet_decision`).
    """

    profile: Profile
    decision: DecisionConfig


DriftSource = Callable[[Target], Awaitable[FleetDrift | None]]
"""Finds the profile and decision config of a variant; None when it has no profile (then the
drift score falls back to the worst pod's)."""


@dataclass(frozen=True)
class FleetDriftResult:
    """The fleet's drift over one variant's pods.

    Attributes:
        score: share of drifted features of the merged window; None when no pod contributed or
            the merged window is below ``minSamples`` (not enough data).
        rows: rows in the merged window.
        status: the merged verdict's status (None when no pod contributed).
        pods: pods whose counts were merged.
        skipped: pods skipped, by reason.
        verdict: the merged window's full verdict (per feature and segment; None when no pod
            contributed): what a DriftMonitor's status reports (``drift_status``).
    """

    score: float | None
    rows: int
    status: Status | None
    pods: int
    skipped: Mapping[str, int] = field(default_factory=dict)
    verdict: Verdict | None = None


def _setting_default(name: str) -> object:
    return MonitorSettings.model_fields[name].default


def fleet_decision(drift: DriftMonitorSpec | None, profile: Profile) -> DecisionConfig:
    """The decision config a variant's sidecars run with, rebuilt from the flags they get (pure).

    The same mapping as the sidecar's environment (``render.monitoring.drift_flags``) and the
    monitor's own defaults (``MonitorSettings``), so the merged window is judged exactly as one
    sidecar would judge it; prediction features are the profile's output-sourced ones, as in
    ``driftline.serving.monitor.run.monitor_config``.
    """
    flags = {
        k.removeprefix("DRIFTLINE_MONITOR_").lower(): v
        for k, v in drift_flags(drift, drift.window.size if drift is not None else 1).items()
    }

    def text(name: str) -> str:
        return flags.get(name) or str(_setting_default(name))

    def threshold(name: str, effect: str) -> float:
        given = flags.get(name)
        return float(given) if given is not None else DEFAULT_THRESHOLDS[effect]

    numeric, categorical = text("numeric_effect"), text("categorical_effect")
    layout = profile.layout
    sources = [(s.name, s.source) for s in layout.numeric] + [
        (c.name, c.source) for c in layout.categorical
    ]
    return DecisionConfig(
        alpha=float(text("alpha")),
        correction=Correction(text("correction")),
        min_samples=int(text("min_samples")),
        numeric=Rule(numeric, threshold("numeric_threshold", numeric)),
        categorical=Rule(categorical, threshold("categorical_threshold", categorical)),
        min_drifted=int(text("min_drifted")),
        predictions=frozenset(n for n, s in sources if s is not None and s.kind == "output"),
        features=frozenset(n for n in flags.get("features", "").split(",") if n),
    )


def fleet_drift(
    fleet: FleetDrift, documents: Sequence[object | None], target: Target
) -> tuple[FleetDriftResult, MergedWindow]:
    """Merge the pods' window documents of ``target`` and judge the merged window (pure).

    Args:
        fleet: profile and decision config.
        documents: one parsed ``GET /v1/window`` body per monitor; None for a pod that could not
            be read (counted as ``unreachable``).
        target: the variant (its role names the window entry, its model the expected version).

    Returns:
        The result and the merged counts.
    """
    readable = [d for d in documents if d is not None]
    merged = merge_variant_windows(fleet.profile, readable, target.role, target.model)
    skipped = dict(merged.skipped)
    if len(readable) < len(documents):
        skipped[SKIP_UNREACHABLE] = len(documents) - len(readable)
    if merged.pods == 0:
        return FleetDriftResult(None, 0, None, 0, skipped), merged
    verdict = judge(fleet.profile, merged, fleet.decision)
    enough = verdict.status is not Status.NOT_ENOUGH_DATA
    score = _finite(verdict.share) if enough else None
    result = FleetDriftResult(score, verdict.rows, verdict.status, merged.pods, skipped, verdict)
    return result, merged


# ------------------------------------------------------------------------------------------- I/O


class HttpProvider:
    """``analysis.Provider`` over HTTP: router stats + monitor verdicts, merged per variant."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        resolve: Resolver,
        *,
        window_s: int = 30,
        stats_path: str = STATS_PATH,
        verdict_path: str = VERDICT_PATH,
        drift: DriftSource | None = None,
        window_path: str = WINDOW_PATH,
    ) -> None:
        """Build a provider.

        Args:
            client: the HTTP client (its timeout bounds every fetch; tests pass a
                ``httpx.MockTransport``).
            resolve: maps a variant to its router and monitor base URLs (sync or async).
            window_s: the router stats window, normally the analysis interval (seconds).
            stats_path: the router's stats path.
            verdict_path: the monitor's verdict path.
            drift: finds the variant's profile and decision config; with it the drift score is
                the merged window's (see the module docstring), without it the worst pod's.
            window_path: the monitor's window-state path.
        """
        self._client = client
        self._resolve = resolve
        self._window_s = max(int(window_s), 1)
        self._stats_path = stats_path
        self._verdict_path = verdict_path
        self._drift = drift
        self._window_path = window_path
        self.last_fleet: dict[Target, FleetDriftResult] = {}
        """The last fleet drift result per variant (for logs and tests)."""

    async def _get(self, url: str, params: Mapping[str, str] | None = None) -> bytes | None:
        try:
            response = await self._client.get(url, params=params)
        except httpx.HTTPError as e:
            log.warning("analysis source %s unreachable: %s", url, e)
            return None
        if response.status_code != 200:
            log.warning("analysis source %s answered %d", url, response.status_code)
            return None
        return response.content

    async def _router(self, base: str, target: Target) -> Measurements:
        body = await self._get(base.rstrip("/") + self._stats_path, {"window": str(self._window_s)})
        if body is None:
            return Measurements()
        try:
            doc = RouterStatsDoc.model_validate_json(body)
        except ValidationError as e:
            log.warning("router stats from %s not understood: %s", base, _first_error(e))
            return Measurements()
        found = measurements_from_router(doc, target)
        reported = (
            next((s.model_version for s in doc.shadow if s.primary in (None, "stable")), None)
            if target.role == "shadow"
            else getattr(doc.variants.get(target.role), "model_version", None)
        )
        _warn_other_model(base, target, reported)
        return found

    async def _monitor(self, base: str, target: Target) -> Measurements:
        body = await self._get(base.rstrip("/") + self._verdict_path)
        if body is None:
            return Measurements()
        try:
            doc = MonitorVerdictDoc.model_validate_json(body)
        except ValidationError as e:
            log.warning("monitor verdict from %s not understood: %s", base, _first_error(e))
            return Measurements()
        entry = doc.variants.get(target.role)
        _warn_other_model(base, target, entry.version if entry is not None else None)
        return measurements_from_monitor(doc, target)

    async def _window(self, base: str) -> object | None:
        body = await self._get(base.rstrip("/") + self._window_path)
        if body is None:
            return None
        try:
            doc: object = json.loads(body)
        except ValueError as e:
            log.warning("monitor window from %s is not JSON: %s", base, e)
            return None
        return doc

    async def _fleet(
        self, target: Target, monitors: Sequence[str], spec: DriftMonitorSpec | None = None
    ) -> FleetDriftResult | None:
        """The merged window's drift, or None without a drift source or profile.

        With ``spec`` the merged window is judged with that DriftMonitor's tests instead of the
        drift source's (the monitor that sets the sidecars' flags).
        """
        if self._drift is None:
            return None
        fleet, *documents = await asyncio.gather(
            self._drift(target), *(self._window(url) for url in monitors)
        )
        if not isinstance(fleet, FleetDrift):
            return None
        if spec is not None:
            fleet = FleetDrift(fleet.profile, fleet_decision(spec, fleet.profile))
        result, merged = await asyncio.to_thread(fleet_drift, fleet, documents, target)
        for problem in merged.problems:
            log.warning("%s/%s %s window skipped: %s", target.namespace, target.deployment,
                        target.role, problem)  # fmt: skip
        if result.skipped:
            log.warning(
                "%s/%s %s: merged %d pod window(s), skipped %s",
                target.namespace,
                target.deployment,
                target.role,
                result.pods,
                dict(sorted(result.skipped.items())),
            )
        self.last_fleet[target] = result
        return result

    async def fleet(
        self, target: Target, spec: DriftMonitorSpec | None = None
    ) -> FleetDriftResult | None:
        """The variant's merged window, judged; None without a drift source or profile.

        The DriftMonitor controller's read (``drift_controller``); with ``spec`` the window is
        judged with that monitor's tests.
        """
        found = self._resolve(target)
        endpoints = found if isinstance(found, Endpoints) else await found
        return await self._fleet(target, endpoints.monitors, spec)

    async def measure(self, target: Target) -> Measurements:
        """The variant's numbers from every router replica and monitor sidecar, merged."""
        found = self._resolve(target)
        endpoints = found if isinstance(found, Endpoints) else await found
        gathered = asyncio.gather(
            *(self._router(url, target) for url in endpoints.routers),
            *(self._monitor(url, target) for url in endpoints.monitors),
        )
        parts, fleet = await asyncio.gather(gathered, self._fleet(target, endpoints.monitors))
        merged = combine(parts)
        if fleet is None:
            return merged
        return replace(merged, drift_score=fleet.score, drift_samples=fleet.rows)


def _warn_other_model(source: str, target: Target, reported: str | None) -> None:
    """Log why a source that answered gives no data: it reports another model.

    Either the route changed moments ago, or the route table's ``model_version`` (the server's
    version) is not the Model name, which would hold every rollout on no data.
    """
    if reported is not None and reported != target.model:
        log.warning(
            "%s reports model %r for the %s variant, expected %r: its numbers are not used",
            source,
            reported,
            target.role,
            target.model,
        )


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "(document)"
    return f"{where}: {first.get('msg', 'invalid')}"
