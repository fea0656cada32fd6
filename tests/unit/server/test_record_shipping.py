"""The record shipper's framing (driftline.serving.recorder).

We test these aspects: entries split into frames of bounded rows in order, a request never split
across frames; a flush of many entries arriving as several decodable frames holding every row,
each frame counted as sent; a failed frame counted as dropped without losing the frames after it.
"""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from driftline.serving.metrics import ServerMetrics
from driftline.serving.recorder import FRAME_ROWS, Entry, RecordShipper, frames_of
from driftline.serving.records import decode


def _entry(request_id: str, rows: int) -> Entry:
    x = np.full((rows, 2), float(len(request_id)), dtype=np.float32)
    return Entry(request_id, rows, 1.0, 0.5, {"x": x}, {"y": x[:, :1]})


@pytest.mark.parametrize(
    ("rows", "limit", "expected"),
    [
        ([1, 1, 1], 2, [[1, 1], [1]]),
        ([2, 2], 4, [[2, 2]]),
        ([3, 1, 5, 1], 4, [[3, 1], [5], [1]]),
        ([9], 4, [[9]]),
        ([], 4, []),
    ],
)
def test_splitting_entries_into_frames_of_bounded_rows(
    rows: list[int], limit: int, expected: list[list[int]]
) -> None:
    entries = [_entry(f"r{i}", n) for i, n in enumerate(rows)]
    groups = frames_of(entries, limit)
    assert [[e.rows for e in chunk] for chunk, _ in groups] == expected
    assert [n for _, n in groups] == [sum(g) for g in expected]
    assert [e for chunk, _ in groups for e in chunk] == entries  # order kept, nothing lost


async def test_flushing_many_entries_as_several_frames_and_counting_each() -> None:
    registry = CollectorRegistry()
    metrics = ServerMetrics(registry, "m", "1")
    frames: list[bytes] = []
    fail_second = True

    async def post(frame: bytes) -> None:
        nonlocal fail_second
        if len(frames) == 1 and fail_second:
            fail_second = False
            raise OSError("monitor hiccup")
        frames.append(frame)

    shipper = RecordShipper(
        post,
        metrics,
        model="m",
        version="1",
        variant="stable",
        max_rows=10 * FRAME_ROWS,
        flush_rows=10 * FRAME_ROWS,
        flush_interval_s=60.0,
    )
    total = 3 * FRAME_ROWS + 7
    for i in range(total):
        shipper.add(_entry(f"r{i}", 1))
    await shipper.close()
    batches = [decode(f) for f in frames]
    assert [b.rows for b in batches] == [FRAME_ROWS, FRAME_ROWS, 7]  # the 2nd frame failed
    assert batches[0].request_ids[0] == "r0"
    assert batches[1].request_ids[0] == f"r{2 * FRAME_ROWS}"
    labels = {"model": "m", "version": "1"}
    assert registry.get_sample_value("driftline_server_records_sent_total", labels) == (
        2 * FRAME_ROWS + 7
    )
    dropped = registry.get_sample_value(
        "driftline_server_records_dropped_total", {**labels, "reason": "send_failed"}
    )
    assert dropped == FRAME_ROWS
