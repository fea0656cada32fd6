"""Reference profiles: the binning of every feature and counts over it that merge by addition.

Who calls it: ``driftline profile`` builds a :class:`Profile` once from a Model's reference data;
the monitor sidecar and ``driftline drift`` count current rows over the same :class:`Layout` with
:func:`histograms` and hand both sides to :mod:`driftline.serving.drift.stats`.

The representation, and why:

- A numeric feature has a sorted *grid* of support points: every distinct reference value when
  there are at most ``grid_points`` of them, else ``grid_points`` reference quantiles (always
  including the minimum and maximum) plus the PSI bin edges. Values are counted over ``2k + 1``
  *cells*: ``(-inf, g0)``, ``{g0}``, ``(g0, g1)``, ``{g1}``, ..., ``{g_k-1}``, ``(g_k-1, inf)``,
  keeping per cell the count and the sum of the values.
  The two-sample KS statistic is exact from these counts when the grid holds every reference
  value (the reference ECDF is then constant inside every open cell), the PSI and Jensen-Shannon
  bins (reference deciles by default, right-closed) are unions of cells, and the Wasserstein
  distance follows from counts and sums (exact wherever the two CDFs do not cross inside a
  cell).
- A categorical feature has a vocabulary of reference categories plus one explicit *unseen*
  bucket (always the last column).
- Every count is an integer and every float is a sum, so histograms of windows from many pods,
  or of shards of a large reference, merge exactly by addition (:meth:`Histograms.merge`).

Arrays are padded to the widest feature so that statistics run on 2-D arrays, one row per
feature: numeric grids are padded by repeating their last point (zero-width cells that stay
empty), the high outer cell is always the last column, and the unseen category is always the
last categorical column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

FORMAT: Final = "driftline.profile/v1"
DEFAULT_BINS: Final = 10
"""PSI/Jensen-Shannon bins per numeric feature: reference deciles, the industry convention."""
DEFAULT_GRID_POINTS: Final = 512
"""Support points per numeric feature: the KS statistic is off by at most ~1/512 on a compressed
grid (far below the 5% critical D of ~0.02 at 10k rows), and a 50-feature profile stays < 1 MB."""
MISSING: Final = -1
"""Categorical code of a missing value (NaN, empty string)."""
MAX_CODE_SPAN: Final = 1 << 16
"""Integer category codes spanning at most this many values are looked up in a direct table."""
MAX_HASH_BITS: Final = 16
"""Largest slot table of a :class:`TextLookup` (2**16 int64 = 512 KiB); beyond, sorted hashes."""

Float = npt.NDArray[np.float64]
Int = npt.NDArray[np.int64]
Column = npt.NDArray[np.generic]
Table = Mapping[str, Column]
"""Named columns of equal length: float for numeric features, float codes or ``str`` objects for
categorical ones."""


class ProfileError(ValueError):
    """A reference or profile that cannot be used; the message names the feature or field."""


@dataclass(frozen=True)
class Source:
    """Where a feature lives in a prediction record (``driftline.serving.records.RecordBatch``).

    Attributes:
        kind: ``input`` or ``output`` tensor.
        tensor: the tensor's name.
        column: the column of a 2-D tensor (0 for a 1-D tensor).
    """

    kind: Literal["input", "output"]
    tensor: str
    column: int


@dataclass(frozen=True)
class NumericSpec:
    """The binning of one numeric feature.

    Attributes:
        name: feature name.
        grid: sorted distinct support points (float64, at least one).
        edges: interior PSI bin edges (a sorted subset of ``grid``); bins are right-closed.
        source: where the sidecar finds the feature in a record, if known.
    """

    name: str
    grid: Float
    edges: Float
    source: Source | None = None


@dataclass(frozen=True)
class CategoricalSpec:
    """The vocabulary of one categorical feature (unseen values share one extra bucket).

    Attributes:
        name: feature name.
        categories: the reference categories as strings (numeric codes as ``"0"``, ``"1.5"``).
        source: where the sidecar finds the feature in a record, if known.
    """

    name: str
    categories: tuple[str, ...]
    source: Source | None = None


def _coefficients(width: int, salt: int) -> npt.NDArray[np.uint64]:
    """``width`` odd 64-bit multipliers (splitmix64 of ``salt``, ``salt + 1``, ...)."""
    z = np.arange(salt, salt + width, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    result: npt.NDArray[np.uint64] = (z ^ (z >> np.uint64(31))) | np.uint64(1)
    return result


def hash_texts(texts: npt.NDArray[np.str_], salt: int) -> npt.NDArray[np.uint64]:
    """A 64-bit hash per string: sum of code point ``j`` times multiplier ``j`` (mod 2**64).

    Vectorised over the fixed-width UCS-4 buffer (one integer matrix product, no Python per
    row). The padding of shorter strings is code point 0, which adds nothing, so a string hashes
    the same whatever the width of the array that holds it.
    """
    width = texts.dtype.itemsize // 4
    if width == 0 or len(texts) == 0:
        return np.zeros(len(texts), dtype=np.uint64)
    native = np.ascontiguousarray(texts, dtype=texts.dtype.newbyteorder("="))  # code points
    points = native.view(np.uint32).reshape(len(texts), width)
    result: npt.NDArray[np.uint64] = points.astype(np.uint64) @ _coefficients(width, salt)
    return result


@dataclass(frozen=True)
class TextLookup:
    """Category strings to columns by hashing: O(1) per value, then an exact string check.

    A hash only proposes a column; :func:`encode_categories` keeps it only when the string
    equals that category, so a hash collision can never put a value into the wrong column.

    Attributes:
        categories: the category strings, by column.
        salt: the hash's salt (chosen so that the categories' slots differ).
        bits: slot bits; the slot of hash ``h`` is ``h >> (64 - bits)``; 0 when ``table`` is
            None.
        table: slot to column (-1: no category), or None when no salt up to
            :data:`MAX_HASH_BITS` bits separates the categories (many categories).
        sorted_hashes: the categories' hashes, sorted (the search used without a table).
        sorted_columns: the column of each sorted hash.
    """

    categories: npt.NDArray[np.str_]
    salt: int
    bits: int
    table: npt.NDArray[np.intp] | None
    sorted_hashes: npt.NDArray[np.uint64]
    sorted_columns: npt.NDArray[np.intp]

    @staticmethod
    def build(categories: Sequence[str]) -> TextLookup:
        """Pick the smallest collision-free slot table (a few salts per size), else none."""
        cats = np.asarray(categories, dtype=np.str_)
        v = len(cats)
        first = max(4, (2 * v - 1).bit_length() + 1)
        for bits in range(first, MAX_HASH_BITS + 1):
            for salt in range(0, 8 << 32, 1 << 32):
                hashes = hash_texts(cats, salt)
                slots = (hashes >> np.uint64(64 - bits)).astype(np.intp)
                if len(np.unique(slots)) == v:
                    table = np.full(1 << bits, -1, dtype=np.intp)
                    table[slots] = np.arange(v)
                    order = np.argsort(hashes, kind="stable")
                    return TextLookup(cats, salt, bits, table, hashes[order], order)
        hashes = hash_texts(cats, 0)
        order = np.argsort(hashes, kind="stable")
        return TextLookup(cats, 0, 0, None, hashes[order], order.astype(np.intp))

    def columns(self, texts: npt.NDArray[np.str_]) -> npt.NDArray[np.intp]:
        """The column of every string, -1 when it is not a category (exact)."""
        hashes = hash_texts(texts, self.salt)
        if self.table is not None:
            cand = self.table[(hashes >> np.uint64(64 - self.bits)).astype(np.intp)]
        else:
            at = np.minimum(
                np.searchsorted(self.sorted_hashes, hashes), len(self.sorted_hashes) - 1
            )
            cand = np.where(self.sorted_hashes[at] == hashes, self.sorted_columns[at], -1)
        same = self.categories[np.maximum(cand, 0)] == texts
        result: npt.NDArray[np.intp] = np.where(same & (cand >= 0), cand, -1)
        return result


@dataclass(frozen=True)
class Layout:
    """The binning of every feature, plus padded arrays for vectorised counting and statistics.

    Attributes:
        numeric: numeric features, in column order of the numeric matrix.
        categorical: categorical features, in column order of the code matrix.
    """

    numeric: tuple[NumericSpec, ...]
    categorical: tuple[CategoricalSpec, ...]

    @cached_property
    def kmax(self) -> int:
        """Grid points of the widest numeric feature (1 when there is none)."""
        return max((len(s.grid) for s in self.numeric), default=1)

    @cached_property
    def cells(self) -> int:
        """Cells per numeric feature row: ``2 * kmax + 1``."""
        return 2 * self.kmax + 1

    @cached_property
    def vmax(self) -> int:
        """Categories of the widest categorical feature; also the column of the unseen bucket."""
        return max((len(s.categories) for s in self.categorical), default=0)

    @cached_property
    def grid(self) -> Float:
        """``(F_num, kmax)`` grids padded by repeating the last point."""
        out = np.zeros((len(self.numeric), self.kmax))
        for i, spec in enumerate(self.numeric):
            out[i, : len(spec.grid)] = spec.grid
            out[i, len(spec.grid) :] = spec.grid[-1]
        return out

    @cached_property
    def grid_len(self) -> npt.NDArray[np.intp]:
        """``(F_num,)`` real grid length per numeric feature."""
        return np.array([len(s.grid) for s in self.numeric], dtype=np.intp)

    @cached_property
    def bin_bounds(self) -> npt.NDArray[np.intp]:
        """``(F_num, B)`` last cell index (inclusive) of each PSI bin, padded with empty bins."""
        bounds = [
            [2 * int(np.searchsorted(s.grid, e)) + 1 for e in s.edges] + [self.cells - 1]
            for s in self.numeric
        ]
        width = max((len(b) for b in bounds), default=1)
        out = np.full((len(self.numeric), width), self.cells - 1, dtype=np.intp)
        for i, row in enumerate(bounds):
            out[i, : len(row)] = row
        return out

    @cached_property
    def category_index(self) -> tuple[dict[str, int], ...]:
        """Per categorical feature, category string to column."""
        return tuple({c: i for i, c in enumerate(s.categories)} for s in self.categorical)

    @cached_property
    def numeric_categories(self) -> tuple[tuple[Float, npt.NDArray[np.intp]], ...]:
        """Per categorical feature, the sorted values of its numeric categories and columns."""
        out = []
        for spec in self.categorical:
            pairs = []
            for column, cat in enumerate(spec.categories):
                try:
                    value = float(cat)
                except ValueError:
                    continue
                if category_key(value) == cat:
                    pairs.append((value, column))
            pairs.sort()
            out.append(
                (
                    np.array([v for v, _ in pairs], dtype=np.float64),
                    np.array([c for _, c in pairs], dtype=np.intp),
                )
            )
        return tuple(out)

    @cached_property
    def probes(self) -> Float:
        """``(F_num, 2 * kmax)`` the cell boundaries of each numeric feature, in order.

        Row ``f`` is ``g0, g0+, g1, g1+, ...`` where ``g+`` is the next float above ``g``, padded
        by repeating its last probe. In a sorted column, ``searchsorted(column, probes[f])``
        (side left) gives every cell boundary at once: values ``< g`` end at the probe ``g``,
        values ``<= g`` (``< g+``) at ``g+``. The padded probes give zero-width cells, so the
        high outer cell stays the last column.
        """
        out = np.empty((len(self.numeric), 2 * self.kmax))
        for i, spec in enumerate(self.numeric):
            k = len(spec.grid)
            out[i, 0 : 2 * k : 2] = spec.grid
            out[i, 1 : 2 * k : 2] = np.nextafter(spec.grid, np.inf)
            out[i, 2 * k :] = out[i, 2 * k - 1]
        return out

    @cached_property
    def text_lookups(self) -> tuple[TextLookup, ...]:
        """Per categorical feature, the hash lookup of its category strings."""
        return tuple(TextLookup.build(s.categories) for s in self.categorical)

    @cached_property
    def code_tables(self) -> tuple[tuple[int, npt.NDArray[np.intp]] | None, ...]:
        """Per categorical feature, ``(lowest, table)`` when every category is an integer code.

        ``table[v - lowest]`` is the column of integer code ``v`` (-1: not a category). None
        when a category is not an integer or the codes span more than :data:`MAX_CODE_SPAN`
        (then :attr:`numeric_categories` is searched instead).
        """
        out: list[tuple[int, npt.NDArray[np.intp]] | None] = []
        for spec in self.categorical:
            ints: list[tuple[int, int]] = []
            for column, cat in enumerate(spec.categories):
                try:
                    value = int(cat)
                except ValueError:
                    break
                if str(value) != cat or abs(value) >= 2**53:
                    break
                ints.append((value, column))
            else:
                if ints:
                    lowest = min(v for v, _ in ints)
                    span = max(v for v, _ in ints) - lowest + 1
                    if span <= MAX_CODE_SPAN:
                        table = np.full(span, -1, dtype=np.intp)
                        for value, column in ints:
                            table[value - lowest] = column
                        out.append((lowest, table))
                        continue
            out.append(None)
        return tuple(out)

    @property
    def names(self) -> tuple[str, ...]:
        """Every feature name, numeric first."""
        return tuple(s.name for s in self.numeric) + tuple(s.name for s in self.categorical)


@dataclass(frozen=True)
class Histograms:
    """Counts of some rows over a :class:`Layout`; merges exactly by addition.

    Attributes:
        rows: rows counted.
        numeric: ``(F_num, cells)`` int64 counts per cell.
        sums: ``(F_num, cells)`` float64 sum of the values in each cell.
        moments: ``(F_num, 2)`` float64 sum and sum of squares of the finite values.
        numeric_missing: ``(F_num,)`` int64 non-finite values (not in any cell).
        categorical: ``(F_cat, vmax + 1)`` int64 counts per category; the last column is unseen.
        categorical_missing: ``(F_cat,)`` int64 missing values.
    """

    rows: int
    numeric: Int
    sums: Float
    moments: Float
    numeric_missing: Int
    categorical: Int
    categorical_missing: Int

    @staticmethod
    def empty(layout: Layout) -> Histograms:
        """Zero counts over ``layout``."""
        fn, fc = len(layout.numeric), len(layout.categorical)
        return Histograms(
            rows=0,
            numeric=np.zeros((fn, layout.cells), dtype=np.int64),
            sums=np.zeros((fn, layout.cells)),
            moments=np.zeros((fn, 2)),
            numeric_missing=np.zeros(fn, dtype=np.int64),
            categorical=np.zeros((fc, layout.vmax + 1), dtype=np.int64),
            categorical_missing=np.zeros(fc, dtype=np.int64),
        )

    def merge(self, other: Histograms) -> Histograms:
        """The counts of both row sets (shapes must agree: same layout)."""
        if self.numeric.shape != other.numeric.shape or (
            self.categorical.shape != other.categorical.shape
        ):
            raise ProfileError("cannot merge histograms of different layouts")
        return Histograms(
            rows=self.rows + other.rows,
            numeric=self.numeric + other.numeric,
            sums=self.sums + other.sums,
            moments=self.moments + other.moments,
            numeric_missing=self.numeric_missing + other.numeric_missing,
            categorical=self.categorical + other.categorical,
            categorical_missing=self.categorical_missing + other.categorical_missing,
        )

    @property
    def numeric_n(self) -> Int:
        """``(F_num,)`` finite values per numeric feature."""
        return np.asarray(self.numeric.sum(axis=1), dtype=np.int64)

    @property
    def categorical_n(self) -> Int:
        """``(F_cat,)`` non-missing values per categorical feature."""
        return np.asarray(self.categorical.sum(axis=1), dtype=np.int64)

    @property
    def mean(self) -> Float:
        """``(F_num,)`` mean of the finite values (NaN when there are none)."""
        n = self.numeric_n.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, self.moments[:, 0] / np.maximum(n, 1), np.nan)

    @property
    def std(self) -> Float:
        """``(F_num,)`` population standard deviation of the finite values."""
        n = np.maximum(self.numeric_n.astype(np.float64), 1)
        var = self.moments[:, 1] / n - (self.moments[:, 0] / n) ** 2
        return np.sqrt(np.maximum(var, 0.0))


def category_key(value: float) -> str:
    """The vocabulary key of a numeric category code: ``2.0 -> "2"``, ``0.5 -> "0.5"``."""
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _texts(values: Column) -> npt.NDArray[np.str_]:
    """Category values as a fixed-width string array; None and NaN become "" (missing)."""
    if values.dtype.kind == "U":
        return np.asarray(values, dtype=np.str_)
    if values.dtype.kind == "S":
        return np.char.decode(np.asarray(values, dtype=np.bytes_), "utf-8")
    objects = np.asarray(values, dtype=object)
    missing = (objects == None) | (objects != objects)  # noqa: E711 - elementwise: None or NaN
    texts = objects.astype(np.str_)
    texts[missing] = ""
    return texts


def encode_categories(layout: Layout, j: int, values: Column) -> npt.NDArray[np.intp]:
    """Map raw category values to columns: known -> index, unknown -> unseen, missing -> -1.

    No Python work per row. Integer codes index a direct table (:attr:`Layout.code_tables`);
    other numbers are searched among the numeric categories; strings are hashed into a
    collision-free slot table (:class:`TextLookup`) and then checked for equality with the
    proposed category, so the result is exact.

    Args:
        layout: the binning.
        j: the categorical feature's position in ``layout.categorical``.
        values: 1-D numeric codes or strings.
    """
    spec = layout.categorical[j]
    unseen = layout.vmax
    if values.dtype.kind in "biuf":
        numbers = values.astype(np.float64, copy=False)
        finite = np.isfinite(numbers)
        direct = layout.code_tables[j]
        if direct is not None:
            lowest, table = direct
            pos = numbers - lowest
            inside = (pos >= 0) & (pos < len(table))  # False for NaN
            index = np.where(inside, pos, 0.0).astype(np.intp)
            col = table[index]
            known = inside & (index == pos) & (col >= 0)
            out = np.where(known, col, unseen)
            out[~finite] = MISSING
            return out
        keys, columns = layout.numeric_categories[j]
        if len(keys) == 0:
            return np.where(finite, unseen, MISSING).astype(np.intp)
        at = np.minimum(np.searchsorted(keys, numbers), len(keys) - 1)
        out = np.where(keys[at] == numbers, columns[at], unseen).astype(np.intp)
        out[~finite] = MISSING
        return out
    if values.dtype.kind not in "OUS":
        raise ProfileError(f"feature {spec.name!r}: unsupported dtype {values.dtype}")
    texts = _texts(values)
    cols = layout.text_lookups[j].columns(texts)
    out_s = np.where(cols >= 0, cols, unseen)
    out_s[texts == ""] = MISSING
    return out_s


def numeric_cells(layout: Layout, numeric: Float) -> npt.NDArray[np.intp]:
    """Cell index of every value, ``(F_num, m)``; -1 for non-finite values.

    One ``searchsorted`` per feature (a C loop over the rows): the only per-feature Python.

    Args:
        layout: the binning.
        numeric: ``(m, F_num)`` float64 values.
    """
    m = numeric.shape[0]
    out = np.empty((len(layout.numeric), m), dtype=np.intp)
    high = layout.cells - 1
    for f, spec in enumerate(layout.numeric):
        x = numeric[:, f]
        k = len(spec.grid)
        left = np.searchsorted(spec.grid, x, side="left")
        hit = spec.grid[np.minimum(left, k - 1)] == x
        cell = 2 * left + hit
        cell[cell == 2 * k] = high
        cell[~np.isfinite(x)] = -1
        out[f] = cell
    return out


def _sorted_counts(layout: Layout, numeric: Float) -> tuple[Int, Float, Float, Int]:
    """Cell counts, cell sums, moments and missing counts of all rows, by sorting.

    One vectorised in-place ``np.sort`` of every column (SIMD quicksort: ~8 ns a value). Sorting
    puts -inf first and +inf, NaN last, so the finite values of a column are one slice; only a
    column whose first or last value is not finite needs its ends located and zeroed. Then per
    feature one ``searchsorted`` of its :attr:`Layout.probes` into that slice (the probes are
    sorted, so each search starts where the last ended) gives every cell boundary; counts are
    the boundary differences and the cell sums one ``np.add.reduceat`` over all columns at
    once. Random probes of the values into the grid (:func:`numeric_cells`) cost O(m log k)
    branchy lookups: about 5x slower on a 10k-row window.
    """
    fn = len(layout.numeric)
    m = numeric.shape[0]
    cells = layout.cells
    flat = np.empty(fn * m + 1)  # one spare slot: reduceat may start at the very end
    flat[-1] = 0.0
    values = flat[:-1].reshape(fn, m)
    values[...] = numeric.T
    values.sort(axis=1)
    lo = np.zeros(fn, dtype=np.intp)  # finite values of column f: values[f, lo[f]:hi[f]]
    hi = np.full(fn, m, dtype=np.intp)
    ends_finite = np.isfinite(values[:, 0]) & np.isfinite(values[:, -1])
    for f in np.flatnonzero(~ends_finite).tolist():
        row = values[f]
        lo[f] = np.searchsorted(row, -np.inf, side="right")
        hi[f] = max(int(np.searchsorted(row, np.inf, side="left")), int(lo[f]))
        row[: lo[f]] = 0.0  # no infinities or NaN in the sums
        row[hi[f] :] = 0.0
    squares = np.einsum("ij,ij->i", values, values)
    bounds = np.empty((fn, cells + 1), dtype=np.intp)
    bounds[:, 0] = lo
    bounds[:, -1] = hi
    probes = layout.probes
    for f in range(fn):
        bounds[f, 1:-1] = np.searchsorted(values[f, lo[f] : hi[f]], probes[f]) + lo[f]
    counts = np.diff(bounds, axis=1).astype(np.int64)
    starts = bounds[:, :-1] + (np.arange(fn, dtype=np.intp) * m)[:, None]
    sums = np.add.reduceat(flat, starts.ravel()).reshape(fn, cells)
    sums[counts == 0] = 0.0  # reduceat yields the start value for an empty range
    moments = np.stack([sums.sum(axis=1), squares], axis=1)
    return counts, sums, moments, (m - (hi - lo)).astype(np.int64)


def _whole_histograms(
    layout: Layout, numeric: Float, categorical: npt.NDArray[np.intp]
) -> Histograms:
    """:func:`histograms` of every row, without groups: the sorted path."""
    m = numeric.shape[0]
    if not m:
        return Histograms.empty(layout)
    fn, fc = len(layout.numeric), len(layout.categorical)
    if fn:
        num, sums, moments, num_missing = _sorted_counts(layout, numeric)
    else:
        empty = Histograms.empty(layout)
        num, sums, moments = empty.numeric, empty.sums, empty.moments
        num_missing = empty.numeric_missing
    width = layout.vmax + 2  # categories, unseen, then missing
    keys = (
        np.where(categorical >= 0, categorical, width - 1).T
        + (np.arange(fc, dtype=np.intp) * width)[:, None]
    )
    both = np.bincount(keys.ravel(), minlength=fc * width).reshape(fc, width)
    return Histograms(
        rows=m,
        numeric=num,
        sums=sums,
        moments=moments,
        numeric_missing=num_missing,
        categorical=np.ascontiguousarray(both[:, :-1]),
        categorical_missing=np.ascontiguousarray(both[:, -1]),
    )


def histograms(
    layout: Layout,
    numeric: Float,
    categorical: npt.NDArray[np.intp],
    groups: npt.NDArray[np.intp] | None = None,
    n_groups: int = 1,
) -> list[Histograms]:
    """Count rows over ``layout``, optionally split by group (segment), in one pass.

    Args:
        layout: the binning.
        numeric: ``(m, F_num)`` float64 values (non-finite = missing).
        categorical: ``(m, F_cat)`` columns from :func:`encode_categories` (-1 = missing).
        groups: ``(m,)`` group of each row in ``[0, n_groups)``; rows with -1 are skipped.
        n_groups: number of groups.

    Returns:
        One :class:`Histograms` per group (one in all when ``groups`` is None).
    """
    m = numeric.shape[0]
    fn, fc = len(layout.numeric), len(layout.categorical)
    if numeric.shape != (m, fn) or categorical.shape != (m, fc):
        raise ProfileError(
            f"expected ({m}, {fn}) numeric and ({m}, {fc}) categorical columns, "
            f"got {numeric.shape} and {categorical.shape}"
        )
    if groups is None:
        return [_whole_histograms(layout, numeric, categorical)]
    g = groups.astype(np.intp, copy=False)
    keep = g >= 0
    rows = np.bincount(g[keep], minlength=n_groups)
    cells = layout.cells
    num = np.zeros((n_groups, fn, cells), dtype=np.int64)
    sums = np.zeros((n_groups, fn, cells))
    moments = np.zeros((n_groups, fn, 2))
    num_missing = np.zeros((n_groups, fn), dtype=np.int64)
    if fn and m:
        cell = numeric_cells(layout, numeric)  # (fn, m)
        feat = np.arange(fn, dtype=np.intp)[:, None]
        valid = (cell >= 0) & keep[None, :]
        gf = (g[None, :] * fn + feat)[valid]  # group-feature key of each valid value
        num = np.bincount(gf * cells + cell[valid], minlength=n_groups * fn * cells).reshape(
            n_groups, fn, cells
        )
        values = numeric.T[valid]
        vcell = cell[valid]
        size = n_groups * fn

        def wsum(weights: Float) -> Float:
            return np.asarray(np.bincount(gf, weights=weights, minlength=size), np.float64)

        key = gf * cells + vcell
        sums = np.asarray(
            np.bincount(key, weights=values, minlength=size * cells), np.float64
        ).reshape(n_groups, fn, cells)
        moments = np.stack([wsum(values), wsum(values * values)], axis=1).reshape(n_groups, fn, 2)
        miss = (cell < 0) & keep[None, :]
        num_missing = np.bincount((g[None, :] * fn + feat)[miss], minlength=size).reshape(
            n_groups, fn
        )
    cat = np.zeros((n_groups, fc, layout.vmax + 1), dtype=np.int64)
    cat_missing = np.zeros((n_groups, fc), dtype=np.int64)
    if fc and m:
        codes = categorical.T  # (fc, m)
        feat = np.arange(fc, dtype=np.intp)[:, None]
        valid = (codes >= 0) & keep[None, :]
        gf = (g[None, :] * fc + feat)[valid]
        width = layout.vmax + 1
        cat = np.bincount(gf * width + codes[valid], minlength=n_groups * fc * width).reshape(
            n_groups, fc, width
        )
        miss = (codes < 0) & keep[None, :]
        cat_missing = np.bincount((g[None, :] * fc + feat)[miss], minlength=n_groups * fc).reshape(
            n_groups, fc
        )
    return [
        Histograms(
            rows=int(rows[i]),
            numeric=num[i],
            sums=sums[i],
            moments=moments[i],
            numeric_missing=num_missing[i],
            categorical=cat[i],
            categorical_missing=cat_missing[i],
        )
        for i in range(n_groups)
    ]


@dataclass(frozen=True)
class Profile:
    """A reference profile: what the operator stores for the sidecars.

    Attributes:
        layout: the binning of every feature.
        reference: counts of the reference rows over ``layout``.
        reference_sha256: sha256 of the reference data file: the profile's version.
        model_sha256: sha256 of the Model's ONNX artifact, when known.
        order: feature names in the reference's column order (for display).
        segments: per segment feature, per category, the counts of the reference rows of that
            category (same layout).
        bins: requested PSI bins per numeric feature.
        grid_points: requested support points per numeric feature.
    """

    layout: Layout
    reference: Histograms
    reference_sha256: str
    model_sha256: str | None = None
    order: tuple[str, ...] = ()
    segments: Mapping[str, Mapping[str, Histograms]] = field(default_factory=dict)
    bins: int = DEFAULT_BINS
    grid_points: int = DEFAULT_GRID_POINTS


def _numeric_spec(name: str, values: Float, bins: int, grid_points: int) -> NumericSpec:
    finite = np.sort(values[np.isfinite(values)])
    n = len(finite)
    if n == 0:
        raise ProfileError(f"feature {name!r}: no finite reference values")
    uniq = np.unique(finite)
    if len(uniq) <= grid_points:
        grid = uniq
    else:
        pos = np.round(np.linspace(0, n - 1, grid_points)).astype(np.intp)
        grid = np.unique(finite[pos])
    # Right-closed decile edges at the "inverted CDF" quantiles: reference values, so each bin is
    # a union of grid cells; ties collapse edges (bins then empty on both sides add 0 to PSI).
    idx = np.ceil(np.arange(1, bins) * n / bins).astype(np.intp) - 1
    edges = np.unique(finite[np.clip(idx, 0, n - 1)])
    edges = edges[edges < finite[-1]]
    return NumericSpec(name=name, grid=np.union1d(grid, edges), edges=edges)


def _categorical_spec(name: str, values: Column) -> CategoricalSpec:
    if values.dtype.kind in "biuf":
        numbers = values.astype(np.float64)
        uniq, counts = np.unique(numbers[np.isfinite(numbers)], return_counts=True)
        keys = [category_key(float(u)) for u in uniq]
    else:
        texts = _texts(values)
        uniq_s, counts = np.unique(texts[texts != ""], return_counts=True)
        keys = [str(u) for u in uniq_s]
    if not keys:
        raise ProfileError(f"feature {name!r}: no reference categories")
    order = sorted(range(len(keys)), key=lambda i: (-int(counts[i]), keys[i]))
    return CategoricalSpec(name=name, categories=tuple(keys[i] for i in order))


def is_categorical_column(values: Column) -> bool:
    """Whether a column must be treated as categorical whatever the user says (strings)."""
    return values.dtype.kind in "OUSb"


def layout_for(
    table: Table,
    categorical: Sequence[str] = (),
    bins: int = DEFAULT_BINS,
    grid_points: int = DEFAULT_GRID_POINTS,
    sources: Mapping[str, Source] | None = None,
) -> Layout:
    """Derive the binning of every column of a reference table.

    Args:
        table: named reference columns of equal length.
        categorical: columns to treat as categorical (string columns always are).
        bins: PSI bins per numeric feature (>= 2).
        grid_points: support points per numeric feature (>= 2).
        sources: where each feature lives in a prediction record.

    Raises:
        ProfileError: naming the column that cannot be profiled.
    """
    if bins < 2 or grid_points < 2:
        raise ProfileError("bins and grid_points must be at least 2")
    unknown = set(categorical) - set(table)
    if unknown:
        raise ProfileError(f"categorical columns not in the reference: {sorted(unknown)}")
    sources = sources or {}
    numeric: list[NumericSpec] = []
    cats: list[CategoricalSpec] = []
    for name, values in table.items():
        if values.ndim != 1:
            raise ProfileError(f"feature {name!r}: expected a 1-D column, got {values.shape}")
        if name in categorical or is_categorical_column(values):
            spec_c = _categorical_spec(name, values)
            cats.append(CategoricalSpec(spec_c.name, spec_c.categories, sources.get(name)))
        else:
            spec_n = _numeric_spec(name, values.astype(np.float64), bins, grid_points)
            numeric.append(NumericSpec(spec_n.name, spec_n.grid, spec_n.edges, sources.get(name)))
    return Layout(numeric=tuple(numeric), categorical=tuple(cats))


def table_rows(table: Table) -> int:
    """The common length of a table's columns.

    Raises:
        ProfileError: when the table is empty or the lengths differ.
    """
    lengths = {name: len(col) for name, col in table.items()}
    if not lengths:
        raise ProfileError("no columns")
    if len(set(lengths.values())) != 1:
        raise ProfileError(f"columns differ in length: {lengths}")
    return next(iter(lengths.values()))


def encode_table(layout: Layout, table: Table) -> tuple[Float, npt.NDArray[np.intp]]:
    """Turn named columns into the ``(m, F_num)`` values and ``(m, F_cat)`` codes of ``layout``.

    Raises:
        ProfileError: naming missing columns or a numeric feature given as text.
    """
    missing = [n for n in layout.names if n not in table]
    if missing:
        raise ProfileError(f"columns missing: {missing}")
    m = table_rows({n: table[n] for n in layout.names}) if layout.names else 0
    numeric = np.empty((m, len(layout.numeric)), order="F")  # columns contiguous: cheap sort
    for j, spec in enumerate(layout.numeric):
        col = table[spec.name]
        if col.dtype.kind not in "biuf":
            raise ProfileError(f"feature {spec.name!r} is numeric in the reference, not here")
        numeric[:, j] = col
    codes = np.empty((m, len(layout.categorical)), dtype=np.intp)
    for j, spec_c in enumerate(layout.categorical):
        codes[:, j] = encode_categories(layout, j, table[spec_c.name])
    return numeric, codes


def build_profile(
    table: Table,
    reference_sha256: str,
    categorical: Sequence[str] = (),
    bins: int = DEFAULT_BINS,
    grid_points: int = DEFAULT_GRID_POINTS,
    segments: Sequence[str] = (),
    sources: Mapping[str, Source] | None = None,
    model_sha256: str | None = None,
    like: Profile | None = None,
) -> Profile:
    """Build a reference profile from named reference columns.

    Args:
        table: the reference data, named 1-D columns of equal length.
        reference_sha256: sha256 of the reference file (the profile's version).
        categorical: columns to treat as categorical.
        bins: PSI bins per numeric feature.
        grid_points: support points per numeric feature.
        segments: categorical features to keep per-category reference counts for.
        sources: where each feature lives in a prediction record.
        model_sha256: sha256 of the Model's artifact.
        like: reuse this profile's binning (to build a shard that merges with it).

    Raises:
        ProfileError: naming the column or option that is wrong.
    """
    table_rows(table)
    layout = (
        like.layout
        if like is not None
        else layout_for(table, categorical, bins, grid_points, sources)
    )
    numeric, codes = encode_table(layout, table)
    cat_names = [s.name for s in layout.categorical]
    seg_hists: dict[str, dict[str, Histograms]] = {}
    for seg in segments:
        if seg not in cat_names:
            raise ProfileError(f"segment feature {seg!r} must be a categorical feature")
        j = cat_names.index(seg)
        spec = layout.categorical[j]
        groups = np.where(codes[:, j] < len(spec.categories), codes[:, j], -1)
        parts = histograms(layout, numeric, codes, groups, len(spec.categories))
        seg_hists[seg] = dict(zip(spec.categories, parts, strict=True))
    (reference,) = histograms(layout, numeric, codes)
    return Profile(
        layout=layout,
        reference=reference,
        reference_sha256=reference_sha256,
        model_sha256=model_sha256,
        order=tuple(n for n in table if n in set(layout.names)),
        segments=seg_hists,
        bins=like.bins if like is not None else bins,
        grid_points=like.grid_points if like is not None else grid_points,
    )


def merge_profiles(first: Profile, second: Profile) -> Profile:
    """Merge two profiles over the same binning (e.g. shards built with ``like=first``).

    The result's version is the first one's; counts, sums and segment counts add exactly.

    Raises:
        ProfileError: when the layouts differ.
    """
    if profile_layout_json(first) != profile_layout_json(second):
        raise ProfileError("profiles have different binning; build the second with like=first")
    segments: dict[str, dict[str, Histograms]] = {}
    for seg, parts in first.segments.items():
        other = second.segments.get(seg, {})
        segments[seg] = {k: h.merge(other[k]) if k in other else h for k, h in parts.items()}
    return Profile(
        layout=first.layout,
        reference=first.reference.merge(second.reference),
        reference_sha256=first.reference_sha256,
        model_sha256=first.model_sha256,
        order=first.order,
        segments=segments,
        bins=first.bins,
        grid_points=first.grid_points,
    )


# ------------------------------------------------------------------------------------------ JSON


class _SourceDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["input", "output"]
    tensor: str = Field(min_length=1)
    column: int = Field(ge=0)


class _FeatureDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    type: Literal["numeric", "categorical"]
    source: _SourceDoc | None = None
    grid: list[float] | None = None
    edges: list[float] | None = None
    categories: list[str] | None = None


class _CountsDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rows: int = Field(ge=0)
    numeric: list[list[int]]
    sums: list[list[float]]
    moments: list[list[float]]
    numeric_missing: list[int]
    categorical: list[list[int]]
    categorical_missing: list[int]


class _ProfileDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    format: Literal["driftline.profile/v1"]
    reference_sha256: str = Field(min_length=1)
    model_sha256: str | None = None
    bins: int = Field(ge=2)
    grid_points: int = Field(ge=2)
    features: list[_FeatureDoc]
    reference: _CountsDoc
    segments: dict[str, dict[str, _CountsDoc]] = {}


def _source_doc(source: Source | None) -> dict[str, object] | None:
    if source is None:
        return None
    return {"kind": source.kind, "tensor": source.tensor, "column": source.column}


def profile_layout_json(profile: Profile) -> list[dict[str, object]]:
    """The ``features`` part of the JSON document (the binning), in reference column order."""
    by_name: dict[str, dict[str, object]] = {}
    for s in profile.layout.numeric:
        by_name[s.name] = {
            "name": s.name,
            "type": "numeric",
            "source": _source_doc(s.source),
            "grid": s.grid.tolist(),
            "edges": s.edges.tolist(),
        }
    for c in profile.layout.categorical:
        by_name[c.name] = {
            "name": c.name,
            "type": "categorical",
            "source": _source_doc(c.source),
            "categories": list(c.categories),
        }
    order = list(profile.order) or list(by_name)
    return [by_name[n] for n in order]


def counts_to_json(layout: Layout, hist: Histograms) -> dict[str, object]:
    """Counts trimmed to each feature's own width (no padding on the wire)."""
    numeric = []
    sums = []
    for i, s in enumerate(layout.numeric):
        k = len(s.grid)
        row = hist.numeric[i]
        numeric.append([*row[: 2 * k].tolist(), int(row[-1])])
        srow = hist.sums[i]
        sums.append([*srow[: 2 * k].tolist(), float(srow[-1])])
    cat = [
        [*hist.categorical[i, : len(c.categories)].tolist(), int(hist.categorical[i, -1])]
        for i, c in enumerate(layout.categorical)
    ]
    return {
        "rows": hist.rows,
        "numeric": numeric,
        "sums": sums,
        "moments": hist.moments.tolist(),
        "numeric_missing": hist.numeric_missing.tolist(),
        "categorical": cat,
        "categorical_missing": hist.categorical_missing.tolist(),
    }


def _counts_from_doc(layout: Layout, doc: _CountsDoc, where: str) -> Histograms:
    fn, fc = len(layout.numeric), len(layout.categorical)
    shapes = {
        "numeric": (len(doc.numeric), fn),
        "sums": (len(doc.sums), fn),
        "moments": (len(doc.moments), fn),
        "numeric_missing": (len(doc.numeric_missing), fn),
        "categorical": (len(doc.categorical), fc),
        "categorical_missing": (len(doc.categorical_missing), fc),
    }
    for key, (got, want) in shapes.items():
        if got != want:
            raise ProfileError(f"{where}.{key}: expected {want} rows, got {got}")
    hist = Histograms.empty(layout)
    for i, s in enumerate(layout.numeric):
        row = doc.numeric[i]
        k = len(s.grid)
        if len(row) != 2 * k + 1:
            raise ProfileError(f"{where}.numeric[{i}] ({s.name}): expected {2 * k + 1} counts")
        hist.numeric[i, : 2 * k] = row[:-1]
        hist.numeric[i, -1] = row[-1]
        srow = doc.sums[i]
        if len(srow) != 2 * k + 1:
            raise ProfileError(f"{where}.sums[{i}] ({s.name}): expected {2 * k + 1} sums")
        hist.sums[i, : 2 * k] = srow[:-1]
        hist.sums[i, -1] = srow[-1]
    for i, c in enumerate(layout.categorical):
        row = doc.categorical[i]
        if len(row) != len(c.categories) + 1:
            raise ProfileError(
                f"{where}.categorical[{i}] ({c.name}): expected {len(c.categories) + 1} counts"
            )
        hist.categorical[i, : len(c.categories)] = row[:-1]
        hist.categorical[i, -1] = row[-1]
    if any(len(r) != 2 for r in doc.moments):
        raise ProfileError(f"{where}.moments: every row must hold 2 numbers")
    if (
        (hist.numeric < 0).any()
        or (hist.categorical < 0).any()
        or min(doc.numeric_missing + doc.categorical_missing, default=0) < 0
    ):
        raise ProfileError(f"{where}: counts must be non-negative")
    return Histograms(
        rows=doc.rows,
        numeric=hist.numeric,
        sums=hist.sums,
        moments=np.asarray(doc.moments, dtype=np.float64).reshape(fn, 2),
        numeric_missing=np.asarray(doc.numeric_missing, dtype=np.int64).reshape(fn),
        categorical=hist.categorical,
        categorical_missing=np.asarray(doc.categorical_missing, dtype=np.int64).reshape(fc),
    )


def profile_to_json(profile: Profile) -> dict[str, object]:
    """The profile as a JSON-ready document (see ``profile_from_json`` for the schema)."""
    return {
        "format": FORMAT,
        "reference_sha256": profile.reference_sha256,
        "model_sha256": profile.model_sha256,
        "bins": profile.bins,
        "grid_points": profile.grid_points,
        "features": profile_layout_json(profile),
        "reference": counts_to_json(profile.layout, profile.reference),
        "segments": {
            seg: {k: counts_to_json(profile.layout, h) for k, h in parts.items()}
            for seg, parts in profile.segments.items()
        },
    }


def layout_from_features(features: Sequence[Mapping[str, object]]) -> tuple[Layout, list[str]]:
    """Parse the ``features`` part of a profile document into a layout and the column order.

    Raises:
        ProfileError: naming the feature that is malformed.
    """
    try:
        docs = [_FeatureDoc.model_validate(f) for f in features]
    except ValidationError as exc:
        raise ProfileError(f"features: {_first_error(exc)}") from exc
    return _layout_from_docs(docs)


def _layout_from_docs(docs: Sequence[_FeatureDoc]) -> tuple[Layout, list[str]]:
    numeric: list[NumericSpec] = []
    cats: list[CategoricalSpec] = []
    seen: set[str] = set()
    for i, f in enumerate(docs):
        where = f"features[{i}] ({f.name})"
        if f.name in seen:
            raise ProfileError(f"{where}: duplicate feature name")
        seen.add(f.name)
        src = Source(f.source.kind, f.source.tensor, f.source.column) if f.source else None
        if f.type == "numeric":
            if not f.grid or f.edges is None:
                raise ProfileError(f"{where}: a numeric feature needs grid and edges")
            grid = np.asarray(f.grid, dtype=np.float64)
            edges = np.asarray(f.edges, dtype=np.float64)
            if not np.isfinite(grid).all() or (np.diff(grid) <= 0).any():
                raise ProfileError(f"{where}.grid: must be finite and strictly increasing")
            if not np.isin(edges, grid).all() or (np.diff(edges) <= 0).any():
                raise ProfileError(f"{where}.edges: must be increasing points of the grid")
            numeric.append(NumericSpec(f.name, grid, edges, src))
        else:
            if not f.categories or len(set(f.categories)) != len(f.categories):
                raise ProfileError(f"{where}.categories: must be a non-empty list of distinct")
            cats.append(CategoricalSpec(f.name, tuple(f.categories), src))
    return Layout(tuple(numeric), tuple(cats)), [f.name for f in docs]


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}"


def profile_from_json(document: object) -> Profile:
    """Parse and validate a profile document (as produced by :func:`profile_to_json`).

    Raises:
        ProfileError: naming the field that is wrong.
    """
    try:
        doc = _ProfileDoc.model_validate(document)
    except ValidationError as exc:
        raise ProfileError(f"profile: {_first_error(exc)}") from exc
    layout, order = _layout_from_docs(doc.features)
    reference = _counts_from_doc(layout, doc.reference, "reference")
    segments: dict[str, dict[str, Histograms]] = {}
    cat_names = {c.name: c for c in layout.categorical}
    for seg, parts in doc.segments.items():
        if seg not in cat_names:
            raise ProfileError(f"segments.{seg}: not a categorical feature")
        unknown = set(parts) - set(cat_names[seg].categories)
        if unknown:
            raise ProfileError(f"segments.{seg}: unknown categories {sorted(unknown)}")
        segments[seg] = {
            k: _counts_from_doc(layout, c, f"segments.{seg}.{k}") for k, c in parts.items()
        }
    return Profile(
        layout=layout,
        reference=reference,
        reference_sha256=doc.reference_sha256,
        model_sha256=doc.model_sha256,
        order=tuple(order),
        segments=segments,
        bins=doc.bins,
        grid_points=doc.grid_points,
    )


def finite_or_none(value: float) -> float | None:
    """A float for JSON: NaN and infinities become ``None``."""
    return value if math.isfinite(value) else None


def counts_from_json(layout: Layout, document: object, where: str = "counts") -> Histograms:
    """Parse counts written by :func:`counts_to_json` (e.g. a sidecar's window state).

    Raises:
        ProfileError: naming the field that does not fit ``layout``.
    """
    try:
        doc = _CountsDoc.model_validate(document)
    except ValidationError as exc:
        raise ProfileError(f"{where}: {_first_error(exc)}") from exc
    return _counts_from_doc(layout, doc, where)
