"""Model fetch without a network (driftline.serving.fetch): files, arguments, policy.

We test these aspects: file:// URIs and plain paths are copied and verified; a mismatch leaves
nothing; bad digests, unsupported schemes and nameless URIs fail with a clear message; the backoff
sequence doubles up to its ceiling.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from driftline.serving.fetch import FetchError, RetryPolicy, check_digest, fetch, file_name_of


@pytest.fixture
def artifact(tmp_path: Path) -> tuple[Path, str]:
    src = tmp_path / "src" / "model.onnx"
    src.parent.mkdir()
    src.write_bytes(b"onnx bytes" * 1000)
    return src, hashlib.sha256(src.read_bytes()).hexdigest()


@pytest.mark.parametrize("as_uri", [True, False])
def test_copying_a_local_file_verified(
    artifact: tuple[Path, str], tmp_path: Path, as_uri: bool
) -> None:
    src, digest = artifact
    uri = src.as_uri() if as_uri else str(src)
    out = fetch(uri, "sha256:" + digest.upper(), tmp_path / "dest")
    assert out.read_bytes() == src.read_bytes()


def test_leaving_nothing_on_a_mismatch(artifact: tuple[Path, str], tmp_path: Path) -> None:
    src, digest = artifact
    with pytest.raises(FetchError, match=f"expected {'a' * 64}, got {digest}"):
        fetch(src.as_uri(), "a" * 64, tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []


def test_replacing_a_stale_file_at_the_destination(
    artifact: tuple[Path, str], tmp_path: Path
) -> None:
    src, digest = artifact
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "model.onnx").write_bytes(b"stale")
    fetch(src.as_uri(), digest, dest)
    assert (dest / "model.onnx").read_bytes() == src.read_bytes()


@pytest.mark.parametrize(
    ("uri", "digest", "message"),
    [
        ("file:///nonexistent/model.onnx", "a" * 64, "cannot read"),
        ("ftp://host/model.onnx", "a" * 64, "unsupported URI scheme 'ftp'"),
        ("http://host/", "a" * 64, "cannot derive a file name"),
        ("http://host/m.onnx", "xyz", "64 hex digits"),
    ],
)
def test_failing_with_a_clear_message(uri: str, digest: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match=message):
        fetch(uri, digest, tmp_path)


def test_normalising_digests_and_names() -> None:
    assert check_digest("SHA256:" + "AB" * 32) == "ab" * 32
    assert file_name_of("https://h/a/b/model%20v2.onnx?x=1") == "model v2.onnx"


def test_doubling_backoff_up_to_the_ceiling() -> None:
    assert list(RetryPolicy(attempts=6, backoff_s=1.0, max_backoff_s=5.0).delays()) == [
        1.0,
        2.0,
        4.0,
        5.0,
        5.0,
    ]
    assert list(RetryPolicy(attempts=1).delays()) == []
