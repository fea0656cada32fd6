"""The router's request path: split, forward, retry, mirror, compare, feedback, stats.

Who uses it: :mod:`driftline.serving.router.main` builds one :class:`Router` and serves
:meth:`Router.handle` on the public port and :meth:`Router.handle_admin` on the admin port with the
serving core (:mod:`driftline.serving.http`). The file watcher and the admin endpoint change the
table through :meth:`Router.load`.

How a request flows (public port)::

    /v2/health/live|ready        answered here (ready: stable has an endpoint not ejected)
    /v2, /v2/...                 draw u (sticky header hash, else random) -> pick -> route
                                 (a variant with no healthy endpoint gives its share to stable)
                                 -> forward on a keep-alive pool, retry once on another endpoint
                                 of the same variant when the connect fails
                                 -> answer with the upstream status, headers and body unchanged,
                                 plus x-driftline-variant / -model-version / -route-version;
                                 POST .../infer may also be mirrored to the shadow (sent after
                                 the primary, under an in-flight bound, else shed; the client
                                 never waits for it; a sample of the pairs is compared)
    POST {feedback_path}         forwarded to the monitor of the variant named by the
                                 x-driftline-variant header (the one the answer carried); when
                                 it also carries x-driftline-mirrored: shadow (a mirrored
                                 request's answer carried it), a copy goes to the shadow's monitor
    GET /stats, GET /metrics     the JSON stats for the rollout analysis; Prometheus

Why callbacks and not a coroutine per request: the public port serves forwarded requests through
the HTTP core's callback path (:meth:`Router.start`); each is one :class:`_Flight` object the
upstream pool calls back, and each mirrored copy one :class:`_ShadowCopy`. Measured with
``bench/router/cpu.py``: the task, future, timer and coroutine frames per request were a fifth
of the router's user CPU.

Why one immutable :class:`_Live` snapshot per table: a request reads ``self._live`` once and uses
that table and those pools to the end, so a reload swaps one reference and never drops or mixes a
request; pools of endpoints that left the table are retired (idle connections closed, in-flight
ones finish).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Final
from urllib.parse import parse_qs

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from driftline.serving import headers as hdr
from driftline.serving.http import JSON, Request, Respond, Response, json_error
from driftline.serving.router.compare import CompareBudget, Comparison, compare_bodies, json_length
from driftline.serving.router.health import HealthPolicy
from driftline.serving.router.metrics import RouterMetrics
from driftline.serving.router.stats import (
    ShadowWindow,
    VariantWindow,
    request_summary_json,
    shadow_summary_json,
)
from driftline.serving.router.table import (
    VARIANTS,
    Endpoint,
    LiveName,
    LiveVariant,
    RouteTable,
    RouteTableError,
    ShadowVariant,
    VariantName,
    mirrored,
    parse_table,
    pick,
    sticky_draw,
)
from driftline.serving.router.upstream import (
    HOP_BY_HOP,
    ConnectFailed,
    EndpointPool,
    UpstreamError,
    UpstreamResponse,
    UpstreamTimeout,
    VariantUpstreams,
)

log = logging.getLogger(__name__)

DEFAULT_FEEDBACK_PATH: Final = "/v1/feedback"
"""Where feedback is posted on the router, and where it is forwarded on a variant's monitor."""

_KNOWN_STATUSES: Final = frozenset(s.value for s in HTTPStatus)
_FORWARDED_REQUEST_SKIP: Final = HOP_BY_HOP | {
    hdr.VARIANT,
    hdr.MODEL_VERSION,
    hdr.ROUTE_VERSION,
    hdr.MIRRORED,
}
_MODELS_PREFIX: Final = "/v2/models/"


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """The router's knobs (built from RouterSettings by the CLI).

    Attributes:
        upstream_timeout_s: how long a forwarded request may take once sent.
        connect_timeout_s: how long a connect may take before it counts as failed.
        shadow_timeout_s: how long a mirrored copy may take.
        shadow_max_inflight: mirrored copies in flight at once; more are dropped (shed,
            counted): a shadow that cannot keep up never slows the client.
        shadow_compare_per_s: answer pairs compared per second and primary at most; the
            others are counted as skipped (agreement is estimated from the compared pairs).
        max_idle_per_endpoint: idle keep-alive connections kept per upstream endpoint.
        health: passive health policy (ejection).
        stats_window_s: the default window of ``GET /stats``.
        stats_max_window_s: the longest window ``GET /stats?window=`` may ask for.
        feedback_path: path of the feedback endpoint here and on the monitors.
    """

    upstream_timeout_s: float = 10.0
    connect_timeout_s: float = 1.0
    shadow_timeout_s: float = 2.0
    shadow_max_inflight: int = 64
    shadow_compare_per_s: int = 100
    max_idle_per_endpoint: int = 128
    health: HealthPolicy = field(default_factory=HealthPolicy)
    stats_window_s: int = 60
    stats_max_window_s: int = 600
    feedback_path: str = DEFAULT_FEEDBACK_PATH


@dataclass(frozen=True, slots=True)
class _LiveVariant:
    name: VariantName
    spec: LiveVariant | ShadowVariant
    upstreams: VariantUpstreams
    answer_headers: tuple[tuple[str, str], ...]
    mirrored_headers: tuple[tuple[str, str], ...]
    """``answer_headers`` plus the mirrored header: for answers whose request was mirrored."""
    answer_raw: bytes
    """``answer_headers`` rendered once (``name: value`` CRLF lines)."""
    mirrored_raw: bytes
    """``mirrored_headers`` rendered once."""
    upstream_header: bytes


@dataclass(frozen=True, slots=True)
class _Live:
    """One table with everything derived from it; replaced whole on every change."""

    table: RouteTable
    digest: str
    variants: dict[VariantName, _LiveVariant]
    loaded_at: float


def _render(headers: tuple[tuple[str, str], ...]) -> bytes:
    """Headers as ``name: value`` CRLF lines (latin-1)."""
    return "".join(f"{name}: {value}\r\n" for name, value in headers).encode("latin-1")


def _rewrite(path: str, model_name: str | None) -> str:
    """``/v2/models/{any}/rest`` -> ``/v2/models/{model_name}/rest`` when a name is set."""
    if model_name is None or not path.startswith(_MODELS_PREFIX):
        return path
    _, sep, tail = path[len(_MODELS_PREFIX) :].partition("/")
    return _MODELS_PREFIX + model_name + sep + tail


def _head(request: Request, path: str) -> bytes:
    """Request line + forwarded headers: no Host, variant header, length or blank line.

    The variant's header and the content length follow it; the pool adds Host.
    """
    target = f"{path}?{request.query}" if request.query else path
    skip = _FORWARDED_REQUEST_SKIP
    return "".join(
        [
            f"{request.method} {target} HTTP/1.1\r\n",
            *[
                f"{name}: {value}\r\n"
                for name, value in request.headers.items()
                if name not in skip
            ],
        ]
    ).encode("latin-1")


def _full_head(request: Request, path: str, variant_header: bytes) -> bytes:
    """:func:`_head` plus the variant's header and the content length."""
    return _head(request, path) + variant_header + b"content-length: %d\r\n" % len(request.body)


def _wants_shadow_copy(request: Request) -> bool:
    """Whether feedback asks for a copy to the shadow's monitor (the request was mirrored).

    The client echoes the mirrored header the answer carried (or adds ``?mirrored=shadow``);
    every router replica can then act on it, with no memory of which requests were mirrored.
    """
    if request.headers.get(hdr.MIRRORED) == "shadow":
        return True
    if request.query:
        return "shadow" in parse_qs(request.query).get("mirrored", [])
    return False


def _outcome(status: int) -> str:
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "client_error"
    return "ok"


class Router:
    """The router's state and handlers; one per process."""

    def __init__(
        self,
        table: RouteTable,
        config: ProxyConfig,
        metrics: RouterMetrics,
        registry: CollectorRegistry,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self._registry = registry
        self._rng = rng or random.Random()
        self._clock = clock
        self._pools: dict[Endpoint, EndpointPool] = {}
        self._windows = {v: VariantWindow(config.stats_max_window_s) for v in VARIANTS}
        self._shadow_windows: dict[str, ShadowWindow] = {
            v: ShadowWindow(config.stats_max_window_s) for v in ("stable", "canary")
        }
        self._shadow_totals: dict[str, list[float]] = {
            v: [0.0, 0.0, 0.0, 0.0] for v in ("stable", "canary")
        }
        """Per primary: class elements, agreements, score elements, abs diff sum (since start)."""
        self._compare_budgets = {
            v: CompareBudget(config.shadow_compare_per_s) for v in ("stable", "canary")
        }
        self._shadow_inflight = 0
        self._started = clock()
        self._live = self._build(table)
        metrics.show_table(table)

    # ------------------------------------------------------------------ table changes
    @property
    def table(self) -> RouteTable:
        """The live route table."""
        return self._live.table

    def _pool(self, endpoint: Endpoint, variant: VariantName) -> EndpointPool:
        pool = self._pools.get(endpoint)
        if pool is None:
            ejections = self.metrics.ejections

            def ejected(p: EndpointPool) -> None:
                log.warning("ejected %s (%s) after connect failures", p.endpoint, variant)
                ejections.labels(variant, str(p.endpoint)).inc()

            pool = EndpointPool(
                endpoint,
                connect_timeout_s=self.config.connect_timeout_s,
                max_idle=self.config.max_idle_per_endpoint,
                policy=self.config.health,
                on_ejected=ejected,
            )
            self._pools[endpoint] = pool
        return pool

    def _build(self, table: RouteTable) -> _Live:
        variants: dict[VariantName, _LiveVariant] = {}
        wanted: set[Endpoint] = set()
        for name in VARIANTS:
            spec = table.variant(name)
            if spec is None:
                continue
            pools = [self._pool(endpoint, name) for endpoint in spec.endpoints]
            wanted.update(spec.endpoints)
            if spec.monitor is not None:
                self._pool(spec.monitor, name)
                wanted.add(spec.monitor)
            answer = (
                (hdr.VARIANT, name),
                (hdr.MODEL_VERSION, spec.model_version),
                (hdr.ROUTE_VERSION, str(table.version)),
            )
            upstream_header = f"{hdr.VARIANT}: {name}\r\n".encode("latin-1")
            mirrored = (*answer, (hdr.MIRRORED, "shadow"))
            variants[name] = _LiveVariant(
                name,
                spec,
                VariantUpstreams(pools),
                answer,
                mirrored,
                _render(answer),
                _render(mirrored),
                upstream_header,
            )
        for endpoint in list(self._pools):
            if endpoint not in wanted:
                self._pools.pop(endpoint).close()
        return _Live(table, table.digest(), variants, self._clock())

    def apply(self, table: RouteTable, source: str) -> None:
        """Make ``table`` live at once (requests in flight finish on the table they started on)."""
        self._live = self._build(table)
        self.metrics.show_table(table)
        self.metrics.reloads.labels(source, "applied").inc()
        log.info("route table version %d applied from %s", table.version, source)

    def load(self, text: str | bytes, source: str) -> RouteTable:
        """Parse, validate and apply a table; a bad one is rejected whole and the old stays.

        Raises:
            RouteTableError: naming the bad field; nothing changed.
        """
        try:
            table = parse_table(text)
        except RouteTableError as exc:
            self.metrics.reloads.labels(source, "rejected").inc()
            log.error("route table from %s rejected: %s", source, exc)
            raise
        self.apply(table, source)
        return table

    # ------------------------------------------------------------------ public port
    async def handle(self, request: Request) -> Response:
        """The public port: OIP in, OIP out, plus feedback, stats and metrics."""
        path = request.path
        if path.startswith("/v2/health/"):
            return self._health(path)
        if path.startswith("/v2/") or path == "/v2":
            if request.method == "HEAD":  # an answer without a body would stall the upstream read
                return json_error(HTTPStatus.METHOD_NOT_ALLOWED, "HEAD is not forwarded; use GET")
            return await self._forward(request)
        if path == self.config.feedback_path:
            return await self._feedback(request)
        return self._common(request)

    def _health(self, path: str) -> Response:
        if path == "/v2/health/live":
            return Response(HTTPStatus.OK, b'{"live":true}')
        if path == "/v2/health/ready":
            stable = self._live.variants["stable"]
            if stable.upstreams.any_available(self._clock()):
                return Response(HTTPStatus.OK, b'{"ready":true}')
            return json_error(HTTPStatus.SERVICE_UNAVAILABLE, "no healthy endpoint for stable")
        return json_error(HTTPStatus.NOT_FOUND, f"no such health endpoint: {path}")

    def _common(self, request: Request) -> Response:
        """Paths both ports serve: stats and metrics."""
        if request.path == "/stats" and request.method == "GET":
            return self._stats(request)
        if request.path == "/metrics" and request.method == "GET":
            now = self._clock()
            for name, variant in self._live.variants.items():
                self.metrics.healthy_endpoints.labels(name).set(
                    variant.upstreams.healthy_count(now)
                )
            return Response(HTTPStatus.OK, generate_latest(self._registry), CONTENT_TYPE_LATEST)
        return json_error(HTTPStatus.NOT_FOUND, f"no route for {request.method} {request.path}")

    def start(self, request: Request, respond: Respond) -> bool:
        """The public port's callback path: take a forwardable request, answer it via ``respond``.

        Health, feedback, stats, metrics and ``HEAD`` are declined (False) and go to
        :meth:`handle`. A taken request costs no task, future or coroutine: the upstream pool
        calls back when the answer is in (see :mod:`driftline.serving.http`).
        """
        path = request.path
        if (
            not (path.startswith("/v2/") or path == "/v2")
            or path.startswith("/v2/health/")
            or request.method == "HEAD"
        ):
            return False
        self._begin(request, respond)
        return True

    async def _forward(self, request: Request) -> Response:
        """:meth:`_begin` for coroutines (the async handler's path)."""
        answer: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._begin(request, answer.set_result)
        return await answer

    def _begin(self, request: Request, respond: Respond) -> None:
        """Pick the variant, start the upstream request (and the shadow copy); never raises."""
        live = self._live
        table = live.table
        rng = self._rng
        sticky = table.sticky_header
        key = request.headers.get(sticky) if sticky is not None else None
        intended: LiveName = pick(table, sticky_draw(key) if key else rng.random())
        now = self._clock()
        name: LiveName = intended
        chosen = live.variants[name]
        if name != "stable" and not chosen.upstreams.any_available(now):
            self.metrics.fallbacks.labels(name).inc()
            self._windows[name].record_fallback(now)
            name = "stable"
            chosen = live.variants[name]
        path = request.path
        rewritten = _rewrite(path, chosen.spec.model_name)
        base = _head(request, rewritten)
        length = b"content-length: %d\r\n" % len(request.body)
        flight = _Flight(
            self,
            chosen,
            name,
            base + chosen.upstream_header + length,
            request.body,
            respond,
            None,
            now,
        )
        pool = chosen.upstreams.choose(now)
        if pool is not None:  # the primary goes first: the copy's write is off its path
            flight.pool = pool
            pool.send(flight.head, flight.body, self.config.upstream_timeout_s, flight)
        shadow = live.variants.get("shadow")
        if (
            shadow is not None
            and request.method == "POST"
            and path.endswith("/infer")
            and mirrored(table, rng.random())
        ):
            shadow_path = _rewrite(path, shadow.spec.model_name)
            shadow_base = base if shadow_path == rewritten else _head(request, shadow_path)
            flight.copy = self._mirror(
                shadow, shadow_base + shadow.upstream_header + length, request, name, now
            )
        if pool is None:
            flight(ConnectFailed(f"no healthy endpoint for variant {name}"))

    def _finish(self, flight: _Flight, result: UpstreamResponse | UpstreamError) -> None:
        """Map the upstream outcome to the client's answer; count it; answer; feed the copy."""
        chosen = flight.variant
        name = flight.name
        copy = flight.copy
        extra = chosen.answer_headers if copy is None else chosen.mirrored_headers
        extra_raw = chosen.answer_raw if copy is None else chosen.mirrored_raw
        if isinstance(result, UpstreamResponse):
            status = result.status
            outcome = _outcome(status)
            if status in _KNOWN_STATUSES:
                answer = Response(
                    status, result.body, result.content_type, (), result.raw_headers + extra_raw
                )
            else:
                outcome = "server_error"
                answer = json_error(
                    HTTPStatus.BAD_GATEWAY, f"variant {name} answered unknown status {status}"
                )
                answer.headers = extra
            if copy is not None:
                ok = 200 <= status < 300
                copy.primary_answered(result.body if ok else None, result.raw_headers)
        else:
            if isinstance(result, UpstreamTimeout):
                outcome = "timeout"
                answer = json_error(
                    HTTPStatus.GATEWAY_TIMEOUT, f"variant {name} did not answer in time"
                )
            elif isinstance(result, ConnectFailed):
                outcome = "unavailable"
                answer = json_error(HTTPStatus.SERVICE_UNAVAILABLE, str(result))
            else:
                outcome = "server_error"
                answer = json_error(HTTPStatus.BAD_GATEWAY, str(result))
            answer.headers = extra
            if copy is not None:
                copy.primary_answered(None, b"")
        elapsed = time.perf_counter() - flight.started
        self.metrics.count_request(name, outcome, elapsed)
        self._windows[name].record(
            flight.now,
            elapsed,
            error=outcome not in ("ok", "client_error"),
            client_error=outcome == "client_error",
        )
        flight.respond(answer)

    # ------------------------------------------------------------------ shadow
    def _mirror(
        self,
        shadow: _LiveVariant,
        head: bytes,
        request: Request,
        primary_name: LiveName,
        now: float,
    ) -> _ShadowCopy | None:
        """Send a mirrored copy (no task); None when shed (too many in flight, counted)."""
        window = self._shadow_windows[primary_name]
        if self._shadow_inflight >= self.config.shadow_max_inflight:
            window.dropped(now)
            self.metrics.shadow_outcomes[primary_name, "dropped"] += 1
            return None
        window.mirrored(now)
        copy = _ShadowCopy(self, primary_name, self._compare_budgets[primary_name].take(now))
        pool = shadow.upstreams.choose(now)
        self._shadow_inflight += 1
        if pool is None:
            copy.shadow_answered(ConnectFailed("no healthy endpoint for the shadow"))
        else:
            pool.send(head, request.body, self.config.shadow_timeout_s, copy.shadow_answered)
        return copy

    def _shadow_done(
        self, primary_name: LiveName, result: UpstreamResponse | UpstreamError
    ) -> bool:
        """Count a shadow answer's failure (the copy is over); True when the answer is usable."""
        self._shadow_inflight -= 1
        if isinstance(result, UpstreamResponse) and result.status < 300:
            return True
        window = self._shadow_windows[primary_name]
        timeout = isinstance(result, UpstreamTimeout)
        window.failed(self._clock(), timeout=timeout)
        self.metrics.shadow_outcomes[primary_name, "timeout" if timeout else "error"] += 1
        return False

    def _compare(
        self,
        primary_name: LiveName,
        primary: tuple[bytes, bytes],
        shadow: tuple[bytes, bytes],
    ) -> None:
        """Compare one sampled pair of (body, raw headers) answers and count it."""
        comparison = compare_bodies(
            primary[0], shadow[0], json_length(primary[1]), json_length(shadow[1])
        )
        self._shadow_windows[primary_name].record(self._clock(), comparison)
        if not comparison.comparable:
            self.metrics.shadow_outcomes[primary_name, "uncomparable"] += 1
            return
        self.metrics.shadow_outcomes[primary_name, "compared"] += 1
        self._count_comparison(primary_name, comparison)

    def _skipped(self, primary_name: LiveName) -> None:
        self._shadow_windows[primary_name].skipped(self._clock())
        self.metrics.shadow_outcomes[primary_name, "skipped"] += 1

    def _count_comparison(self, primary_name: LiveName, comparison: Comparison) -> None:
        pair = self.metrics.pair_children[primary_name]
        pair.class_elements.inc(comparison.class_n)
        pair.class_agreements.inc(comparison.class_agree)
        pair.score_elements.inc(comparison.score_n)
        pair.score_abs_diff.inc(comparison.score_abs_sum)
        totals = self._shadow_totals[primary_name]
        totals[0] += comparison.class_n
        totals[1] += comparison.class_agree
        totals[2] += comparison.score_n
        totals[3] += comparison.score_abs_sum
        if totals[0]:
            pair.agreement.set(totals[1] / totals[0])
        if totals[2]:
            pair.mean_abs_diff.set(totals[3] / totals[2])

    # ------------------------------------------------------------------ feedback
    async def _feedback(self, request: Request) -> Response:
        """Forward delayed labels to the monitor of the variant that answered."""
        if request.method != "POST":
            return json_error(HTTPStatus.METHOD_NOT_ALLOWED, "feedback is posted (POST)")
        live = self._live
        name = request.headers.get(hdr.VARIANT)
        if name is None and request.query:
            values = parse_qs(request.query).get("variant")
            name = values[0] if values else None
        if name is None:
            return json_error(
                HTTPStatus.BAD_REQUEST,
                f"feedback needs the {hdr.VARIANT} header (or ?variant=) naming the variant that"
                " answered: the router sent it on that answer",
            )
        variant = next((v for v in live.variants.values() if v.name == name), None)
        if variant is None:
            return json_error(
                HTTPStatus.BAD_REQUEST,
                f"{hdr.VARIANT}: unknown variant {name!r}; the route table has "
                f"{sorted(live.variants)}",
            )
        monitor = variant.spec.monitor
        if monitor is None:
            self.metrics.feedback.labels(variant.name, "no_monitor").inc()
            return json_error(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                f"variant {variant.name} has no monitor in the route table",
            )
        head = _full_head(request, self.config.feedback_path, variant.upstream_header)
        # A mirrored request's labels also go to the shadow's monitor (concurrently), so the
        # shadow's performance is judged on the same requests; the client gets the primary's
        # answer, plus a header saying what became of the copy.
        shadow_copy: asyncio.Task[str] | None = None
        shadow_outcome = ""
        if _wants_shadow_copy(request) and variant.name != "shadow":
            shadow = live.variants.get("shadow")
            if shadow is None or shadow.spec.monitor is None:
                self.metrics.feedback.labels("shadow", "no_monitor").inc()
                shadow_outcome = "no_monitor"
            else:
                shadow_head = _full_head(request, self.config.feedback_path, shadow.upstream_header)
                shadow_copy = asyncio.get_running_loop().create_task(
                    self._forward_feedback(shadow, shadow.spec.monitor, shadow_head, request.body)
                )
        try:
            answer = await self._pools[monitor].request(
                head, request.body, self.config.upstream_timeout_s
            )
        except UpstreamError as exc:
            self.metrics.feedback.labels(variant.name, "failed").inc()
            if shadow_copy is not None:
                await shadow_copy
            return json_error(HTTPStatus.BAD_GATEWAY, f"monitor of {variant.name}: {exc}")
        self.metrics.feedback.labels(
            variant.name, "forwarded" if answer.status < 400 else "failed"
        ).inc()
        if shadow_copy is not None:
            shadow_outcome = await shadow_copy
        status = answer.status if answer.status in _KNOWN_STATUSES else HTTPStatus.BAD_GATEWAY
        headers = answer.headers
        if shadow_outcome:
            headers = (*headers, (hdr.SHADOW_FEEDBACK, shadow_outcome))
        return Response(status, answer.body, answer.content_type, headers)

    async def _forward_feedback(
        self, variant: _LiveVariant, monitor: Endpoint, head: bytes, body: bytes
    ) -> str:
        """Send a feedback copy to ``variant``'s monitor; the outcome (counted), never raises."""
        try:
            answer = await self._pools[monitor].request(head, body, self.config.upstream_timeout_s)
            outcome = "forwarded" if answer.status < 400 else "failed"
        except UpstreamError as exc:
            log.warning("feedback copy for the %s monitor failed: %s", variant.name, exc)
            outcome = "failed"
        self.metrics.feedback.labels(variant.name, outcome).inc()
        return outcome

    # ------------------------------------------------------------------ stats
    def stats_document(self, window_s: int) -> dict[str, object]:
        """The JSON stats: per variant the window's requests, errors, latency quantiles."""
        live = self._live
        now = self._clock()
        window = max(1, min(window_s, self.config.stats_max_window_s))
        variants: dict[str, object] = {}
        for name, variant in live.variants.items():
            if name == "shadow":
                continue
            spec = variant.spec
            variants[name] = {
                "model_version": spec.model_version,
                "weight": live.table.weight(name),
                "endpoints": len(spec.endpoints),
                "healthy_endpoints": variant.upstreams.healthy_count(now),
                **request_summary_json(self._windows[name].summary(now, window)),
            }
        shadow: list[object] = []
        spec_shadow = live.table.shadow
        if spec_shadow is not None:
            for primary in ("stable", "canary"):
                if primary in live.variants:
                    summary = self._shadow_windows[primary].summary(now, window)
                    shadow.append(
                        {
                            "primary": primary,
                            "shadow": "shadow",
                            "model_version": spec_shadow.model_version,
                            "mirror_percent": spec_shadow.mirror_percent,
                            **shadow_summary_json(summary),
                        }
                    )
        return {
            "table": {
                "version": live.table.version,
                "digest": live.digest,
                "age_s": round(now - live.loaded_at, 3),
            },
            "window_s": window,
            "variants": variants,
            "shadow": shadow,
        }

    def _stats(self, request: Request) -> Response:
        window_s = self.config.stats_window_s
        if request.query:
            values = parse_qs(request.query).get("window")
            if values:
                text = values[0]
                if not text.isdigit() or not 1 <= int(text) <= self.config.stats_max_window_s:
                    return json_error(
                        HTTPStatus.BAD_REQUEST,
                        f"window: an integer number of seconds in "
                        f"1..{self.config.stats_max_window_s}, got {text!r}",
                    )
                window_s = int(text)
        return Response(HTTPStatus.OK, orjson.dumps(self.stats_document(window_s)), JSON)

    # ------------------------------------------------------------------ admin port
    async def handle_admin(self, request: Request) -> Response:
        """The admin port: GET/PUT the table, plus stats and metrics."""
        if request.path == "/table":
            if request.method == "GET":
                live = self._live
                doc = live.table.model_dump(mode="json", exclude_none=True)
                doc = _endpoints_as_urls(doc)
                return Response(HTTPStatus.OK, orjson.dumps(doc), JSON)
            if request.method == "PUT":
                try:
                    table = self.load(request.body, "admin")
                except RouteTableError as exc:
                    return json_error(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc))
                body = orjson.dumps({"version": table.version, "digest": self._live.digest})
                return Response(HTTPStatus.OK, body, JSON)
            return json_error(HTTPStatus.METHOD_NOT_ALLOWED, "the table takes GET or PUT")
        if request.path == "/healthz":
            return Response(HTTPStatus.OK, b'{"live":true}')
        return self._common(request)

    async def close(self) -> None:
        """Close every pool, aborting requests still in flight (mirrored copies included)."""
        for pool in self._pools.values():
            pool.close(abort_busy=True)
        self._pools.clear()


class _Flight:
    """One forwarded request between its start and its answer: the pool's callback.

    Why an object and not a coroutine: a request then costs one small object instead of a task,
    a future and a chain of coroutine frames (measured in ``bench/router/cpu.py``).
    """

    __slots__ = (
        "body",
        "copy",
        "head",
        "name",
        "now",
        "pool",
        "respond",
        "retried",
        "router",
        "started",
        "variant",
    )

    def __init__(
        self,
        router: Router,
        variant: _LiveVariant,
        name: LiveName,
        head: bytes,
        body: bytes,
        respond: Respond,
        copy: _ShadowCopy | None,
        now: float,
    ) -> None:
        self.router = router
        self.variant = variant
        self.name = name
        self.head = head
        self.body = body
        self.respond = respond
        self.copy = copy
        self.now = now
        self.pool: EndpointPool | None = None
        self.retried = False
        self.started = time.perf_counter()

    def __call__(self, result: UpstreamResponse | UpstreamError) -> None:
        """The upstream's outcome: retry once elsewhere when nothing was sent, else answer."""
        router = self.router
        if isinstance(result, ConnectFailed) and not self.retried and self.pool is not None:
            other = self.variant.upstreams.choose(router._clock(), exclude=self.pool)
            if other is not None:
                self.retried = True
                self.pool = other
                router.metrics.retries.labels(self.variant.name).inc()
                other.send(self.head, self.body, router.config.upstream_timeout_s, self)
                return
        router._finish(self, result)


class _ShadowCopy:
    """One mirrored copy: meets the primary's answer and the shadow's, compares when sampled.

    Whichever answer comes second triggers the comparison; the client's answer never waits
    for this object (the primary's flight hands its body over after answering is decided).
    """

    __slots__ = ("_primary", "_shadow", "primary_name", "router", "sampled")

    def __init__(self, router: Router, primary_name: LiveName, sampled: bool) -> None:
        self.router = router
        self.primary_name = primary_name
        self.sampled = sampled
        self._primary: tuple[bytes, bytes] | bool | None = False
        """False until the primary answered; then its (body, raw headers), or None (failed)."""
        self._shadow: tuple[bytes, bytes] | bool | None = False
        """False until the shadow answered; then its (body, raw headers), or None (failed)."""

    def primary_answered(self, body: bytes | None, raw_headers: bytes) -> None:
        """The primary's 2xx body and raw headers, or None (failed: nothing to compare)."""
        self._primary = (body, raw_headers) if self.sampled and body is not None else None
        if self._shadow is not False:
            self._meet()

    def shadow_answered(self, result: UpstreamResponse | UpstreamError) -> None:
        """The shadow pool's callback."""
        usable = self.router._shadow_done(self.primary_name, result)
        self._shadow = (
            (result.body, result.raw_headers)
            if usable and isinstance(result, UpstreamResponse) and self.sampled
            else (True if usable else None)
        )
        if self._primary is not False:
            self._meet()

    def _meet(self) -> None:
        shadow, primary = self._shadow, self._primary
        if shadow is None:
            return  # the shadow failed: counted already
        if not self.sampled:
            self.router._skipped(self.primary_name)
            return
        if isinstance(primary, tuple) and isinstance(shadow, tuple):
            try:
                self.router._compare(self.primary_name, primary, shadow)
            except Exception:  # the shadow must never disturb the router; log and count
                log.exception("shadow comparison failed")
                self.router.metrics.shadow_outcomes[self.primary_name, "error"] += 1
        # primary None: it failed; nothing to compare against (counted as its error)


def _endpoints_as_urls(doc: dict[str, object]) -> dict[str, object]:
    """Render endpoint objects back as ``http://host:port`` strings (the file format)."""
    for name in VARIANTS:
        variant = doc.get(name)
        if isinstance(variant, dict):
            variant["endpoints"] = [
                Endpoint.model_validate(e).url for e in variant.get("endpoints", [])
            ]
            if "monitor" in variant:
                variant["monitor"] = Endpoint.model_validate(variant["monitor"]).url
    return doc
