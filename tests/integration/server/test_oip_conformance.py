"""Protocol conformance of a real `driftline serve` process, driven by tritonclient.http.

We test these aspects: health, server and model metadata through a third-party OIP client;
inference in the client's default binary-tensor mode and in pure JSON mode, with requested
outputs and request ids, equal to ONNX Runtime called directly; every datatype round-trips
through the client; bad requests come back as the client's error with our message and status;
versioned paths; concurrent clients get their own rows back (batching through the real stack).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from .conftest import ServeProcess, load_model_builders

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

BUILDERS = load_model_builders()

VALUES = {
    "BOOL": np.array([[True, False, True]]),
    "INT8": np.array([[-1, 0, 127]], dtype=np.int8),
    "INT16": np.array([[-300, 0, 300]], dtype=np.int16),
    "INT32": np.array([[-70000, 0, 70000]], dtype=np.int32),
    "INT64": np.array([[-(2**40), 0, 2**40]], dtype=np.int64),
    "UINT8": np.array([[0, 1, 255]], dtype=np.uint8),
    "UINT16": np.array([[0, 1, 65535]], dtype=np.uint16),
    "UINT32": np.array([[0, 1, 2**32 - 1]], dtype=np.uint32),
    "UINT64": np.array([[0, 1, 2**64 - 1]], dtype=np.uint64),
    "FP16": np.array([[0.5, -2.0, 1024.0]], dtype=np.float16),
    "FP32": np.array([[0.25, -1.5, 3e38]], dtype=np.float32),
    "FP64": np.array([[1e-300, -2.5, 1e300]], dtype=np.float64),
    "BYTES": np.array([[b"a", b"bb", "ü".encode()]], dtype=object),
}


def _client(server: ServeProcess) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}", network_timeout=10.0)


@pytest.fixture
def churn(serve: Callable[..., ServeProcess], quickstart_artifacts: Path) -> ServeProcess:
    return serve(
        "--model", str(quickstart_artifacts / "model-v2.onnx"), "--name", "churn", "--version", "2"
    )


def test_answering_health_and_metadata_through_tritonclient(churn: ServeProcess) -> None:
    client = _client(churn)
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("churn")
        assert client.is_model_ready("churn", "2")
        assert not client.is_model_ready("churn", "7")
        assert not client.is_model_ready("other")
        server = client.get_server_metadata()
        assert server["name"] == "driftline"
        assert "binary_tensor_data" in server["extensions"]
        meta = client.get_model_metadata("churn", "2")
        assert meta["platform"] == "onnx_onnxv1"
        assert meta["versions"] == ["2"]
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 7]}]
        assert meta["outputs"] == [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
        ]
    finally:
        client.close()


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_inferring_like_onnx_runtime_through_tritonclient(
    churn: ServeProcess, quickstart_artifacts: Path, binary: bool
) -> None:
    rows = np.random.default_rng(3).normal(40, 20, (4, 7)).astype(np.float32)
    label, proba = ort.InferenceSession(str(quickstart_artifacts / "model-v2.onnx")).run(
        None, {"input": rows}
    )
    client = _client(churn)
    try:
        inp = httpclient.InferInput("input", list(rows.shape), "FP32")
        inp.set_data_from_numpy(rows, binary_data=binary)
        # default outputs (all, binary unless told otherwise)
        result = client.infer("churn", [inp], request_id="req-1", model_version="2")
        assert result.get_response()["id"] == "req-1"
        assert result.get_response()["model_name"] == "churn"
        assert result.get_response()["model_version"] == "2"
        assert result.as_numpy("label").tolist() == label.tolist()
        assert result.as_numpy("probabilities").tolist() == proba.tolist()
        # one requested output
        out = httpclient.InferRequestedOutput("probabilities", binary_data=binary)
        result = client.infer("churn", [inp], outputs=[out])
        assert result.as_numpy("label") is None
        assert result.as_numpy("probabilities").tolist() == proba.tolist()
    finally:
        client.close()


CLIENT_DATATYPES = ("BOOL", "INT8", "UINT64", "FP16", "FP64", "BYTES")
"""A process per datatype costs seconds each; these cover every codec family through the client
(every datatype runs through a real ONNX Runtime session in tests/unit/server)."""


@pytest.mark.parametrize("datatype", CLIENT_DATATYPES)
def test_round_tripping_datatypes_through_tritonclient(
    serve: Callable[..., ServeProcess], tmp_path: Path, datatype: str
) -> None:
    values = VALUES[datatype]
    path = tmp_path / f"identity_{datatype}.onnx"
    path.write_bytes(BUILDERS.identity_model(datatype))
    server = serve("--model", str(path), "--name", "id")
    client = _client(server)
    try:
        for binary in (True, False):
            if datatype == "FP16" and not binary:
                continue  # tritonclient refuses FP16 in JSON (JSON has no half floats)
            inp = httpclient.InferInput("x", list(values.shape), datatype)
            inp.set_data_from_numpy(values, binary_data=binary)
            out = httpclient.InferRequestedOutput("y", binary_data=binary)
            got = client.infer("id", [inp], outputs=[out]).as_numpy("y")
            assert got is not None
            if datatype == "BYTES":
                got_list = [v if isinstance(v, bytes) else str(v).encode() for v in got.ravel()]
                assert got_list == list(values.ravel()), binary
            else:
                assert got.dtype == values.dtype, binary
                assert got.tolist() == values.tolist(), binary
    finally:
        client.close()
        server.stop()


@pytest.mark.parametrize(
    ("name", "shape", "datatype", "data", "message"),
    [
        ("nope", [1, 7], "FP32", np.zeros((1, 7), np.float32), "no input 'nope'"),
        ("input", [1, 7], "FP64", np.zeros((1, 7), np.float64), "'FP64' does not match"),
        ("input", [1, 6], "FP32", np.zeros((1, 6), np.float32), "does not match the model's"),
        ("input", [1, 7], "FP32", np.full((1, 7), np.inf, np.float32), "non-finite"),
    ],
)
def test_reporting_bad_requests_through_tritonclient_errors(
    churn: ServeProcess,
    name: str,
    shape: list[int],
    datatype: str,
    data: np.ndarray,
    message: str,
) -> None:
    client = _client(churn)
    try:
        inp = httpclient.InferInput(name, shape, datatype)
        inp.set_data_from_numpy(data, binary_data=True)
        with pytest.raises(InferenceServerException) as info:
            client.infer("churn", [inp])
        assert message in info.value.message()
        assert info.value.status() == "400"
        with pytest.raises(InferenceServerException) as info:
            client.infer("other", [inp])
        assert info.value.status() == "404"
        assert client.is_server_live()
    finally:
        client.close()


def test_answering_concurrent_clients_with_their_own_rows(
    churn: ServeProcess, quickstart_artifacts: Path
) -> None:
    rows = np.random.default_rng(11).normal(40, 20, (64, 7)).astype(np.float32)
    # unbatched reference calls with the server's session options (one thread: ONNX Runtime sums
    # a tree ensemble in a different order when it splits the trees over threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(quickstart_artifacts / "model-v2.onnx"), options)
    proba = np.concatenate([session.run(None, {"input": rows[i : i + 1]})[1] for i in range(64)])

    def one(i: int) -> np.ndarray:
        client = _client(churn)
        try:
            inp = httpclient.InferInput("input", [1, 7], "FP32")
            inp.set_data_from_numpy(rows[i : i + 1])
            out = client.infer("churn", [inp], request_id=str(i)).as_numpy("probabilities")
            assert out is not None
            return out
        finally:
            client.close()

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(64)))
    for i, got in enumerate(results):
        assert got.tolist() == proba[i : i + 1].tolist()
