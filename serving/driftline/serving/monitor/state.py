"""Merging the window states of many sidecars (pods) into one verdict per variant.

Who calls it: the operator's analysis edge (``driftline.operator.analysis_http``), or anyone
holding the ``GET /v1/window`` documents of a variant's pods. Pure: documents in, verdicts out.

Exactness: a window state is counts over the reference profile's bins and support grid (plus
sums and moments), so the sum of the pods' counts *is* the counts of the concatenated rows and
the merged verdict is the one a single sidecar would give had it seen every pod's rows. A verdict
is not mergeable (shares of drifted features do not add up), which is why the operator merges the
counts and judges once instead of taking the worst pod's score.

Robustness: a document of another format, of another profile version (``reference_sha256``),
reporting another model version, or malformed is *skipped and counted by reason*, never fatal;
the merge of what is left goes on. Zero usable pods is "no data", distinct from a window with too
few rows (the verdict's ``not_enough_data``).

Reservoirs: :func:`merge_reservoirs` merges the pods' uniform samples into one bounded uniform
sample (see its docstring). The drift statistics do not need it (KS and Wasserstein run on the
fine support-grid counts, which merge exactly), so ``/v1/window`` does not ship the sample.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from driftline.serving.drift import decide
from driftline.serving.drift.evaluate import scopes
from driftline.serving.drift.profile import Histograms, Profile, ProfileError, counts_from_json

WINDOW_FORMAT: Final = "driftline.window/v1"
"""The ``format`` of a ``GET /v1/window`` document."""

SKIP_FORMAT: Final = "format"
"""Skip reason: not a window document (not an object, or another ``format``)."""
SKIP_PROFILE: Final = "other_profile"
"""Skip reason: the window is counted over another profile version (``reference_sha256``)."""
SKIP_VERSION: Final = "other_version"
"""Skip reason: the variant's rows come from another model version than the one judged."""
SKIP_MALFORMED: Final = "malformed"
"""Skip reason: counts or segments that do not fit the profile's layout."""


@dataclass(frozen=True)
class MergedWindow:
    """The summed counts of one variant's windows across pods.

    Attributes:
        whole: counts of every row.
        segments: per segment feature, counts per category (every profile segment).
        pods: documents that contributed counts.
        skipped: documents skipped, by reason (``SKIP_*``); a pod without the variant is neither.
        problems: one message per skipped document (``documents[i]...: why``), for the log.
    """

    whole: Histograms
    segments: Mapping[str, list[Histograms]]
    pods: int
    skipped: Mapping[str, int] = field(default_factory=dict)
    problems: tuple[str, ...] = ()


def _entry(variants: Mapping[str, object], variant: str) -> object:
    """The variant's entry: by name, or the only entry of a one-variant sidecar."""
    if variant in variants:
        return variants[variant]
    return next(iter(variants.values())) if len(variants) == 1 else None


def _parse_entry(
    profile: Profile, entry: Mapping[str, object], where: str
) -> tuple[Histograms, dict[str, list[Histograms]]]:
    """One pod's counts of one variant.

    Raises:
        ProfileError: naming the field that does not fit the profile.
    """
    layout = profile.layout
    whole = counts_from_json(layout, entry.get("whole"), f"{where}.whole")
    raw_segs = entry.get("segments", {})
    if not isinstance(raw_segs, Mapping) or set(raw_segs) != set(profile.segments):
        raise ProfileError(f"{where}.segments: expected exactly {sorted(profile.segments)}")
    names = [c.name for c in layout.categorical]
    segs: dict[str, list[Histograms]] = {}
    for seg in profile.segments:
        parts = raw_segs[seg]
        if not isinstance(parts, Mapping):
            raise ProfileError(f"{where}.segments.{seg}: must be an object")
        cats = layout.categorical[names.index(seg)].categories
        segs[seg] = [
            counts_from_json(layout, parts.get(c), f"{where}.segments.{seg}.{c}") for c in cats
        ]
    return whole, segs


def merge_variant_windows(
    profile: Profile,
    documents: Sequence[object],
    variant: str,
    version: str | None = None,
) -> MergedWindow:
    """Sum one variant's window counts over the pods' ``GET /v1/window`` documents (pure).

    Args:
        profile: the reference profile the sidecars count over.
        documents: the parsed JSON documents, one per pod (anything: validated here).
        variant: the variant's name in the documents (a sidecar reporting a single variant under
            another name counts as that variant, like the verdict reader does).
        version: the model version judged; an entry reporting another (non-null) version is
            skipped. None accepts any.

    Returns:
        The merged counts; ``pods == 0`` when no document had usable counts of the variant.
    """
    layout = profile.layout
    whole = Histograms.empty(layout)
    names = [c.name for c in layout.categorical]
    segs = {
        s: [Histograms.empty(layout) for _ in layout.categorical[names.index(s)].categories]
        for s in profile.segments
    }
    pods = 0
    skipped: Counter[str] = Counter()
    problems: list[str] = []

    def skip(reason: str, message: str) -> None:
        skipped[reason] += 1
        problems.append(message)

    for i, doc in enumerate(documents):
        where = f"documents[{i}]"
        if not isinstance(doc, Mapping) or doc.get("format") != WINDOW_FORMAT:
            skip(SKIP_FORMAT, f"{where}.format: expected {WINDOW_FORMAT!r}")
            continue
        if doc.get("reference_sha256") != profile.reference_sha256:
            skip(SKIP_PROFILE, f"{where}.reference_sha256: counted over another profile")
            continue
        variants = doc.get("variants")
        if not isinstance(variants, Mapping):
            skip(SKIP_MALFORMED, f"{where}.variants: must be an object")
            continue
        entry = _entry(variants, variant)
        if entry is None:
            continue  # this pod saw no rows of the variant: nothing to add, nothing wrong
        if not isinstance(entry, Mapping):
            skip(SKIP_MALFORMED, f"{where}.variants.{variant}: must be an object")
            continue
        reported = entry.get("version")
        if version is not None and reported is not None and reported != version:
            skip(SKIP_VERSION, f"{where}.variants.{variant}.version: {reported!r}, not {version!r}")
            continue
        try:
            one, one_segs = _parse_entry(profile, entry, f"{where}.variants.{variant}")
        except ProfileError as e:
            skip(SKIP_MALFORMED, str(e))
            continue
        whole = whole.merge(one)
        segs = {s: [a.merge(b) for a, b in zip(segs[s], one_segs[s], strict=True)] for s in segs}
        pods += 1
    return MergedWindow(whole, segs, pods, dict(skipped), tuple(problems))


def judge(profile: Profile, window: MergedWindow, cfg: decide.DecisionConfig) -> decide.Verdict:
    """The verdict of a merged window: the same engine and config a sidecar uses (pure)."""
    return decide.decide(profile.layout, scopes(profile, window.whole, window.segments), cfg)


def merge_reservoirs(
    samples: Sequence[tuple[npt.NDArray[np.float64], int]],
    capacity: int,
    rng: np.random.Generator,
) -> npt.NDArray[np.float64]:
    """Merge the pods' reservoir samples into one bounded sample of the union of their streams.

    Each pod ``i`` gives ``(rows_i, seen_i)``: a uniform sample without replacement of the
    ``seen_i`` rows it saw. A uniform sample of size ``k = min(capacity, sum seen)`` of the union
    takes ``n_i`` rows from pod ``i`` where ``(n_i)`` is multivariate hypergeometric over
    ``seen`` (how many of ``k`` uniform draws without replacement land in each pod's stream);
    then ``n_i`` rows uniformly without replacement from ``rows_i`` (a uniform subsample of a
    uniform sample is a uniform sample of the stream). When a pod kept fewer rows than its draw
    (``n_i > len(rows_i)``, only if its own reservoir is smaller than ``capacity``) it gives all
    it has: the result is then smaller than ``k``, never larger than ``capacity``.

    Args:
        samples: per pod, its sample ``(s_i, F)`` and the number of rows it saw.
        capacity: most rows in the merged sample.
        rng: randomness (seeded in tests).

    Returns:
        ``(<= capacity, F)`` rows; empty with ``F`` columns (0 when there are no samples).

    Raises:
        ValueError: when ``capacity`` or a ``seen`` is negative, a pod saw fewer rows than it
            kept, or the widths differ.
    """
    width = samples[0][0].shape[1] if samples else 0
    for rows, seen in samples:
        if seen < 0 or rows.ndim != 2 or rows.shape[1] != width or len(rows) > seen:
            raise ValueError("each sample must be (s, F) with 0 <= s <= seen and one width F")
    if capacity < 0:
        raise ValueError(f"capacity must be non-negative, got {capacity}")
    seen_all = np.array([seen for _, seen in samples], dtype=np.int64)
    k = int(min(capacity, int(seen_all.sum())))
    if k == 0:
        return np.empty((0, width))
    draws = rng.multivariate_hypergeometric(seen_all, k)
    parts = []
    for (rows, _), n in zip(samples, draws.tolist(), strict=True):
        take = min(int(n), len(rows))
        if take:
            parts.append(rows[rng.choice(len(rows), size=take, replace=False)])
    return np.concatenate(parts) if parts else np.empty((0, width))
