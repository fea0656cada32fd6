"""Lifecycle of a real `driftline serve` process: not ready until loaded, graceful SIGTERM,
records delivered to a monitor, a model that fails to load.

We test these aspects: SIGTERM while a slow request is in flight lets it finish with 200, flushes
the prediction records to the monitor, refuses new connections and exits 0; a model that fails to
load keeps the process up (live 200, ready 503 with the reason) with one clear log line; every
flag can come from its DRIFTLINE_SERVE_* variable; /metrics counts the traffic.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from onnx import TensorProto, helper, numpy_helper

from driftline.serving.records import MEDIA_TYPE, RECORDS_PATH, decode

from .conftest import ServeProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

WIDTH = 512
LAYERS = 48


def _slow_model() -> bytes:
    """y = x @ W @ W ... (LAYERS times): long enough per run to SIGTERM mid-request."""
    w = numpy_helper.from_array(
        (np.eye(WIDTH, dtype=np.float32) * 0.999).astype(np.float32), name="W"
    )
    nodes = []
    prev = "x"
    for i in range(LAYERS):
        out = "y" if i == LAYERS - 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [prev, "W"], [out]))
        prev = out
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", WIDTH])],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


class _Monitor(BaseHTTPRequestHandler):
    frames: list[bytes] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        assert self.path == RECORDS_PATH
        assert self.headers["content-type"] == MEDIA_TYPE
        self.frames.append(self.rfile.read(int(self.headers["content-length"])))
        self.send_response(204)
        self.end_headers()


@pytest.fixture
def monitor() -> Iterator[str]:
    _Monitor.frames = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Monitor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """One client for polling: a fresh httpx client per call costs more than a short model run."""
    with httpx.Client(timeout=30) as client:
        yield client


def _metric(http: httpx.Client, server: ServeProcess, name: str) -> float:
    text = http.get(server.url + "/metrics").text
    match = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return float(match.group(1)) if match else float("nan")


def test_finishing_in_flight_work_and_flushing_records_on_sigterm(
    serve: Callable[..., ServeProcess], monitor: str, tmp_path: Path, http: httpx.Client
) -> None:
    model = tmp_path / "slow.onnx"
    model.write_bytes(_slow_model())
    # records only flush on size or after 60 s: what the monitor gets comes from the SIGTERM flush;
    # --offload keeps the event loop free to answer /metrics while the model runs
    server = serve(
        "--model",
        str(model),
        "--name",
        "slow",
        "--monitor-url",
        monitor,
        "--records-flush-ms",
        "60000",
        "--max-request-rows",
        "4096",
        "--offload",
    )
    rows = np.ones((2048, WIDTH), dtype=np.float32)
    result: dict[str, object] = {}

    def call() -> None:
        # the binary tensor extension by hand over httpx: tritonclient's gevent client holds the
        # GIL in a thread long enough to starve the polling below
        header = orjson.dumps(
            {
                "id": "in-flight",
                "inputs": [
                    {
                        "name": "x",
                        "shape": list(rows.shape),
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": rows.nbytes},
                    }
                ],
                "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
            }
        )
        try:
            with httpx.Client(timeout=120) as client:
                response = client.post(
                    server.url + "/v2/models/slow/infer",
                    content=header + rows.tobytes(),
                    headers={"inference-header-content-length": str(len(header))},
                )
            assert response.status_code == 200, response.text[:300]
            length = int(response.headers["inference-header-content-length"])
            result["y"] = np.frombuffer(response.content[length:], np.float32).reshape(rows.shape)
        except Exception as exc:  # surfaced by the assertions below
            result["error"] = exc

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 30
    while _metric(http, server, "driftline_server_inflight_requests") < 1:
        assert time.monotonic() < deadline, "the request never became in-flight"
        assert thread.is_alive(), f"request ended early: {result}"
        time.sleep(0.005)  # polling interval of a wait-with-deadline
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    thread.join(60)
    assert "error" not in result, result
    y = result["y"]
    assert isinstance(y, np.ndarray)
    assert y.shape == rows.shape
    assert server.proc.wait(30) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/v2/health/live", timeout=2)
    batches = [decode(f) for f in _Monitor.frames]
    assert sum(b.rows for b in batches) == 2048
    assert set(batches[0].request_ids) == {"in-flight"}
    assert batches[0].model == "slow"
    assert batches[0].inputs["x"].shape == (2048, WIDTH)
    assert "shutting down" in server.log()


def test_staying_up_not_ready_when_the_model_cannot_load(
    serve: Callable[..., ServeProcess], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    server = serve("--model", str(bad), "--name", "bad", ready=False)
    deadline = time.monotonic() + 30
    while "is not ready" not in server.log():
        assert time.monotonic() < deadline
        time.sleep(0.05)  # polling interval of a wait-with-deadline
    ready = httpx.get(server.url + "/v2/health/ready", timeout=5)
    assert ready.status_code == 503
    assert "failed to load" in ready.json()["error"]
    infer = httpx.post(server.url + "/v2/models/bad/infer", content=b"{}", timeout=5)
    assert infer.status_code == 503
    assert httpx.get(server.url + "/v2/health/live", timeout=5).status_code == 200
    errors = [line for line in server.log().splitlines() if " ERROR " in line]
    assert len(errors) == 1, server.log()
    assert "Traceback" not in server.log()


def test_taking_every_setting_from_the_environment(
    serve: Callable[..., ServeProcess], quickstart_artifacts: Path, http: httpx.Client
) -> None:
    server = serve(
        env={
            "DRIFTLINE_SERVE_MODEL": str(quickstart_artifacts / "model-v1.onnx"),
            "DRIFTLINE_SERVE_NAME": "envmodel",
            "DRIFTLINE_SERVE_VERSION": "7",
            "DRIFTLINE_SERVE_MAX_REQUEST_ROWS": "2",
        }
    )
    meta = httpx.get(server.url + "/v2/models/envmodel/versions/7", timeout=5)
    assert meta.status_code == 200
    body = {"inputs": [{"name": "input", "shape": [3, 7], "datatype": "FP32", "data": [0] * 21}]}
    too_big = httpx.post(server.url + "/v2/models/envmodel/infer", json=body, timeout=5)
    assert too_big.status_code == 400
    assert "maximum of 2" in too_big.json()["error"]
    assert _metric(http, server, "driftline_server_requests_total") >= 0
    text = httpx.get(server.url + "/metrics", timeout=5).text
    assert 'outcome="invalid",version="7"} 1.0' in text
