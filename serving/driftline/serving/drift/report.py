"""Human-readable verdicts: a text table for terminals and a self-contained HTML report.

Who calls it: ``driftline drift``. Pure: text in, text out; the HTML has inline CSS and one inline
SVG chart per feature (reference vs current histogram), no script and no external asset, so it
can be attached to a CI run or mailed as is.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Final

import numpy as np
import numpy.typing as npt

from driftline.serving.drift.decide import FeatureVerdict, Status, Verdict
from driftline.serving.drift.profile import Histograms, Layout

Float = npt.NDArray[np.float64]

DISPLAY_BINS: Final = 24
"""Bars per numeric chart: enough to see a shape, few enough to read at 360 px."""
MAX_CATEGORIES: Final = 20
"""Categories drawn per chart (the most frequent in the reference, then "unseen")."""


def _fmt(value: float, digits: int = 4) -> str:
    if not math.isfinite(value):
        return "-"
    if value != 0 and (abs(value) < 10 ** -(digits - 1) or abs(value) >= 10**6):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def text_table(verdict: Verdict) -> str:
    """The verdict as an aligned text table, one line per feature (whole window only)."""
    head = ("feature", "type", "test", "p_adj", "effect", "value", "thresh", "status")
    rows = [head]
    for f in verdict.features:
        if f.segment is not None and f.status is not Status.DRIFT:
            continue
        name = f.name if f.segment is None else f"{f.name}@{f.segment}"
        rows.append(
            (
                name,
                f.kind,
                f.test,
                _fmt(f.p_adjusted),
                f.effect,
                _fmt(f.effect_value),
                _fmt(f.threshold, 3),
                f.status.value,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    judged = [
        f for f in verdict.features if f.segment is None and f.status is not Status.NOT_ENOUGH_DATA
    ]
    summary = (
        f"{verdict.status.value}: {len(verdict.drifted)} drifted "
        f"({', '.join(verdict.drifted) or 'none'}); {len(judged)} features judged on "
        f"{verdict.rows} rows; {verdict.correction.value} correction at alpha {verdict.alpha}"
    )
    return "\n".join([*lines, "", summary])


def _numeric_bars(
    layout: Layout, index: int, hist: Histograms
) -> tuple[Float, Float, float, float]:
    spec = layout.numeric[index]
    lo, hi = float(spec.grid[0]), float(spec.grid[-1])
    counts = hist.numeric[index].astype(np.float64)
    sums = hist.sums[index]
    k = len(spec.grid)
    cells = layout.cells
    position = np.empty(cells)
    position[1 : 2 * k : 2] = spec.grid  # point cells
    mean = np.divide(sums, counts, out=np.zeros(cells), where=counts > 0)
    open_cells = np.ones(cells, dtype=bool)
    open_cells[1 : 2 * k : 2] = False
    position[open_cells] = mean[open_cells]
    span = hi - lo if hi > lo else 1.0
    slot = np.clip(((position - lo) / span * DISPLAY_BINS).astype(np.int64), 0, DISPLAY_BINS - 1)
    bars = np.asarray(np.bincount(slot, weights=counts, minlength=DISPLAY_BINS), np.float64)
    total = float(bars.sum())
    return (bars / total if total else bars), counts, lo, hi


def _svg(ref: Float, cur: Float, labels: list[str]) -> str:
    width, height, pad = 360, 130, 18
    n = len(ref)
    top = max(float(ref.max(initial=0.0)), float(cur.max(initial=0.0)), 1e-12)
    bar_w = (width - 2 * pad) / max(n, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">'
    ]
    base = height - pad
    for i in range(n):
        x = pad + i * bar_w
        for j, (values, cls) in enumerate(((ref, "ref"), (cur, "cur"))):
            h = (height - 2 * pad) * float(values[i]) / top
            parts.append(
                f'<rect class="{cls}" x="{x + j * bar_w / 2:.1f}" y="{base - h:.1f}" '
                f'width="{max(bar_w / 2 - 0.5, 0.5):.1f}" height="{h:.1f}">'
                f"<title>{html.escape(labels[i])}: reference {values_fmt(ref[i])}, "
                f"current {values_fmt(cur[i])}</title></rect>"
            )
    parts.append(
        f'<line x1="{pad}" y1="{base}" x2="{width - pad}" y2="{base}" stroke="#999"/></svg>'
    )
    return "".join(parts)


def values_fmt(value: float) -> str:
    """A proportion as a percentage with one decimal."""
    return f"{100 * value:.1f}%"


def _chart(layout: Layout, f: FeatureVerdict, reference: Histograms, current: Histograms) -> str:
    names_num = [s.name for s in layout.numeric]
    if f.kind == "numeric":
        i = names_num.index(f.name)
        ref, _, lo, hi = _numeric_bars(layout, i, reference)
        cur, _, _, _ = _numeric_bars(layout, i, current)
        step = (hi - lo) / DISPLAY_BINS
        labels = [
            f"[{_fmt(lo + b * step, 3)}, {_fmt(lo + (b + 1) * step, 3)})"
            for b in range(DISPLAY_BINS)
        ]
        axis = f"<small>{_fmt(lo, 3)} … {_fmt(hi, 3)} (outside values in the end bars)</small>"
        return _svg(ref, cur, labels) + axis
    j = [c.name for c in layout.categorical].index(f.name)
    spec = layout.categorical[j]
    r_counts = reference.categorical[j].astype(np.float64)
    c_counts = current.categorical[j].astype(np.float64)
    order = np.argsort(-r_counts[: len(spec.categories)], kind="stable")[:MAX_CATEGORIES]
    cols = [*order.tolist(), layout.vmax]
    labels = [spec.categories[c] if c < len(spec.categories) else "(unseen)" for c in cols]
    ref = r_counts[cols] / max(r_counts.sum(), 1.0)
    cur = c_counts[cols] / max(c_counts.sum(), 1.0)
    return _svg(ref, cur, labels) + "<small>" + html.escape(", ".join(labels[:8])) + "</small>"


_CSS: Final = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left}
.drift{color:#b00020;font-weight:600}.no_drift{color:#1b5e20}.not_enough_data{color:#777}
rect.ref{fill:#9e9e9e}rect.cur{fill:#ef6c00}.card{display:inline-block;margin:8px;padding:8px;
border:1px solid #ddd;border-radius:6px;vertical-align:top}.legend span{margin-right:1em}
"""


def html_report(
    layout: Layout,
    verdict: Verdict,
    reference: Histograms,
    current: Histograms,
    meta: Mapping[str, str],
) -> str:
    """A self-contained HTML page: summary, verdict table, one chart per feature.

    Args:
        layout: the binning.
        verdict: the window's verdict.
        reference: reference counts.
        current: current counts.
        meta: extra lines for the header (e.g. file names and digests).
    """
    esc = html.escape
    rows = []
    cards = []
    for f in verdict.features:
        if f.segment is not None:
            continue
        rows.append(
            "<tr>"
            f"<td>{esc(f.name)}</td><td>{f.kind}</td><td>{f.test}</td>"
            f"<td>{_fmt(f.p_adjusted)}</td><td>{esc(f.effect)}</td><td>{_fmt(f.effect_value)}</td>"
            f"<td>{_fmt(f.threshold, 3)}</td><td class='{f.status.value}'>{f.status.value}</td>"
            "</tr>"
        )
        cards.append(
            f"<div class='card'><b>{esc(f.name)}</b> <span class='{f.status.value}'>"
            f"{f.status.value}</span><br>{_chart(layout, f, reference, current)}</div>"
        )
    seg_rows = [
        f"<li>{esc(f.name)} in {esc(f.segment or '')}: {esc(f.effect)} {_fmt(f.effect_value)}</li>"
        for f in verdict.features
        if f.segment is not None and f.status is Status.DRIFT
    ]
    meta_html = "".join(f"<li>{esc(k)}: {esc(v)}</li>" for k, v in meta.items())
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Driftline drift report</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>Drift report: <span class='{verdict.status.value}'>{verdict.status.value}</span></h1>"
        f"<ul>{meta_html}<li>drifted: {esc(', '.join(verdict.drifted) or 'none')} "
        f"(share {verdict.share:.3f})</li><li>{verdict.correction.value} correction, alpha "
        f"{verdict.alpha}, {verdict.hypotheses} hypotheses</li></ul>"
        + (f"<h2>Segments</h2><ul>{''.join(seg_rows)}</ul>" if seg_rows else "")
        + "<h2>Features</h2><table><tr><th>feature</th><th>type</th><th>test</th>"
        "<th>p (adjusted)</th><th>effect</th><th>value</th><th>threshold</th><th>status</th></tr>"
        + "".join(rows)
        + "</table><h2>Distributions</h2><p class='legend'><span style='color:#9e9e9e'>■ "
        "reference</span><span style='color:#ef6c00'>■ current</span></p>"
        + "".join(cards)
        + "</body></html>\n"
    )
