"""Reading reference and current data files into named columns (the I/O edge of the drift tools).

Who calls it: ``driftline profile`` and ``driftline drift``. Formats:

- ``.npz``: one 1-D array per column (``numpy.savez(path, age=..., region=...)``); no pickles.
- ``.csv``: a header row naming the columns; a column whose every non-empty cell parses as a
  number is numeric (empty cells are missing), any other column is categorical text.
- ``.json``: a reference profile written by ``driftline profile`` (reference side only).

Every problem raises :class:`DatasetError` with a message that names the file and the column.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from driftline.serving.drift.profile import Column, Table

MAX_CSV_BYTES = 2 * 1024**3
"""Largest CSV read into memory (2 GiB): beyond that, sample the data first."""


class DatasetError(ValueError):
    """A data file that cannot be read; the message names the file and the problem."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_npz(path: Path) -> Table:
    try:
        with np.load(path, allow_pickle=False) as data:
            columns: dict[str, Column] = {}
            for name in data.files:
                array = data[name]
                if array.ndim != 1:
                    raise DatasetError(f"{path}: column {name!r} has shape {array.shape}, not 1-D")
                columns[name] = array
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{path}: not a readable .npz file ({exc})") from exc
    return columns


def _parse_column(cells: list[str]) -> Column:
    stripped = [c.strip() for c in cells]
    try:
        return np.array([float(c) if c else np.nan for c in stripped], dtype=np.float64)
    except ValueError:
        return np.array(stripped, dtype=object)


def _read_csv(path: Path) -> Table:
    if path.stat().st_size > MAX_CSV_BYTES:
        raise DatasetError(f"{path}: larger than {MAX_CSV_BYTES} bytes; sample it first")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read as UTF-8 text ({exc})") from exc
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetError(f"{path}: empty file (a header row is required)") from None
    except csv.Error as exc:
        raise DatasetError(f"{path}: {exc}") from exc
    names = [h.strip() for h in header]
    if not names or any(not n for n in names):
        raise DatasetError(f"{path}: the header row must name every column")
    if len(set(names)) != len(names):
        raise DatasetError(f"{path}: duplicate column names in the header")
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise DatasetError(f"{path}: line {reader.line_num}: {exc}") from exc
    rows = [r for r in rows if r]
    for i, row in enumerate(rows, start=2):
        if len(row) != len(names):
            raise DatasetError(f"{path}: row {i} has {len(row)} cells, the header {len(names)}")
    if not rows:
        raise DatasetError(f"{path}: no data rows")
    return {name: _parse_column([r[j] for r in rows]) for j, name in enumerate(names)}


def read_table(path: Path) -> Table:
    """Read a ``.npz`` or ``.csv`` file into named columns.

    Raises:
        DatasetError: when the file is missing, of an unknown type, or malformed.
    """
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        table = _read_npz(path)
    elif suffix == ".csv":
        table = _read_csv(path)
    else:
        raise DatasetError(f"{path}: unsupported file type {suffix!r} (use .npz or .csv)")
    if not table:
        raise DatasetError(f"{path}: no columns")
    lengths = {len(c) for c in table.values()}
    if len(lengths) != 1:
        raise DatasetError(f"{path}: columns differ in length")
    if lengths == {0}:
        raise DatasetError(f"{path}: no data rows")
    return table


def select(table: Table, exclude: Sequence[str], path: Path) -> Table:
    """Drop the ``exclude`` columns (each must exist).

    Raises:
        DatasetError: naming a column to exclude that the file does not have.
    """
    missing = [c for c in exclude if c not in table]
    if missing:
        raise DatasetError(f"{path}: no column(s) {missing} to exclude")
    return {k: v for k, v in table.items() if k not in set(exclude)}
