"""Model fetch for the init container: download, verify sha256, rename into place atomically.

Who uses it: ``driftline fetch URI --sha256 HEX --dest DIR`` (the serving pod's init container and
local mode). Supported URIs: ``http://``, ``https://``, ``file://`` (and plain paths), ``s3://``
with the optional ``s3`` extra (boto3).

Guarantees:

- The destination file appears only complete and verified: bytes stream into a temporary file in
  the destination folder while hashed, and are renamed over the final name (atomic on POSIX) only
  when the digest matches. A mismatch deletes the temporary file and fails closed with a message
  showing both digests.
- A file already present with the expected digest is kept (re-running the init container is free).
- Transient HTTP failures (connection errors, a dropped connection mid-body, 408/429/5xx) are
  retried with exponential backoff; other 4xx and digest mismatches are not. When the retries are
  spent the error stays a :class:`TransientFetchError`, so a caller with its own backoff (the
  operator) can tell "try later" from "never".
- With ``max_bytes`` the download stops as soon as it exceeds the limit (``Content-Length`` is
  checked before the body is read): :class:`TooLargeError`.

Errors: :class:`FetchError` (permanent) with the subclasses :class:`DigestMismatchError` and
:class:`TooLargeError`, and :class:`TransientFetchError` (worth retrying later).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final
from urllib.parse import unquote, urlparse

log = logging.getLogger(__name__)

CHUNK: Final = 1 << 20
"""Bytes read per chunk (1 MiB): bounded memory for models of any size."""
_HEX64: Final = re.compile(r"^[0-9a-f]{64}$")
_RETRY_STATUS: Final = frozenset([408, 425, 429, 500, 502, 503, 504])


class FetchError(Exception):
    """A fetch that failed for good; the message says what and why."""


class TransientFetchError(FetchError):
    """A failure worth retrying (network, dropped connection, 408/429/5xx)."""


class DigestMismatchError(FetchError):
    """The bytes do not have the expected sha256 (nothing was written)."""


class TooLargeError(FetchError):
    """The artifact is larger than the caller's ``max_bytes`` (the download was stopped)."""


class _Limited:
    """A write-only file wrapper that refuses more than ``limit`` bytes (``None``: no limit)."""

    def __init__(self, out: BinaryIO, limit: int | None, uri: str) -> None:
        self._out = out
        self._limit = limit
        self._uri = uri
        self.written = 0

    def check_declared(self, size: int) -> None:
        """Fail before reading a body whose declared size is already over the limit."""
        if self._limit is not None and size > self._limit:
            raise TooLargeError(
                f"{self._uri} is {size} bytes, more than the limit of {self._limit} bytes"
            )

    def write(self, data: bytes) -> int:
        """Write ``data``, or raise :class:`TooLargeError` when it would pass the limit."""
        self.written += len(data)
        if self._limit is not None and self.written > self._limit:
            raise TooLargeError(
                f"{self._uri} is larger than the limit of {self._limit} bytes (stopped at "
                f"{self.written} bytes)"
            )
        return self._out.write(data)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry transient failures.

    Attributes:
        attempts: total attempts (1 = no retry).
        backoff_s: delay before the second attempt; doubles each time.
        max_backoff_s: ceiling of one delay.
    """

    attempts: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 10.0

    def delays(self) -> Iterator[float]:
        """The delays between attempts (``attempts - 1`` values)."""
        delay = self.backoff_s
        for _ in range(self.attempts - 1):
            yield min(delay, self.max_backoff_s)
            delay *= 2


def check_digest(value: str) -> str:
    """Normalise a sha256 hex digest (lower-case, optional ``sha256:`` prefix).

    Raises:
        FetchError: when it is not 64 hex digits.
    """
    digest = value.lower().removeprefix("sha256:")
    if not _HEX64.match(digest):
        raise FetchError(f"--sha256 must be 64 hex digits, got {value!r}")
    return digest


def file_name_of(uri: str) -> str:
    """The last path segment of ``uri`` (the default destination file name).

    Raises:
        FetchError: when the URI's path has no file name.
    """
    name = unquote(urlparse(uri).path.rstrip("/").rsplit("/", 1)[-1])
    if not name or name in (".", ".."):
        raise FetchError(f"cannot derive a file name from {uri!r}; pass --name")
    return name


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _copy_http(uri: str, out: _Limited, timeout_s: float) -> None:
    import httpx

    try:
        with httpx.stream("GET", uri, timeout=timeout_s, follow_redirects=True) as response:
            if response.status_code in _RETRY_STATUS:
                raise TransientFetchError(f"GET {uri} answered {response.status_code}")
            if response.status_code >= 400:
                raise FetchError(f"GET {uri} answered {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit():
                out.check_declared(int(declared))
            for chunk in response.iter_bytes(CHUNK):
                out.write(chunk)
    except httpx.TransportError as exc:  # connect/read errors, a connection dropped mid-body
        raise TransientFetchError(f"GET {uri} failed: {type(exc).__name__}: {exc}") from None


def _copy_file(path: Path, out: _Limited) -> None:
    try:
        out.check_declared(path.stat().st_size)
        with path.open("rb") as src:
            shutil.copyfileobj(src, out, CHUNK)
    except OSError as exc:
        raise FetchError(f"cannot read {path}: {exc.strerror or exc}") from None


def _copy_s3(uri: str, out: _Limited) -> None:
    try:
        import boto3
    except ImportError:
        raise FetchError("s3:// URIs need the s3 extra: pip install 'driftline[s3]'") from None
    parsed = urlparse(uri)
    try:
        boto3.client("s3").download_fileobj(parsed.netloc, parsed.path.lstrip("/"), out)
    except FetchError:
        raise  # our own limit, raised from inside the download
    except Exception as exc:  # botocore's error tree is large; all are retried as transient
        raise TransientFetchError(f"s3 download of {uri} failed: {exc}") from None


def _copy(uri: str, out: _Limited, timeout_s: float) -> None:
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        _copy_http(uri, out, timeout_s)
    elif scheme == "file":
        _copy_file(Path(unquote(urlparse(uri).path)), out)
    elif scheme == "":
        _copy_file(Path(uri), out)
    elif scheme == "s3":
        _copy_s3(uri, out)
    else:
        raise FetchError(f"unsupported URI scheme {scheme!r} (http, https, file, s3)")


def fetch(
    uri: str,
    sha256: str,
    dest: Path,
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    timeout_s: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    max_bytes: int | None = None,
) -> Path:
    """Download ``uri`` into ``dest/name``, verified against ``sha256``.

    Args:
        uri: where the artifact lives.
        sha256: the expected hex digest.
        dest: destination folder (created when missing).
        name: destination file name; default: the URI's last path segment.
        retry: retry policy for transient failures.
        timeout_s: per-request network timeout.
        sleep: how to wait between attempts (tests pass a recorder).
        max_bytes: largest accepted size; a bigger artifact fails without being read to the end.

    Returns:
        The final path.

    Raises:
        FetchError: bad arguments or a permanent failure (404, unreadable file).
        DigestMismatchError: the digest differs (message shows expected and actual digests).
        TooLargeError: the artifact is larger than ``max_bytes``.
        TransientFetchError: transient failures outlived the retries.
    """
    expected = check_digest(sha256)
    target = dest / (name or file_name_of(uri))
    if target.is_file() and sha256_of(target) == expected:
        log.info("%s already present with the expected digest", target)
        return target
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"cannot create {dest}: {exc.strerror or exc}") from None
    policy = retry or RetryPolicy()
    delays = policy.delays()
    attempt = 0
    while True:
        attempt += 1
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=dest)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                _copy(uri, _Limited(out, max_bytes, uri), timeout_s)
                out.flush()
                os.fsync(out.fileno())
            actual = sha256_of(tmp)
            if actual != expected:
                raise DigestMismatchError(
                    f"sha256 mismatch for {uri}: expected {expected}, got {actual}; "
                    "nothing was written"
                )
            os.replace(tmp, target)
            log.info("fetched %s -> %s (sha256 %s)", uri, target, expected)
            return target
        except TransientFetchError as exc:
            delay = next(delays, None)
            if delay is None:
                raise TransientFetchError(f"{exc} (gave up after {attempt} attempts)") from None
            log.warning("attempt %d: %s; retrying in %.1fs", attempt, exc, delay)
            sleep(delay)
        finally:
            with suppress(FileNotFoundError):
                tmp.unlink()
