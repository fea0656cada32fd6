"""``driftline load``: replay rows of a dataset to an Open Inference Protocol v2 endpoint.

Who uses it: the ``driftline load`` command (:mod:`driftline.serving.load_cli`), the quickstart
demo and local mode's tests; users point it at any OIP v2 server or at the router to send
realistic traffic. It speaks plain OIP JSON, so it works against any v2 server (Driftline, KServe,
Triton, MLServer).

What it does, in order:

1. :func:`read_dataset` reads a ``.csv`` (header row naming the columns; categorical columns hold
   names that a mapping turns into integer codes) or a ``.npz`` (one 1-D array per column) into a
   :class:`Dataset`: a float matrix of the feature columns in the order asked for, and optionally
   the label column.
2. :func:`run` sends rows (``batch`` rows per request, cycling through the dataset) at a chosen
   rate (open loop: request *i* is due at ``start + i / rate``, never later because an earlier one
   was slow) with at most ``concurrency`` requests in flight, bounded by a request count and a
   duration. Every request carries an ``id`` so its prediction can be labelled later.
3. With a feedback URL, the label of each answered request is POSTed after a delay (delayed
   labels, as they arrive in real life), batched per variant: the body is
   ``{"feedback": [{"request_id": ..., "label": ..., "row": 0}, ...]}`` (``value`` instead of
   ``label`` for regression) with the
   ``x-driftline-variant`` header naming the variant that answered (the router forwards it to that
   variant's monitor). See :func:`feedback_body`.
4. :func:`summarize` turns the per-request outcomes into a :class:`Summary`: sent, ok, errors by
   status, p50/p99 latency and the count of answers per variant (from the router's
   ``x-driftline-variant`` response header; ``direct`` when there is no router).

The decisions (pacing, request bodies, the summary) are pure functions; only :func:`run` does I/O.
"""

from __future__ import annotations

import asyncio
import csv
import math
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx
import numpy as np
import numpy.typing as npt
import orjson

__all__ = [
    "DIRECT",
    "VARIANT_HEADER",
    "Dataset",
    "DatasetError",
    "LoadPlan",
    "Outcome",
    "Progress",
    "Summary",
    "due_time",
    "feedback_body",
    "infer_body",
    "parse_categories",
    "read_dataset",
    "render_summary",
    "run",
    "summarize",
]

VARIANT_HEADER: Final = "x-driftline-variant"
"""The router's response header naming the variant that answered (``stable`` or ``canary``)."""

DIRECT: Final = "direct"
"""The variant an answer is counted under when no router named one (a server called directly)."""

Float32 = npt.NDArray[np.float32]


class DatasetError(ValueError):
    """A dataset the replayer cannot use; the message names the file, column or row."""


@dataclass(frozen=True)
class Dataset:
    """Rows ready to send.

    Attributes:
        columns: the feature columns, in the order they fill the input tensor's second axis.
        features: ``(rows, len(columns))`` float32 values (categoricals as their integer codes).
        labels: the label of each row (float64), or None when the dataset has no label column.
    """

    columns: tuple[str, ...]
    features: Float32
    labels: npt.NDArray[np.float64] | None

    @property
    def rows(self) -> int:
        """Number of rows."""
        return int(self.features.shape[0])


def parse_categories(specs: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Parse ``COLUMN=name0,name1,...`` flags into ``{column: names}`` (code = position).

    Raises:
        DatasetError: a spec without ``=``, an empty column, no names or a repeated name.
    """
    out: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        column, sep, values = spec.partition("=")
        column = column.strip()
        names = tuple(v.strip() for v in values.split(",") if v.strip())
        if not sep or not column or not names:
            raise DatasetError(
                f"--categories {spec!r}: expected COLUMN=name0,name1,... (code = position)"
            )
        if len(set(names)) != len(names):
            raise DatasetError(f"--categories {spec!r}: a category name is listed twice")
        if column in out:
            raise DatasetError(f"--categories: column {column!r} is given twice")
        out[column] = names
    return out


def _code(value: str, names: Sequence[str], column: str, line: int) -> float:
    try:
        return float(names.index(value))
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        raise DatasetError(
            f"line {line}, column {column!r}: {value!r} is not one of the categories {list(names)}"
        ) from None
    if number.is_integer() and 0 <= number < len(names):
        return number
    raise DatasetError(
        f"line {line}, column {column!r}: code {value!r} is outside 0..{len(names) - 1}"
    )


def _read_csv(
    path: Path,
    columns: Sequence[str] | None,
    label: str | None,
    categories: Mapping[str, Sequence[str]],
) -> Dataset:
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header:
            raise DatasetError(f"{path}: empty file (a header row naming the columns is needed)")
        header = [h.strip() for h in header]
        index = {name: i for i, name in enumerate(header)}
        if label is not None and label not in index:
            label = None  # no label column: replay without feedback
        wanted = list(columns) if columns else [h for h in header if h != label]
        missing = [c for c in wanted if c not in index]
        if missing:
            raise DatasetError(f"{path}: no column {missing[0]!r} (the header has {header})")
        unknown = [c for c in categories if c not in wanted]
        if unknown:
            raise DatasetError(f"--categories names {unknown[0]!r}, which is not a feature column")
        rows: list[list[float]] = []
        labels: list[float] = []
        for line, record in enumerate(reader, start=2):
            if not record:
                continue
            if len(record) != len(header):
                raise DatasetError(
                    f"{path}, line {line}: {len(record)} cells, the header has {len(header)}"
                )
            values: list[float] = []
            for column in wanted:
                cell = record[index[column]].strip()
                names = categories.get(column)
                if names is not None:
                    values.append(_code(cell, names, column, line))
                    continue
                try:
                    values.append(float(cell))
                except ValueError:
                    raise DatasetError(
                        f"{path}, line {line}, column {column!r}: {cell!r} is not a number "
                        "(map categorical names with --categories COLUMN=name0,name1,...)"
                    ) from None
            rows.append(values)
            if label is not None:
                cell = record[index[label]].strip()
                try:
                    labels.append(float(cell))
                except ValueError:
                    raise DatasetError(
                        f"{path}, line {line}, label column {label!r}: {cell!r} is not a number"
                    ) from None
    if not rows:
        raise DatasetError(f"{path}: no data rows after the header")
    features = np.asarray(rows, dtype=np.float32)
    return Dataset(tuple(wanted), features, np.asarray(labels, dtype=np.float64) if label else None)


def _read_npz(path: Path, columns: Sequence[str] | None, label: str | None) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name]) for name in data.files}
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable .npz file: {exc}") from None
    if label is not None and label not in arrays:
        label = None
    wanted = list(columns) if columns else [n for n in arrays if n != label]
    if not wanted:
        raise DatasetError(f"{path}: no feature arrays")
    missing = [c for c in wanted if c not in arrays]
    if missing:
        raise DatasetError(f"{path}: no array {missing[0]!r} (it has {sorted(arrays)})")
    lengths = {c: arrays[c].shape for c in wanted}
    bad = [c for c, shape in lengths.items() if len(shape) != 1]
    if bad:
        raise DatasetError(f"{path}: array {bad[0]!r} must be 1-D (one value per row)")
    if len({shape[0] for shape in lengths.values()}) != 1:
        raise DatasetError(f"{path}: the feature arrays differ in length: {lengths}")
    try:
        features = np.column_stack([arrays[c].astype(np.float32) for c in wanted])
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: a feature array is not numeric: {exc}") from None
    if features.shape[0] == 0:
        raise DatasetError(f"{path}: no rows")
    labels = None
    if label is not None:
        labels = np.asarray(arrays[label], dtype=np.float64).reshape(-1)
        if labels.shape[0] != features.shape[0]:
            raise DatasetError(f"{path}: label {label!r} has a different length than the features")
    return Dataset(tuple(wanted), features, labels)


def read_dataset(
    path: Path,
    *,
    columns: Sequence[str] | None = None,
    label: str | None = "label",
    categories: Mapping[str, Sequence[str]] | None = None,
) -> Dataset:
    """Read the rows to replay from a ``.csv`` or ``.npz`` file.

    Args:
        path: the file; the suffix picks the reader.
        columns: feature columns in input order; default: every column except the label.
        label: the label column (used for feedback); a dataset without it replays without labels.
        categories: ``{column: names}`` for CSV columns holding category names (code = position).

    Returns:
        The dataset.

    Raises:
        DatasetError: the file is missing or unreadable, a column is missing, a cell is not a
            number or not a known category; the message names the file, line and column.
    """
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path, columns, label, categories or {})
    if suffix == ".npz":
        if categories:
            raise DatasetError("--categories applies to .csv files (an .npz holds numbers)")
        return _read_npz(path, columns, label)
    raise DatasetError(f"{path}: unsupported file type {suffix!r} (use .csv or .npz)")


# ------------------------------------------------------------------------------------ pure parts


def infer_body(rows: Float32, *, input_name: str, datatype: str, request_id: str) -> bytes:
    """The OIP v2 JSON request for ``rows`` (one 2-D input of shape ``[rows, columns]``)."""
    payload = {
        "id": request_id,
        "inputs": [
            {
                "name": input_name,
                "shape": list(rows.shape),
                "datatype": datatype,
                "data": rows.reshape(-1).tolist(),
            }
        ],
    }
    return orjson.dumps(payload)


def feedback_body(items: Sequence[tuple[str, float]], field: str = "label") -> bytes:
    """The feedback request body for ``(request_id, truth)`` pairs (row 0 of each request).

    The monitor's ``POST /v1/feedback`` shape:
    ``{"feedback": [{"request_id", "label" | "value", "row"}]}``; ``field`` is ``label`` for a
    class (sent as an integer when it is one) or ``value`` for a regression target.
    """

    def number(truth: float) -> float | int:
        return int(truth) if field == "label" and truth.is_integer() else truth

    return orjson.dumps(
        {"feedback": [{"request_id": rid, field: number(truth), "row": 0} for rid, truth in items]}
    )


def due_time(index: int, rate: float) -> float:
    """Seconds after the start when request ``index`` is due (open loop); 0 when unpaced."""
    return index / rate if rate > 0 else 0.0


@dataclass(frozen=True)
class LoadPlan:
    """What to send and how fast.

    Attributes:
        url: the infer URL (``http://host:port/v2/models/NAME/infer``).
        rate: requests per second (0 = as fast as ``concurrency`` allows).
        count: most requests to send (None = until ``duration_s``).
        duration_s: most seconds to send for (None = until ``count``); one of the two is needed.
        concurrency: most requests in flight.
        batch: rows per request.
        input_name: the model's input tensor name.
        datatype: the input's OIP datatype.
        timeout_s: per-request timeout.
        feedback_url: where to POST labels (None = no feedback).
        feedback_delay_s: seconds between an answer and its label being posted.
        feedback_field: ``label`` (a class) or ``value`` (a regression target).
        start_row: first dataset row to send (the replay cycles through the dataset).
        headers: extra request headers (e.g. a sticky header).
    """

    url: str
    rate: float = 20.0
    count: int | None = None
    duration_s: float | None = None
    concurrency: int = 8
    batch: int = 1
    input_name: str = "input"
    datatype: str = "FP32"
    timeout_s: float = 10.0
    feedback_url: str | None = None
    feedback_delay_s: float = 1.0
    feedback_field: str = "label"
    start_row: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse a plan that would never stop or never send."""
        if self.count is None and self.duration_s is None:
            raise ValueError("a load needs a bound: a request count, a duration, or both")
        if self.count is not None and self.count < 1:
            raise ValueError(f"count must be at least 1, got {self.count}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ValueError(f"duration must be positive, got {self.duration_s}")
        if not (self.rate >= 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate must be a finite number >= 0, got {self.rate}")
        if self.concurrency < 1 or self.batch < 1:
            raise ValueError("concurrency and batch must be at least 1")
        if self.feedback_field not in ("label", "value"):
            raise ValueError(f"feedback_field must be label or value, got {self.feedback_field!r}")
        if self.feedback_delay_s < 0:
            raise ValueError("the feedback delay must be >= 0")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {self.url!r}")


@dataclass(frozen=True)
class Outcome:
    """One request's result.

    Attributes:
        status: the HTTP status, or 0 for a transport error (refused, timed out).
        latency_s: seconds from send to the full answer.
        variant: the variant that answered (router header) or :data:`DIRECT`.
        request_id: the ``id`` the request carried.
        row: the dataset row of the request's first row.
        error: the error message for failures.
    """

    status: int
    latency_s: float
    variant: str
    request_id: str
    row: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True for a 2xx answer."""
        return 200 <= self.status < 300


@dataclass(frozen=True)
class Summary:
    """What a load run did.

    Attributes:
        sent: requests sent.
        ok: requests answered 2xx.
        errors: requests that failed, by cause (``HTTP 503``, ``transport``).
        p50_ms: median latency of the answered requests (None when none).
        p99_ms: 99th percentile latency (None when none).
        by_variant: answered (2xx) requests per variant.
        elapsed_s: wall time of the run.
        feedback_sent: labels posted and accepted.
        feedback_failed: labels whose POST failed.
        last_error: the last failure's message, for a hint.
    """

    sent: int
    ok: int
    errors: Mapping[str, int]
    p50_ms: float | None
    p99_ms: float | None
    by_variant: Mapping[str, int]
    elapsed_s: float
    feedback_sent: int = 0
    feedback_failed: int = 0
    last_error: str | None = None

    @property
    def error_count(self) -> int:
        """Requests that failed, all causes together."""
        return sum(self.errors.values())

    @property
    def rate(self) -> float:
        """Requests sent per second of wall time."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self) -> dict[str, object]:
        """The summary as JSON-ready data (``driftline load --json``)."""
        return {
            "sent": self.sent,
            "ok": self.ok,
            "errors": dict(self.errors),
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "by_variant": dict(self.by_variant),
            "elapsed_s": round(self.elapsed_s, 3),
            "rate": round(self.rate, 2),
            "feedback_sent": self.feedback_sent,
            "feedback_failed": self.feedback_failed,
            "last_error": self.last_error,
        }


def _quantile_ms(sorted_s: Sequence[float], q: float) -> float | None:
    if not sorted_s:
        return None
    # nearest-rank on the sorted sample: a latency that actually happened, never interpolated
    rank = max(1, math.ceil(q * len(sorted_s)))
    return round(sorted_s[rank - 1] * 1000.0, 3)


def summarize(
    outcomes: Sequence[Outcome],
    elapsed_s: float,
    *,
    feedback_sent: int = 0,
    feedback_failed: int = 0,
) -> Summary:
    """Reduce per-request outcomes to a :class:`Summary` (pure)."""
    errors: Counter[str] = Counter()
    variants: Counter[str] = Counter()
    latencies: list[float] = []
    last_error = None
    for o in outcomes:
        if o.ok:
            variants[o.variant] += 1
            latencies.append(o.latency_s)
        else:
            errors["transport" if o.status == 0 else f"HTTP {o.status}"] += 1
            last_error = o.error
    latencies.sort()
    return Summary(
        sent=len(outcomes),
        ok=sum(variants.values()),
        errors=dict(errors),
        p50_ms=_quantile_ms(latencies, 0.50),
        p99_ms=_quantile_ms(latencies, 0.99),
        by_variant=dict(variants),
        elapsed_s=elapsed_s,
        feedback_sent=feedback_sent,
        feedback_failed=feedback_failed,
        last_error=last_error,
    )


def render_summary(summary: Summary) -> str:
    """The summary as a short human-readable block (pure)."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    lines = [
        f"sent      {summary.sent} in {summary.elapsed_s:.1f}s ({summary.rate:.1f} req/s)",
        f"ok        {summary.ok}",
        f"errors    {summary.error_count}"
        + (
            " (" + ", ".join(f"{k}: {v}" for k, v in sorted(summary.errors.items())) + ")"
            if summary.errors
            else ""
        ),
        f"latency   p50 {ms(summary.p50_ms)}, p99 {ms(summary.p99_ms)}",
        "variants  "
        + (", ".join(f"{k}: {v}" for k, v in sorted(summary.by_variant.items())) or "-"),
    ]
    if summary.feedback_sent or summary.feedback_failed:
        lines.append(
            f"feedback  {summary.feedback_sent} labels posted, {summary.feedback_failed} failed"
        )
    if summary.last_error:
        lines.append(f"last error: {summary.last_error}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- I/O


@dataclass(frozen=True)
class Progress:
    """A snapshot of a running load, passed to the progress callback about once a second."""

    sent: int
    ok: int
    errors: int
    elapsed_s: float
    total: int | None
    by_variant: Mapping[str, int]


class _Feedback:
    """Labels waiting for their delay, posted in batches per variant."""

    def __init__(
        self, client: httpx.AsyncClient, url: str, delay_s: float, timeout_s: float, field: str
    ):
        self._client = client
        self._url = url
        self._delay_s = delay_s
        self._timeout_s = timeout_s
        self._field = field
        self._pending: list[tuple[float, str, str, float]] = []  # (due, variant, id, truth)
        self.sent = 0
        self.failed = 0

    def add(self, variant: str, request_id: str, truth: float) -> None:
        self._pending.append((time.monotonic() + self._delay_s, variant, request_id, truth))

    @property
    def next_due(self) -> float | None:
        return self._pending[0][0] if self._pending else None

    async def flush(self, *, everything: bool = False) -> None:
        now = time.monotonic()
        due = [p for p in self._pending if everything or p[0] <= now]
        if not due:
            return
        self._pending = [p for p in self._pending if not (everything or p[0] <= now)]
        groups: defaultdict[str, list[tuple[str, float]]] = defaultdict(list)
        for _, variant, rid, truth in due:
            groups[variant].append((rid, truth))
        for variant, items in groups.items():
            headers = {"content-type": "application/json"}
            if variant != DIRECT:
                headers[VARIANT_HEADER] = variant
            try:
                answer = await self._client.post(
                    self._url,
                    content=feedback_body(items, self._field),
                    headers=headers,
                    timeout=self._timeout_s,
                )
            except httpx.HTTPError:
                self.failed += len(items)
                continue
            if answer.is_success:
                self.sent += len(items)
            else:
                self.failed += len(items)


async def run(
    plan: LoadPlan,
    dataset: Dataset,
    *,
    progress: Callable[[Progress], None] | None = None,
    client: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Summary:
    """Send the load described by ``plan`` and return its summary.

    Bounded: stops after ``plan.count`` requests or ``plan.duration_s`` seconds, whichever comes
    first; then waits for the requests in flight (each bounded by ``plan.timeout_s``) and posts the
    labels still waiting once their delay is over (so a run outlives its bound by at most one
    request timeout plus the feedback delay).

    Args:
        plan: the target, rate, bounds and feedback.
        dataset: the rows to send (cycled).
        progress: called about once a second with a :class:`Progress`.
        client: an ``httpx.AsyncClient`` to use (default: one made here, closed at the end).
        clock: the monotonic clock (a seam for tests).

    Returns:
        The summary.
    """
    own = client is None
    limits = httpx.Limits(
        max_connections=plan.concurrency, max_keepalive_connections=plan.concurrency
    )
    http = client or httpx.AsyncClient(limits=limits, timeout=plan.timeout_s)
    feedback = (
        _Feedback(
            http, plan.feedback_url, plan.feedback_delay_s, plan.timeout_s, plan.feedback_field
        )
        if plan.feedback_url is not None and dataset.labels is not None
        else None
    )
    outcomes: list[Outcome] = []
    in_flight: set[asyncio.Task[None]] = set()
    slots = asyncio.Semaphore(plan.concurrency)
    headers = {"content-type": "application/json", **plan.headers}
    run_id = uuid.uuid4().hex[:8]
    start = clock()
    deadline = start + plan.duration_s if plan.duration_s is not None else math.inf
    last_progress = start
    ok_count = 0
    variants: Counter[str] = Counter()

    async def one(index: int, row: int) -> None:
        nonlocal ok_count
        rows = np.take(dataset.features, range(row, row + plan.batch), axis=0, mode="wrap")
        request_id = f"{run_id}-{index}"
        body = infer_body(
            rows, input_name=plan.input_name, datatype=plan.datatype, request_id=request_id
        )
        sent_at = clock()
        try:
            answer = await http.post(plan.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            outcome = Outcome(
                0, clock() - sent_at, DIRECT, request_id, row, f"{type(exc).__name__}: {exc}"
            )
        else:
            variant = answer.headers.get(VARIANT_HEADER, DIRECT)
            error = None if answer.is_success else _error_text(answer)
            outcome = Outcome(
                answer.status_code, clock() - sent_at, variant, request_id, row, error
            )
        finally:
            slots.release()
        outcomes.append(outcome)
        if outcome.ok:
            ok_count += 1
            variants[outcome.variant] += 1
            if feedback is not None and dataset.labels is not None:
                feedback.add(outcome.variant, request_id, float(dataset.labels[row % dataset.rows]))

    def report(now: float) -> None:
        if progress is not None:
            progress(
                Progress(
                    sent=len(outcomes) + len(in_flight),
                    ok=ok_count,
                    errors=len(outcomes) - ok_count,
                    elapsed_s=now - start,
                    total=plan.count,
                    by_variant=dict(variants),
                )
            )

    try:
        index = 0
        while plan.count is None or index < plan.count:
            due = start + due_time(index, plan.rate)
            now = clock()
            if due >= deadline or now >= deadline:
                break
            if due > now:
                await asyncio.sleep(min(due - now, 0.25))
                if feedback is not None:
                    await feedback.flush()
                if clock() - last_progress >= 1.0:
                    last_progress = clock()
                    report(last_progress)
                continue
            await slots.acquire()
            row = (plan.start_row + index * plan.batch) % dataset.rows
            task = asyncio.create_task(one(index, row))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            index += 1
            if clock() - last_progress >= 1.0:
                last_progress = clock()
                report(last_progress)
                if feedback is not None:
                    await feedback.flush()
        if in_flight:
            await asyncio.gather(*in_flight)
        elapsed = clock() - start
        if feedback is not None:
            # labels still waiting keep their delay (bounded by it): they arrive as in real life
            while (due_at := feedback.next_due) is not None:
                await asyncio.sleep(max(0.0, min(due_at - time.monotonic(), plan.feedback_delay_s)))
                await feedback.flush()
        report(clock())
    finally:
        for task in in_flight:
            task.cancel()
        if own:
            await http.aclose()
    return summarize(
        outcomes,
        elapsed,
        feedback_sent=feedback.sent if feedback else 0,
        feedback_failed=feedback.failed if feedback else 0,
    )


def _error_text(answer: httpx.Response) -> str:
    try:
        doc = orjson.loads(answer.content)
    except orjson.JSONDecodeError:
        return f"HTTP {answer.status_code}: {answer.text[:200]}"
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return f"HTTP {answer.status_code}: {doc['error']}"
    return f"HTTP {answer.status_code}: {answer.text[:200]}"
