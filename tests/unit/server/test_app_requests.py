"""The model server app in-process (ModelServer.handle): routes, every error path, datatypes.

We test these aspects: the route table (pure); each endpoint's answer; every error path answering
4xx/503 with {"error": ...} naming the problem, counted by outcome; a model that fails to load
staying not-ready with the process up; every datatype through a real ONNX Runtime session; the
quickstart model's outputs equal to calling ONNX Runtime directly; prediction records handed to
the shipper with the request's rows; ModelServer.dispatch answering a lone
request at once exactly like a queued one, queueing requests that should batch (answered by
the worker's callbacks), and answering 500 when the batcher refuses work.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import onnxruntime as ort
import orjson
import pytest
from prometheus_client import CollectorRegistry

from driftline.serving.errors import MethodNotAllowed, ModelNotFound
from driftline.serving.http import Request, Response
from driftline.serving.metrics import ServerMetrics
from driftline.serving.protocol import DTYPES, Policy
from driftline.serving.recorder import RecordShipper
from driftline.serving.records import decode
from driftline.serving.runtime import OnnxRuntime, SessionConfig
from driftline.serving.server import ModelServer, match_route

QUICKSTART_TIMEOUT = pytest.mark.timeout(60)
"""Tests on the quickstart models: the first one pays for training them (a session fixture)."""

DATATYPE_VALUES = {
    "BOOL": [True, False, True],
    "INT8": [-1, 0, 127],
    "INT16": [-300, 0, 300],
    "INT32": [-70000, 0, 70000],
    "INT64": [-(2**40), 0, 2**40],
    "UINT8": [0, 1, 255],
    "UINT16": [0, 1, 65535],
    "UINT32": [0, 1, 2**32 - 1],
    "UINT64": [0, 1, 2**64 - 1],
    "FP16": [0.5, -2.0, 1024.0],
    "FP32": [0.25, -1.5, 3e38],
    "FP64": [1e-300, -2.5, 1e300],
    "BYTES": ["a", "bb", "ü"],
}


def _get(path: str) -> Request:
    return Request("GET", path, "", {}, b"")


def _post(path: str, doc: object, headers: dict[str, str] | None = None) -> Request:
    body = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    return Request("POST", path, "", headers or {}, body)


def _infer_doc(values: list[list[float]], **extra: object) -> dict[str, object]:
    return {
        "inputs": [
            {"name": "input", "shape": [len(values), 7], "datatype": "FP32", "data": values}
        ],
        **extra,
    }


async def _server(
    model: Path,
    registry: CollectorRegistry,
    *,
    shipper: RecordShipper | None = None,
    metrics: ServerMetrics | None = None,
    max_rows: int = 16,
) -> ModelServer:
    metrics = metrics or ServerMetrics(registry, "m", "1")
    app = ModelServer(
        OnnxRuntime(model, SessionConfig()),
        metrics,
        registry,
        name="m",
        version="1",
        policy=Policy(max_rows=max_rows),
        max_batch_size=8,
        max_delay_s=0.0,
        shipper=shipper,
    )
    return app


def _count(registry: CollectorRegistry, outcome: str) -> float:
    value = registry.get_sample_value(
        "driftline_server_requests_total", {"model": "m", "version": "1", "outcome": outcome}
    )
    assert value is not None
    return value


@pytest.mark.parametrize(
    ("method", "path", "endpoint", "params"),
    [
        ("GET", "/v2", "server_metadata", {}),
        ("GET", "/v2/health/live", "live", {}),
        ("GET", "/v2/health/ready", "ready", {}),
        ("GET", "/v2/models/a", "model_metadata", {"name": "a"}),
        ("GET", "/v2/models/a/versions/3", "model_metadata", {"name": "a", "version": "3"}),
        ("GET", "/v2/models/a/ready", "model_ready", {"name": "a"}),
        ("GET", "/v2/models/a/versions/3/ready", "model_ready", {"name": "a", "version": "3"}),
        ("POST", "/v2/models/a/infer", "infer", {"name": "a"}),
        ("POST", "/v2/models/a/versions/3/infer", "infer", {"name": "a", "version": "3"}),
        ("GET", "/metrics", "metrics", {}),
    ],
)
def test_routing_every_protocol_path(
    method: str, path: str, endpoint: str, params: dict[str, str]
) -> None:
    match = match_route(method, path)
    assert match.endpoint == endpoint
    assert dict(match.params) == params


@pytest.mark.parametrize(
    ("method", "path", "error"),
    [
        ("GET", "/v3", ModelNotFound),
        ("GET", "/v2/models//ready", ModelNotFound),
        ("GET", "/v2/models/a/infer", MethodNotAllowed),
        ("POST", "/v2/health/live", MethodNotAllowed),
        ("DELETE", "/v2/models/a", MethodNotAllowed),
    ],
)
def test_refusing_unknown_paths_and_methods(method: str, path: str, error: type) -> None:
    with pytest.raises(error):
        match_route(method, path)


@QUICKSTART_TIMEOUT
async def test_answering_probes_and_metadata(
    quickstart_artifacts: Path, registry: CollectorRegistry
) -> None:
    app = await _server(quickstart_artifacts / "model-v2.onnx", registry)
    not_ready = await app.handle(_get("/v2/health/ready"))
    assert not_ready.status == 503
    assert "loading" in orjson.loads(not_ready.body)["error"]
    assert (await app.handle(_get("/v2/health/live"))).status == 200
    assert await app.load()
    try:
        assert orjson.loads((await app.handle(_get("/v2/health/ready"))).body) == {"ready": True}
        assert orjson.loads((await app.handle(_get("/v2/models/m/ready"))).body) == {
            "name": "m",
            "ready": True,
        }
        server_meta = orjson.loads((await app.handle(_get("/v2"))).body)
        assert server_meta["name"] == "driftline"
        meta = orjson.loads((await app.handle(_get("/v2/models/m/versions/1"))).body)
        assert meta["platform"] == "onnx_onnxv1"
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 7]}]
        assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"]
        metrics = await app.handle(_get("/metrics"))
        assert metrics.content_type.startswith("text/plain")
        assert b"driftline_server_model_ready" in metrics.body
    finally:
        await app.close()


ERROR_PATHS = [
    (
        "unknown model",
        "/v2/models/nope/infer",
        _infer_doc([[1] * 7]),
        {},
        404,
        "'nope' is not served",
        "not_found",
    ),
    (
        "unknown version",
        "/v2/models/m/versions/9/infer",
        _infer_doc([[1] * 7]),
        {},
        404,
        "no version '9'",
        "not_found",
    ),
    ("malformed json", "/v2/models/m/infer", b"{", {}, 400, "not valid JSON", "invalid"),
    (
        "wrong input name",
        "/v2/models/m/infer",
        {"inputs": [{"name": "x", "shape": [1, 7], "datatype": "FP32", "data": [1] * 7}]},
        {},
        400,
        "no input 'x'",
        "invalid",
    ),
    (
        "wrong datatype",
        "/v2/models/m/infer",
        {"inputs": [{"name": "input", "shape": [1, 7], "datatype": "INT64", "data": [1] * 7}]},
        {},
        400,
        "'INT64' does not match",
        "invalid",
    ),
    (
        "wrong shape",
        "/v2/models/m/infer",
        {"inputs": [{"name": "input", "shape": [1, 6], "datatype": "FP32", "data": [1] * 6}]},
        {},
        400,
        "does not match the model's [-1, 7]",
        "invalid",
    ),
    (
        "length mismatch",
        "/v2/models/m/infer",
        {"inputs": [{"name": "input", "shape": [2, 7], "datatype": "FP32", "data": [1] * 7}]},
        {},
        400,
        "has 7 elements but shape [2, 7] needs 14",
        "invalid",
    ),
    (
        "non-finite",
        "/v2/models/m/infer",
        _infer_doc([[1e39] + [1] * 6]),
        {},
        400,
        "non-finite",
        "invalid",
    ),
    (
        "empty batch",
        "/v2/models/m/infer",
        {"inputs": [{"name": "input", "shape": [0, 7], "datatype": "FP32", "data": []}]},
        {},
        400,
        "empty batch",
        "invalid",
    ),
    (
        "batch over max",
        "/v2/models/m/infer",
        _infer_doc([[1] * 7] * 17),
        {},
        400,
        "17 rows exceeds the maximum of 16",
        "invalid",
    ),
    (
        "bad header length",
        "/v2/models/m/infer",
        _infer_doc([[1] * 7]),
        {"inference-header-content-length": "x"},
        400,
        "Inference-Header-Content-Length",
        "invalid",
    ),
    (
        "compressed body",
        "/v2/models/m/infer",
        _infer_doc([[1] * 7]),
        {"content-encoding": "gzip"},
        400,
        "Content-Encoding 'gzip'",
        "invalid",
    ),
]


async def _at_once(app: ModelServer, request: Request) -> Response | None:
    """Dispatch ``request``; its answer when it came within one loop turn (no worker), else None.

    A lone request runs in the hand-over callback the dispatch schedules; a queued one needs the
    batcher's worker task, which runs after this coroutine resumes.
    """
    replies: list[Response] = []
    assert app.dispatch(request, replies.append)
    await asyncio.sleep(0)  # one loop turn: the hand-over callback runs (not a synchronisation)
    assert len(replies) <= 1
    return replies[0] if replies else None


async def _replied(replies: list[Response], count: int) -> None:
    """Loop turns until ``count`` replies came (a deadline, not a sleep)."""
    deadline = asyncio.get_running_loop().time() + 5.0
    while len(replies) < count:
        assert asyncio.get_running_loop().time() < deadline, "no reply within 5 s"
        await asyncio.sleep(0)


async def _answer(app: ModelServer, request: Request, fast: bool) -> Response:
    """Answer through the batcher's queue, or at once as a lone request."""
    if not fast:
        return await app.handle(request)
    app.watch_pending(lambda: 1)
    response = await _at_once(app, request)
    assert response is not None, "a lone request on an idle server must be answered at once"
    return response


@QUICKSTART_TIMEOUT
@pytest.mark.parametrize("fast", [False, True], ids=["async", "fast"])
@pytest.mark.parametrize(
    ("case", "path", "doc", "headers", "status", "message", "outcome"),
    ERROR_PATHS,
    ids=[c[0] for c in ERROR_PATHS],
)
async def test_answering_bad_requests_with_4xx_naming_the_problem(
    quickstart_artifacts: Path,
    registry: CollectorRegistry,
    fast: bool,
    case: str,
    path: str,
    doc: object,
    headers: dict[str, str],
    status: int,
    message: str,
    outcome: str,
) -> None:
    app = await _server(quickstart_artifacts / "model-v2.onnx", registry)
    assert await app.load()
    try:
        response = await _answer(app, _post(path, doc, headers), fast)
        assert response.status == status
        assert message in orjson.loads(response.body)["error"]
        assert _count(registry, outcome) == 1
        assert _count(registry, "ok") == 0
        # the server keeps answering after any bad request
        good = await _answer(app, _post("/v2/models/m/infer", _infer_doc([[1] * 7])), fast)
        assert good.status == 200
    finally:
        await app.close()


async def test_staying_up_but_not_ready_when_the_model_fails_to_load(
    model_dir: Path, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    app = await _server(model_dir / "broken.onnx", registry)
    assert not await app.load()
    assert len([r for r in caplog.records if r.levelname == "ERROR"]) == 1
    for path in ("/v2/health/ready", "/v2/models/m/ready", "/v2/models/m"):
        response = await app.handle(_get(path))
        assert response.status == 503
        assert "failed to load" in orjson.loads(response.body)["error"]
    response = await app.handle(_post("/v2/models/m/infer", _infer_doc([[1] * 7])))
    assert response.status == 503
    assert _count(registry, "not_ready") == 1
    assert (await app.handle(_get("/v2/health/live"))).status == 200


async def test_reporting_a_missing_model_file_as_not_ready(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    app = await _server(tmp_path / "absent.onnx", registry)
    assert not await app.load()
    response = await app.handle(_get("/v2/health/ready"))
    assert "cannot read model file" in orjson.loads(response.body)["error"]


@pytest.mark.parametrize("datatype", list(DATATYPE_VALUES))
async def test_serving_every_datatype_through_onnx_runtime(
    model_dir: Path, registry: CollectorRegistry, datatype: str
) -> None:
    app = await _server(model_dir / f"identity_{datatype.lower()}.onnx", registry)
    assert await app.load()
    try:
        values = DATATYPE_VALUES[datatype]
        doc = {
            "id": "q",
            "inputs": [
                {"name": "x", "shape": [2, 3], "datatype": datatype, "data": [values, values]}
            ],
        }
        response = await app.handle(_post("/v2/models/m/infer", doc))
        assert response.status == 200, response.body
        out = orjson.loads(response.body)
        assert out["id"] == "q"
        (y,) = out["outputs"]
        assert (y["name"], y["datatype"], y["shape"]) == ("y", datatype, [2, 3])
        expected = np.array(values * 2, dtype=DTYPES[datatype]).tolist()
        assert np.array(y["data"], dtype=DTYPES[datatype]).tolist() == expected
    finally:
        await app.close()


@QUICKSTART_TIMEOUT
async def test_answering_like_onnx_runtime_itself_on_the_quickstart_model(
    quickstart_artifacts: Path, registry: CollectorRegistry
) -> None:
    path = quickstart_artifacts / "model-v2.onnx"
    rows = np.random.default_rng(0).normal(50, 20, (5, 7)).astype(np.float32)
    label, proba = ort.InferenceSession(str(path)).run(None, {"input": rows})
    app = await _server(path, registry)
    assert await app.load()
    try:
        response = await app.handle(
            _post(
                "/v2/models/m/infer", _infer_doc(rows.tolist(), outputs=[{"name": "probabilities"}])
            )
        )
        out = orjson.loads(response.body)["outputs"]
        assert [o["name"] for o in out] == ["probabilities"]
        assert np.array(out[0]["data"], dtype=np.float32).reshape(5, 2).tolist() == proba.tolist()
        response = await app.handle(_post("/v2/models/m/infer", _infer_doc(rows.tolist())))
        out = orjson.loads(response.body)["outputs"]
        assert out[0]["data"] == label.tolist()
        assert _count(registry, "ok") == 2
    finally:
        await app.close()


@QUICKSTART_TIMEOUT
async def test_handing_each_answered_request_to_the_record_shipper(
    quickstart_artifacts: Path, registry: CollectorRegistry
) -> None:
    frames: list[bytes] = []

    async def post(frame: bytes) -> None:
        frames.append(frame)

    metrics = ServerMetrics(registry, "m", "1")
    shipper = RecordShipper(
        post,
        metrics,
        model="m",
        version="1",
        variant="canary",
        max_rows=100,
        flush_rows=100,
        flush_interval_s=1.0,
    )
    app = await _server(
        quickstart_artifacts / "model-v2.onnx", registry, shipper=shipper, metrics=metrics
    )
    assert await app.load()
    try:
        rows = [[float(i)] * 7 for i in range(3)]
        await app.handle(_post("/v2/models/m/infer", _infer_doc(rows, id="abc")))
        await app.handle(_post("/v2/models/m/infer", _infer_doc([[9.0] * 7])))
        await app.handle(_post("/v2/models/m/infer", b"{bad"))
        await shipper.close()
    finally:
        await app.close()
    (frame,) = frames
    batch = decode(frame)
    assert (batch.model, batch.version, batch.variant, batch.rows) == ("m", "1", "canary", 4)
    assert batch.request_ids[:3] == ("abc",) * 3
    assert batch.request_ids[3] not in ("abc", "")
    assert batch.inputs["input"][:, 0].tolist() == [0.0, 1.0, 2.0, 9.0]
    assert set(batch.outputs) == {"label", "probabilities"}
    assert batch.outputs["probabilities"].shape == (4, 2)
    assert (batch.latencies_ms > 0).all()
    sent = registry.get_sample_value(
        "driftline_server_records_sent_total", {"model": "m", "version": "1"}
    )
    assert sent == 4


@QUICKSTART_TIMEOUT
async def test_answering_a_lone_request_at_once_exactly_like_the_async_path(
    quickstart_artifacts: Path, registry: CollectorRegistry
) -> None:
    app = await _server(quickstart_artifacts / "model-v2.onnx", registry)
    assert await app.load()
    try:
        doc = _infer_doc([[0.5] * 7, [1.5] * 7], id="r1")
        queued = await app.handle(_post("/v2/models/m/infer", doc))
        app.watch_pending(lambda: 1)
        at_once = await _at_once(app, _post("/v2/models/m/infer", doc))
        assert at_once is not None
        assert (at_once.status, at_once.body) == (queued.status, queued.body)
        assert _count(registry, "ok") == 2
        batches = registry.get_sample_value(
            "driftline_server_batch_rows_count", {"model": "m", "version": "1"}
        )
        assert batches == 2
        # probes and metadata never need to wait either
        for path in ("/v2/health/ready", "/v2/models/m", "/v2"):
            probe = await _at_once(app, _get(path))
            assert probe is not None
            assert probe.status == 200
    finally:
        await app.close()


@QUICKSTART_TIMEOUT
async def test_queueing_requests_that_should_join_a_batch(
    quickstart_artifacts: Path, registry: CollectorRegistry
) -> None:
    app = await _server(quickstart_artifacts / "model-v2.onnx", registry)
    request = _post("/v2/models/m/infer", _infer_doc([[1.0] * 7]))
    app.watch_pending(lambda: 1)
    replies: list[Response] = []
    app.dispatch(request, replies.append)  # not loaded yet: 503 before dispatch returns
    assert [r.status for r in replies] == [503]
    assert await app.load()
    try:
        replies.clear()
        # another request is waiting: queued to batch with it, not run at once
        app.watch_pending(lambda: 2)
        app.dispatch(request, replies.append)
        await asyncio.sleep(0)  # the hand-over (one loop turn, not a synchronisation)
        assert not replies
        assert app.queued_rows == 1
        await _replied(replies, 1)
        # two requests parsed together are never "alone", whatever the pending probe says
        app.watch_pending(lambda: 1)
        app.dispatch(request, replies.append)
        app.dispatch(request, replies.append)
        await asyncio.sleep(0)
        assert len(replies) == 1
        assert app.queued_rows == 2
        await _replied(replies, 3)  # both answered by the worker's callbacks, in one run
        assert [r.status for r in replies] == [200, 200, 200]
        assert replies[0].body == replies[1].body == replies[2].body
        assert _count(registry, "ok") == 3
        runs = registry.get_sample_value(
            "driftline_server_batch_rows_count", {"model": "m", "version": "1"}
        )
        assert runs == 2
        assert app.queued_rows == 0
        assert await _at_once(app, request) is not None  # idle again and alone: at once
    finally:
        await app.close()


@QUICKSTART_TIMEOUT
async def test_answering_a_failed_batch_and_a_closed_batcher_with_500(
    quickstart_artifacts: Path, registry: CollectorRegistry
) -> None:
    app = await _server(quickstart_artifacts / "model-v2.onnx", registry)
    assert await app.load()
    request = _post("/v2/models/m/infer", _infer_doc([[1.0] * 7]))
    batcher = app._batcher
    assert batcher is not None
    await batcher.close()  # as during shutdown: the batcher refuses new work
    response = await _at_once(app, request)
    assert response is not None
    assert (response.status, orjson.loads(response.body)) == (
        500,
        {"error": "server is shutting down"},
    )
    assert _count(registry, "error") == 1
    await app.close()
