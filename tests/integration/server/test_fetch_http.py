"""`driftline fetch` against a local HTTP server on 127.0.0.1 (driftline.serving.fetch).

We test these aspects: a verified download lands atomically under its name; a wrong digest fails
closed with both digests and leaves nothing behind; a connection dropped mid-body and 5xx answers
are retried with backoff (recorded, not slept) and then succeed; 404 is not retried; retries give
up after the policy's attempts; the CLI prints the path or fails with the message; an existing
verified file is kept without a download.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftline.operator.cli import driftline
from driftline.serving.fetch import FetchError, RetryPolicy, fetch

pytestmark = pytest.mark.integration

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    hits: dict[str, int] = {}

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        n = self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path == "/missing.onnx":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/busy.onnx" and n <= 2:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path in ("/drop.onnx", "/always-drop.onnx") and (
            n == 1 or self.path == "/always-drop.onnx"
        ):
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)


@pytest.fixture
def origin() -> Iterator[str]:
    _Handler.hits = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_downloading_a_verified_file(origin: str, tmp_path: Path) -> None:
    path = fetch(f"{origin}/model.onnx", DIGEST, tmp_path / "models")
    assert path == tmp_path / "models" / "model.onnx"
    assert path.read_bytes() == PAYLOAD
    assert [p.name for p in path.parent.iterdir()] == ["model.onnx"]


def test_failing_closed_on_a_wrong_digest(origin: str, tmp_path: Path) -> None:
    wrong = "0" * 64
    with pytest.raises(FetchError) as info:
        fetch(f"{origin}/model.onnx", wrong, tmp_path, retry=RetryPolicy(attempts=3))
    assert f"expected {wrong}, got {DIGEST}" in str(info.value)
    assert list(tmp_path.iterdir()) == []
    assert _Handler.hits["/model.onnx"] == 1  # a mismatch is not retried


def test_retrying_a_connection_dropped_mid_body(origin: str, tmp_path: Path) -> None:
    waits: list[float] = []
    path = fetch(
        f"{origin}/drop.onnx",
        DIGEST,
        tmp_path,
        sleep=waits.append,
        retry=RetryPolicy(attempts=3, backoff_s=0.25),
    )
    assert path.read_bytes() == PAYLOAD
    assert waits == [0.25]
    assert _Handler.hits["/drop.onnx"] == 2


def test_retrying_5xx_with_exponential_backoff(origin: str, tmp_path: Path) -> None:
    waits: list[float] = []
    fetch(
        f"{origin}/busy.onnx",
        DIGEST,
        tmp_path,
        sleep=waits.append,
        retry=RetryPolicy(attempts=5, backoff_s=1.0),
    )
    assert waits == [1.0, 2.0]


def test_not_retrying_a_404(origin: str, tmp_path: Path) -> None:
    waits: list[float] = []
    with pytest.raises(FetchError, match="answered 404"):
        fetch(f"{origin}/missing.onnx", DIGEST, tmp_path, sleep=waits.append)
    assert waits == []
    assert list(tmp_path.iterdir()) == []


def test_giving_up_after_the_last_attempt(origin: str, tmp_path: Path) -> None:
    waits: list[float] = []
    with pytest.raises(FetchError, match="gave up after 3 attempts"):
        fetch(
            f"{origin}/always-drop.onnx",
            DIGEST,
            tmp_path,
            sleep=waits.append,
            retry=RetryPolicy(attempts=3, backoff_s=1.0, max_backoff_s=1.5),
        )
    assert waits == [1.0, 1.5]
    assert list(tmp_path.iterdir()) == []


def test_keeping_an_existing_verified_file(origin: str, tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(PAYLOAD)
    fetch(f"{origin}/model.onnx", DIGEST, tmp_path)
    assert "/model.onnx" not in _Handler.hits


def test_fetching_through_the_cli(origin: str, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(
        driftline,
        [
            "fetch",
            f"{origin}/model.onnx",
            "--sha256",
            DIGEST,
            "--dest",
            str(tmp_path),
            "--name",
            "m.onnx",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert ok.output.strip().endswith("m.onnx")
    bad = runner.invoke(
        driftline,
        ["fetch", f"{origin}/model.onnx", "--sha256", "1" * 64, "--dest", str(tmp_path / "other")],
    )
    assert bad.exit_code == 1
    assert f"expected {'1' * 64}, got {DIGEST}" in bad.output
