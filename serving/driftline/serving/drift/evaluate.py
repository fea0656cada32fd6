"""One call from a profile and current rows to a verdict, for the offline tool and the sidecar.

Who calls it: ``driftline drift`` (:func:`evaluate_table`) and the monitor sidecar
(:func:`scopes`, over its window counts). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from driftline.serving.drift import decide, stats
from driftline.serving.drift.profile import (
    Histograms,
    Profile,
    Table,
    encode_table,
    histograms,
)


def segment_histograms(
    profile: Profile, numeric: npt.NDArray[np.float64], codes: npt.NDArray[np.intp]
) -> dict[str, list[Histograms]]:
    """Counts of the rows per category of every segment feature of the profile."""
    names = [c.name for c in profile.layout.categorical]
    out: dict[str, list[Histograms]] = {}
    for seg in profile.segments:
        j = names.index(seg)
        n_cat = len(profile.layout.categorical[j].categories)
        groups = np.where(codes[:, j] < n_cat, codes[:, j], -1)
        out[seg] = histograms(profile.layout, numeric, codes, groups, n_cat)
    return out


def scopes(
    profile: Profile, whole: Histograms, segments: Mapping[str, list[Histograms]]
) -> list[decide.Scope]:
    """The whole window's statistics, then each segment's against its own reference."""
    layout = profile.layout
    names = [c.name for c in layout.categorical]
    out = [decide.Scope(stats.compare(layout, profile.reference, whole), whole.rows)]
    for seg, parts in segments.items():
        cats = layout.categorical[names.index(seg)].categories
        refs = profile.segments.get(seg, {})
        for cat, hist in zip(cats, parts, strict=True):
            if cat in refs:
                st = stats.compare(layout, refs[cat], hist)
                out.append(decide.Scope(st, hist.rows, f"{seg}={cat}"))
    return out


@dataclass(frozen=True)
class Evaluation:
    """A verdict with the counts it was computed from.

    Attributes:
        verdict: the verdict.
        current: counts of the current rows.
        segments: counts per segment feature and category.
    """

    verdict: decide.Verdict
    current: Histograms
    segments: Mapping[str, list[Histograms]]


def evaluate_table(profile: Profile, table: Table, cfg: decide.DecisionConfig) -> Evaluation:
    """Judge named current columns against a profile.

    Raises:
        ProfileError: naming missing columns or mismatched types.
    """
    numeric, codes = encode_table(profile.layout, table)
    (whole,) = histograms(profile.layout, numeric, codes)
    segs = segment_histograms(profile, numeric, codes)
    verdict = decide.decide(profile.layout, scopes(profile, whole, segs), cfg)
    return Evaluation(verdict=verdict, current=whole, segments=segs)
