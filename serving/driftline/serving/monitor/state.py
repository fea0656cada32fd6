"""Merging the window states of many sidecars (pods) into one verdict per variant.

Who calls it: the operator's analysis (or anyone holding ``GET /v1/window`` documents from the
pods of a variant). Pure: documents in, verdicts out. Windows merge exactly because they are
counts over the profile's bins: the merged verdict is the verdict one sidecar would give had it
seen every pod's rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from driftline.serving.drift import decide
from driftline.serving.drift.evaluate import scopes
from driftline.serving.drift.profile import Histograms, Profile, ProfileError, counts_from_json

WINDOW_FORMAT = "driftline.window/v1"


@dataclass(frozen=True)
class MergedWindow:
    """The summed counts of one variant's windows across pods.

    Attributes:
        whole: counts of every row.
        segments: per segment feature, counts per category.
        pods: documents that contributed.
    """

    whole: Histograms
    segments: Mapping[str, list[Histograms]]
    pods: int


def merge_window_states(
    profile: Profile, documents: Sequence[Mapping[str, object]]
) -> dict[str, MergedWindow]:
    """Sum the window counts of every variant over the documents.

    Raises:
        ProfileError: when a document is of another format or profile, or malformed (naming the
            document and field).
    """
    layout = profile.layout
    merged: dict[str, MergedWindow] = {}
    for i, doc in enumerate(documents):
        where = f"documents[{i}]"
        if doc.get("format") != WINDOW_FORMAT:
            raise ProfileError(f"{where}.format: expected {WINDOW_FORMAT!r}")
        if doc.get("reference_sha256") != profile.reference_sha256:
            raise ProfileError(f"{where}.reference_sha256: window of another profile")
        variants = doc.get("variants")
        if not isinstance(variants, Mapping):
            raise ProfileError(f"{where}.variants: must be an object")
        for variant, entry in variants.items():
            if not isinstance(entry, Mapping):
                raise ProfileError(f"{where}.variants.{variant}: must be an object")
            whole = counts_from_json(layout, entry.get("whole"), f"{where}.{variant}.whole")
            segs: dict[str, list[Histograms]] = {}
            raw_segs = entry.get("segments", {})
            if not isinstance(raw_segs, Mapping):
                raise ProfileError(f"{where}.{variant}.segments: must be an object")
            for seg, parts in raw_segs.items():
                names = [c.name for c in layout.categorical]
                if seg not in profile.segments or not isinstance(parts, Mapping):
                    raise ProfileError(f"{where}.{variant}.segments.{seg}: not a profile segment")
                cats = layout.categorical[names.index(seg)].categories
                segs[seg] = [
                    counts_from_json(layout, parts.get(c), f"{where}.{variant}.segments.{seg}.{c}")
                    for c in cats
                ]
            before = merged.get(variant)
            if before is None:
                merged[variant] = MergedWindow(whole, segs, 1)
            else:
                merged[variant] = MergedWindow(
                    before.whole.merge(whole),
                    {
                        s: [a.merge(b) for a, b in zip(before.segments[s], segs[s], strict=True)]
                        for s in before.segments
                    },
                    before.pods + 1,
                )
    return merged


def judge(profile: Profile, window: MergedWindow, cfg: decide.DecisionConfig) -> decide.Verdict:
    """The verdict of a merged window."""
    return decide.decide(profile.layout, scopes(profile, window.whole, window.segments), cfg)
