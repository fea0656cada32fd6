"""Watch the route table file and reload it when it changes.

Who uses it: ``driftline route`` runs :func:`watch_file` as a task beside the servers; on every
change it calls the router's ``load`` (which validates, and keeps the last good table when the new
one is bad).

Why polling: it needs no platform API, catches every way a file is replaced (in place, rename over
it, a Kubernetes-style symlink swap), and at the default half second it keeps a change live well
within the 2 s the router promises at a negligible cost (one ``stat`` per interval). A change is
recognised by the file's identity and mtime, and applied only when the content hash differs from
the last content seen, so touching the file does nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

Signature = tuple[int, int, int, int]
"""(device, inode, size, mtime in ns) of a file: what a change alters."""


def signature(path: Path) -> Signature | None:
    """The file's :data:`Signature` (following symlinks), or None when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


async def watch_file(
    path: Path,
    interval_s: float,
    on_change: Callable[[bytes], object],
    initial: bytes | None = None,
) -> None:
    """Call ``on_change(content)`` whenever the file's content changes; runs until cancelled.

    Args:
        path: the file to watch.
        interval_s: seconds between checks.
        on_change: called with the new content; exceptions are logged, never fatal.
        initial: the content already applied (not re-applied when unchanged).
    """
    last_sig = signature(path)
    last_hash = hashlib.sha256(initial).digest() if initial is not None else None
    while True:
        await asyncio.sleep(interval_s)
        sig = signature(path)
        if sig is None or sig == last_sig:
            continue
        last_sig = sig
        try:
            content = path.read_bytes()
        except OSError as exc:
            log.warning("route table %s unreadable: %s", path, exc)
            continue
        digest = hashlib.sha256(content).digest()
        if digest == last_hash:
            continue
        last_hash = digest
        try:
            on_change(content)
        except Exception as exc:  # a bad table is the caller's to report; keep watching
            log.debug("route table change from %s not applied: %s", path, exc)
