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
agreement and performance are sample-weighted means; p99 and the drift score take the worst pod
(``analysis.combine``). The worst pod's drift share, not a mean, is a deliberate, conservative
choice: shares of drifted features cannot be averaged into the share of the merged window, and a
mean would let one drifting pod (e.g. the users a sticky header pins to it) hide behind healthy
ones. The exact answer is to merge the pods' window state (``GET /v1/window``: counts over the
reference bin edges) and judge it once against the Model's reference profile; the operator does
not hold the profile yet, so that is not done.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from driftline.operator.analysis import Measurements, Target, combine

__all__ = [
    "Endpoints",
    "HttpProvider",
    "MonitorVerdictDoc",
    "Resolver",
    "RouterStatsDoc",
    "measurements_from_monitor",
    "measurements_from_router",
]

log = logging.getLogger(__name__)

STATS_PATH: Final = "/stats"
"""The router's JSON stats endpoint (public and admin port)."""
VERDICT_PATH: Final = "/v1/verdict"
"""The monitor sidecar's JSON verdict endpoint."""


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
    ) -> None:
        """Build a provider.

        Args:
            client: the HTTP client (its timeout bounds every fetch; tests pass a
                ``httpx.MockTransport``).
            resolve: maps a variant to its router and monitor base URLs (sync or async).
            window_s: the router stats window, normally the analysis interval (seconds).
            stats_path: the router's stats path.
            verdict_path: the monitor's verdict path.
        """
        self._client = client
        self._resolve = resolve
        self._window_s = max(int(window_s), 1)
        self._stats_path = stats_path
        self._verdict_path = verdict_path

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

    async def measure(self, target: Target) -> Measurements:
        """The variant's numbers from every router replica and monitor sidecar, merged."""
        found = self._resolve(target)
        endpoints = found if isinstance(found, Endpoints) else await found
        parts: Sequence[Measurements] = await asyncio.gather(
            *(self._router(url, target) for url in endpoints.routers),
            *(self._monitor(url, target) for url in endpoints.monitors),
        )
        return combine(parts)


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
