"""The fetcher's size limit and error classes (driftline.serving.fetch), without a network.

We test these aspects: a file above ``max_bytes`` fails with TooLargeError before anything lands;
at the limit it is fetched; a digest mismatch is a DigestMismatchError (still a FetchError, so
existing callers catch it); transient failures keep their class when the retries are spent; the
CLI's ``--max-bytes`` (and its environment variable) fails closed with the limit named, and a
non-positive limit is a usage error.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftline.serving import fetch as fetch_module
from driftline.serving.cli import fetch as fetch_command
from driftline.serving.fetch import (
    DigestMismatchError,
    FetchError,
    RetryPolicy,
    TooLargeError,
    TransientFetchError,
    fetch,
)


def test_the_size_limit(tmp_path: Path) -> None:
    src = tmp_path / "m.onnx"
    src.write_bytes(b"x" * 1000)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    with pytest.raises(TooLargeError, match="limit of 999 bytes"):
        fetch(str(src), digest, tmp_path / "out", max_bytes=999)
    assert list((tmp_path / "out").iterdir()) == []
    assert fetch(str(src), digest, tmp_path / "out", max_bytes=1000).read_bytes() == b"x" * 1000


def test_a_mismatch_is_its_own_fetch_error(tmp_path: Path) -> None:
    src = tmp_path / "m.onnx"
    src.write_bytes(b"abc")
    with pytest.raises(DigestMismatchError) as info:
        fetch(str(src), "0" * 64, tmp_path / "out")
    assert isinstance(info.value, FetchError)


def test_spent_retries_stay_transient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(uri: str, out: object, timeout_s: float) -> None:
        raise TransientFetchError(f"GET {uri} answered 503")

    monkeypatch.setattr(fetch_module, "_copy", unreachable)
    slept: list[float] = []
    with pytest.raises(TransientFetchError, match="gave up after 2 attempts"):
        fetch(
            "http://127.0.0.1:9/m.onnx",
            "0" * 64,
            tmp_path / "out",
            retry=RetryPolicy(attempts=2, backoff_s=0.5),
            sleep=slept.append,
        )
    assert slept == [0.5]


def test_the_cli_limit_fails_closed_and_names_the_limit(tmp_path: Path) -> None:
    src = tmp_path / "m.onnx"
    src.write_bytes(b"x" * 1000)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    out = tmp_path / "out"
    args = [str(src), "--sha256", digest, "--dest", str(out)]
    refused = CliRunner().invoke(fetch_command, [*args, "--max-bytes", "999"])
    assert refused.exit_code == 1
    assert "limit of 999 bytes" in refused.output
    assert list(out.iterdir()) == []
    bad = CliRunner().invoke(fetch_command, [*args, "--max-bytes", "0"])
    assert bad.exit_code == 2 and "--max-bytes" in bad.output
    fetched = CliRunner().invoke(fetch_command, args, env={"DRIFTLINE_FETCH_MAX_BYTES": "1000"})
    assert fetched.exit_code == 0, fetched.output
    assert (out / "m.onnx").read_bytes() == b"x" * 1000
