"""The optional analysis provider: read the numbers from Prometheus instead of the pods.

``analysis.Provider`` over the Prometheus HTTP API (``GET <url>/api/v1/query``), selected with
``driftline operator --analysis-provider prometheus --prometheus-url URL``. It is the same seam
as ``analysis_http.HttpProvider`` (direct HTTP to the pods, the default): one tick reads, for one
variant, PromQL over the metrics the routers and monitor sidecars already export, and merges them
with ``analysis.combine`` exactly as the HTTP provider merges pods.

Queries (``SEL`` is the configured label selector for the Deployment, ``W`` the analysis
interval in seconds, ``R`` the variant role, ``M`` the Model it must serve)::

    requests   sum(increase(driftline_router_requests_total{SEL,variant="R",version="M"}[W]))
    errors     sum(increase(driftline_router_requests_total{SEL,variant="R",version="M",
                   outcome=~"server_error|unavailable|timeout"}[W]))
    p50, p99   histogram_quantile(q, sum by (le) (rate(
                   driftline_router_request_duration_seconds_bucket{SEL,variant="R",version="M"}[W])))
    shadow     sum(increase(driftline_router_shadow_requests_total{SEL,primary="stable",
                   shadow="shadow",version="M"}[W])) (mirrored), the same with
               outcome=~"error|timeout" (errors) and outcome="compared"; agreement =
               increase(..._class_agreements_total) / increase(..._class_elements_total)
    monitors   driftline_monitor_drift_share, driftline_monitor_drift,
               driftline_monitor_window_samples, driftline_monitor_performance{SEL,variant="R"}
               (one series per pod: merged like pods are, the worst drift share wins)

The selector is a template over ``{namespace}`` and ``{deployment}``; the default,
``namespace="{namespace}",driftline_dev_deployment="{deployment}"``, matches a Prometheus that
keeps the pod's namespace and maps pod labels (``driftline.dev/deployment`` becomes
``driftline_dev_deployment``), as the usual Kubernetes pod discovery with ``labelmap`` does.

The router labels its series with the model version its route table names for each variant,
and starts new series when a variant changes model, so the router numbers of a tick are the
target Model's only (as the HTTP provider's, which compares ``model_version``); a router older
than that label has no matching series: no data. Limits, said plainly: no monitor metric carries
predicted-label counts, so ``predictionShift`` is inconclusive here; ``increase`` needs two
scrapes inside the window, so the analysis interval must be at least twice the scrape interval.
Errors (Prometheus down, a non-success answer, an unknown shape) are no data, logged at WARNING,
never an exception.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from driftline.operator.analysis import Measurements, Target, combine

__all__ = [
    "DEFAULT_SELECTOR",
    "PrometheusProvider",
    "Sample",
    "label_selector",
    "measurements_from_samples",
    "queries",
]

log = logging.getLogger(__name__)

DEFAULT_SELECTOR: Final = 'namespace="{namespace}",driftline_dev_deployment="{deployment}"'
"""Label matchers that pick one Deployment's series (a template over namespace and deployment)."""

QUERY_PATH: Final = "/api/v1/query"
ROUTER_ERROR_OUTCOMES: Final = "server_error|unavailable|timeout"
"""Router outcomes that count against a variant (as the router's ``/stats`` counts errors)."""
SHADOW_ERROR_OUTCOMES: Final = "error|timeout"
_PERFORMANCE: Final[tuple[str, ...]] = ("accuracy", "auc", "mae", "rmse")


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector: its labels and its value."""

    labels: Mapping[str, str]
    value: float


# ------------------------------------------------------------------------------------- pure: PromQL


def _quote(value: str) -> str:
    """A PromQL double-quoted string literal (backslashes and quotes escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def label_selector(template: str, target: Target) -> str:
    """The configured selector with the target's namespace and deployment filled in (quoted-safe).

    Args:
        template: matchers with ``{namespace}`` and ``{deployment}`` placeholders, inside quotes.
        target: the variant.

    Returns:
        The matchers, e.g. ``namespace="team-a",driftline_dev_deployment="churn"``.
    """
    return template.format(
        namespace=_quote(target.namespace)[1:-1], deployment=_quote(target.deployment)[1:-1]
    )


def queries(target: Target, *, window_s: int, selector: str = DEFAULT_SELECTOR) -> dict[str, str]:
    """The PromQL of one tick for ``target``, by name (pure).

    Args:
        target: the variant.
        window_s: the window (the analysis interval), in seconds.
        selector: the label selector template (see ``label_selector``).

    Returns:
        ``{name: promql}``; ``measurements_from_samples`` reads the answers by the same names.
    """
    sel = label_selector(selector, target)
    w = f"[{max(int(window_s), 1)}s]"
    role = _quote(target.role)
    model = _quote(target.model)
    out: dict[str, str] = {}
    if target.role == "shadow":
        pair = f'{sel},primary="stable",shadow="shadow",version={model}'
        shadow = "driftline_router_shadow_requests_total"
        out["mirrored"] = f"sum(increase({shadow}{{{pair}}}{w}))"
        out["shadow_errors"] = (
            f'sum(increase({shadow}{{{pair},outcome=~"{SHADOW_ERROR_OUTCOMES}"}}{w}))'
        )
        out["compared"] = f'sum(increase({shadow}{{{pair},outcome="compared"}}{w}))'
        for part in ("elements", "agreements"):
            metric = f"driftline_router_shadow_class_{part}_total"
            out[f"class_{part}"] = f"sum(increase({metric}{{{pair}}}{w}))"
    else:
        live = f"{sel},variant={role},version={model}"
        requests = "driftline_router_requests_total"
        out["requests"] = f"sum(increase({requests}{{{live}}}{w}))"
        out["errors"] = f'sum(increase({requests}{{{live},outcome=~"{ROUTER_ERROR_OUTCOMES}"}}{w}))'
        bucket = "driftline_router_request_duration_seconds_bucket"
        for name, q in (("p50", "0.5"), ("p99", "0.99")):
            out[name] = f"histogram_quantile({q}, sum by (le) (rate({bucket}{{{live}}}{w})))"
    mon = f"{sel},variant={role}"
    out["drift_share"] = f"driftline_monitor_drift_share{{{mon}}}"
    out["drift"] = f"driftline_monitor_drift{{{mon}}}"
    out["window_samples"] = f"driftline_monitor_window_samples{{{mon}}}"
    out["performance"] = f"driftline_monitor_performance{{{mon}}}"
    return out


# ----------------------------------------------------------------------------- pure: answers → data


def _scalar(samples: Sequence[Sample]) -> float | None:
    """The value of a one-element ``sum(...)`` vector; None when empty or not finite."""
    values = [s.value for s in samples if math.isfinite(s.value)]
    return values[0] if len(values) == 1 else None


def _count(samples: Sequence[Sample]) -> int:
    value = _scalar(samples)
    return max(round(value), 0) if value is not None else 0


_SERIES_LABELS: Final = frozenset({"__name__", "metric", "version"})


def _source(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Which scrape target (pod) a monitor series comes from: its labels minus the metric's own."""
    return tuple(sorted((k, v) for k, v in labels.items() if k not in _SERIES_LABELS))


def _monitor_parts(target: Target, answers: Mapping[str, Sequence[Sample]]) -> list[Measurements]:
    """One ``Measurements`` per monitor sidecar (series grouped by their scrape labels)."""
    pods: dict[tuple[tuple[str, str], ...], dict[str, float]] = {}
    perf: dict[tuple[tuple[str, str], ...], dict[str, float]] = {}
    for name in ("drift_share", "drift", "window_samples"):
        for s in answers.get(name, ()):
            pods.setdefault(_source(s.labels), {})[name] = s.value
    for s in answers.get("performance", ()):
        if s.labels.get("version") not in (None, target.model) or not math.isfinite(s.value):
            continue
        pods.setdefault(_source(s.labels), {})
        perf.setdefault(_source(s.labels), {})[s.labels.get("metric", "")] = s.value
    parts: list[Measurements] = []
    for key, values in pods.items():
        share = values.get("drift_share", math.nan)
        rows = values.get("window_samples", math.nan)
        judged = values.get("drift", -1.0) >= 0 and math.isfinite(share) and math.isfinite(rows)
        metrics = perf.get(key, {})
        labelled = max(round(metrics.get("labelled", 0.0)), 0)
        performance = {m: metrics[m] for m in _PERFORMANCE if m in metrics} if labelled else {}
        parts.append(
            Measurements(
                drift_score=share if judged else None,
                drift_samples=max(round(rows), 0) if judged else 0,
                performance=performance,
                labelled_samples=labelled if performance else 0,
            )
        )
    return parts


def measurements_from_samples(
    target: Target, answers: Mapping[str, Sequence[Sample]]
) -> Measurements:
    """The variant's measurements from the answers to ``queries`` (pure).

    Args:
        target: the variant.
        answers: instant vectors by query name; a missing or failed query is an empty vector.

    Returns:
        The merged measurements (router counters plus every monitor sidecar, ``analysis.combine``).
    """
    if target.role == "shadow":
        elements = _scalar(answers.get("class_elements", ()))
        agreements = _scalar(answers.get("class_agreements", ()))
        agreement = (
            min(max(agreements / elements, 0.0), 1.0)
            if elements is not None and agreements is not None and elements > 0
            else None
        )
        mirrored = _count(answers.get("mirrored", ()))
        router = Measurements(
            requests=mirrored,
            errors=min(_count(answers.get("shadow_errors", ())), mirrored),
            shadow_agreement=agreement,
            shadow_compared=_count(answers.get("compared", ())) if agreement is not None else 0,
        )
    else:
        p50 = _scalar(answers.get("p50", ()))
        p99 = _scalar(answers.get("p99", ()))
        requests = _count(answers.get("requests", ()))
        router = Measurements(
            requests=requests,
            errors=min(_count(answers.get("errors", ())), requests),
            latency_p50_ms=p50 * 1000 if p50 is not None else None,
            latency_p99_ms=p99 * 1000 if p99 is not None else None,
        )
    return combine([router, *_monitor_parts(target, answers)])


# ------------------------------------------------------------------------------------ wire shapes


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Element(_Lenient):
    metric: dict[str, str] = {}
    value: tuple[float, str]


class _Data(_Lenient):
    resultType: str
    result: list[_Element] = []


class QueryResponse(_Lenient):
    """The parts of ``/api/v1/query``'s answer this provider reads (an instant vector)."""

    status: str
    data: _Data | None = None
    error: str | None = None


def samples_from_response(body: bytes) -> list[Sample] | str:
    """Parse one ``/api/v1/query`` answer (pure).

    Returns:
        The vector's samples, or a message saying what was wrong (not success, not a vector,
        not understood).
    """
    try:
        doc = QueryResponse.model_validate_json(body)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "(document)"
        return f"not understood: {where}: {first.get('msg', 'invalid')}"
    if doc.status != "success" or doc.data is None:
        return f"status {doc.status!r}: {doc.error or 'no data'}"
    if doc.data.resultType != "vector":
        return f"expected an instant vector, got {doc.data.resultType!r}"
    out: list[Sample] = []
    for element in doc.data.result:
        try:
            value = float(element.value[1])
        except ValueError:
            continue
        out.append(Sample(element.metric, value))
    return out


# -------------------------------------------------------------------------------------------- I/O


class PrometheusProvider:
    """``analysis.Provider`` over the Prometheus HTTP API."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        *,
        window_s: int = 30,
        selector: str = DEFAULT_SELECTOR,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Build a provider.

        Args:
            client: the HTTP client (its timeout bounds every query).
            url: the Prometheus base URL (``http://prometheus.monitoring.svc:9090``).
            window_s: the range of ``increase``/``rate``, normally the analysis interval.
            selector: the label selector template (see ``label_selector``).
            clock: unix seconds; every query of one tick is evaluated at the same instant, so
                counters extrapolated by ``increase`` stay consistent (errors never exceed
                requests).
        """
        self._client = client
        self._url = url.rstrip("/") + QUERY_PATH
        self._window_s = max(int(window_s), 1)
        self._selector = selector
        self._clock = clock

    async def _query(self, name: str, promql: str, at: float) -> list[Sample]:
        try:
            response = await self._client.get(
                self._url, params={"query": promql, "time": f"{at:.3f}"}
            )
        except httpx.HTTPError as e:
            log.warning("Prometheus at %s unreachable: %s", self._url, e)
            return []
        found = samples_from_response(response.content)
        if isinstance(found, str) or response.status_code != 200:
            why = found if isinstance(found, str) else f"HTTP {response.status_code}"
            log.warning("Prometheus query %s (%s): %s", name, promql, why)
            return []
        return found

    async def measure(self, target: Target) -> Measurements:
        """The variant's numbers over the last window, from Prometheus."""
        wanted = queries(target, window_s=self._window_s, selector=self._selector)
        at = self._clock()
        answers = await asyncio.gather(*(self._query(n, q, at) for n, q in wanted.items()))
        return measurements_from_samples(target, dict(zip(wanted, answers, strict=True)))
