"""The sidecar's HTTP binding: routes of :class:`MonitorService` over ``driftline.serving.http``.

Who calls it: ``driftline monitor`` (:func:`run`); tests call :func:`create_handler` directly or
start the command as a process. Every body is validated here; errors are ``{"error": ...}`` with
a 4xx status, never a crash.

Routes:

- ``POST /v1/records`` (``records.MEDIA_TYPE`` body): one prediction record frame. 202 with
  ``{"rows", "dropped"}``; a malformed frame is counted and answered 400.
- ``POST /v1/feedback`` (JSON): ``{"feedback": [{"request_id", "label"|"value", "row"?}]}``
  (or the bare list). 200 with counts per result (joined, unknown, late, duplicate).
- ``GET /v1/verdict``: the current verdict of every variant (JSON).
- ``GET /v1/window``: the mergeable window state (JSON; sum the counts across pods).
- ``GET /metrics``: Prometheus text format.
- ``GET /healthz``: liveness and readiness (the profile is loaded before the port opens).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
from collections.abc import Callable

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from driftline.serving import records
from driftline.serving.http import Handler, HttpServer, Request, Response, json_error
from driftline.serving.monitor.feedback import Feedback
from driftline.serving.monitor.metrics import MonitorMetrics
from driftline.serving.monitor.service import MonitorService

log = logging.getLogger(__name__)

FEEDBACK_PATH = "/v1/feedback"
VERDICT_PATH = "/v1/verdict"
WINDOW_PATH = "/v1/window"


class FeedbackError(ValueError):
    """A feedback body that does not follow the format; the message names the item and field."""


def parse_feedback(body: bytes, max_items: int) -> list[Feedback]:
    """Validate a feedback body.

    Raises:
        FeedbackError: naming the item index and field that is wrong.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FeedbackError(f"body is not valid JSON: {exc}") from exc
    items = doc.get("feedback") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise FeedbackError("expected {'feedback': [...]} or a JSON list")
    if len(items) > max_items:
        raise FeedbackError(f"at most {max_items} feedback items per request, got {len(items)}")
    out: list[Feedback] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise FeedbackError(f"feedback[{i}]: must be an object")
        rid = item.get("request_id")
        if not isinstance(rid, str) or not rid:
            raise FeedbackError(f"feedback[{i}].request_id: must be a non-empty string")
        has_label, has_value = "label" in item, "value" in item
        if has_label == has_value:
            raise FeedbackError(f"feedback[{i}]: give exactly one of 'label' or 'value'")
        truth = item["label" if has_label else "value"]
        if (
            isinstance(truth, bool)
            or not isinstance(truth, int | float)
            or not math.isfinite(float(truth))
        ):
            raise FeedbackError(
                f"feedback[{i}].{'label' if has_label else 'value'}: must be a number"
            )
        row = item.get("row", 0)
        if isinstance(row, bool) or not isinstance(row, int) or row < 0:
            raise FeedbackError(f"feedback[{i}].row: must be a non-negative integer")
        unknown = set(item) - {"request_id", "label", "value", "row"}
        if unknown:
            raise FeedbackError(f"feedback[{i}]: unknown field(s) {sorted(unknown)}")
        out.append(Feedback(rid, float(truth), row))
    return out


def _json(status: int, document: object) -> Response:
    return Response(status, orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY))


def create_handler(
    service: MonitorService,
    metrics: MonitorMetrics,
    registry: CollectorRegistry,
    max_feedback_items: int = 100_000,
) -> Handler:
    """The request handler: the whole URL table in one place."""

    def records_post(request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip()
        if ctype not in (records.MEDIA_TYPE, "application/octet-stream"):
            return json_error(415, f"content-type must be {records.MEDIA_TYPE}")
        result = service.ingest(request.body)
        for reason, rows in result.dropped.items():
            metrics.dropped.labels(reason).inc(rows)
        if result.error is not None and not result.dropped:
            metrics.frames.labels("malformed").inc()
            return json_error(400, f"malformed record frame: {result.error}")
        metrics.frames.labels("accepted").inc()
        if result.rows:
            metrics.records.labels(result.variant).inc(result.rows)
        return _json(202, {"rows": result.rows, "dropped": dict(result.dropped),
                           "error": result.error})  # fmt: skip

    def feedback_post(request: Request) -> Response:
        try:
            items = parse_feedback(request.body, max_feedback_items)
        except FeedbackError as exc:
            return json_error(400, str(exc))
        counts = service.feedback(items)
        for result, n in counts.items():
            metrics.feedback.labels(result).inc(n)
        return _json(200, counts)

    def metrics_get(_: Request) -> Response:
        metrics.observe_verdicts(service.verdicts())
        return Response(200, generate_latest(registry), CONTENT_TYPE_LATEST)

    routes: dict[tuple[str, str], Callable[[Request], Response]] = {
        ("POST", records.RECORDS_PATH): records_post,
        ("POST", FEEDBACK_PATH): feedback_post,
        ("GET", VERDICT_PATH): lambda _: _json(200, service.verdicts()),
        ("GET", WINDOW_PATH): lambda _: _json(200, service.window_state()),
        ("GET", "/metrics"): metrics_get,
        ("GET", "/healthz"): lambda _: _json(200, {"status": "ok"}),
    }
    paths = {path for _, path in routes}

    async def handle(request: Request) -> Response:
        route = routes.get((request.method, request.path))
        if route is not None:
            return route(request)
        if request.path in paths:
            return json_error(405, f"method {request.method} not allowed on {request.path}")
        return json_error(404, f"no route {request.path}")

    return handle


async def serve_until_stopped(
    handler: Handler, host: str, port: int, max_body_bytes: int, on_ready: Callable[[int], None]
) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    server = HttpServer(handler, max_body_bytes=max_body_bytes)
    await server.start(host, port)
    on_ready(server.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    await server.shutdown(timeout_s=5.0)
