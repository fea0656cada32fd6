"""Category encoding without Python work per row: hashed strings and direct integer tables.

Covers: strings (any width, unicode, long, empty, None/NaN in object arrays) map to the same
columns as a plain dictionary would, through the slot table and through the sorted-hash search
used for large vocabularies; a string whose hash lands on a category's slot is still unseen
(the exact check); integer codes through the direct table and non-integer codes through the
sorted search agree with a dictionary, NaN/inf are missing, fractions and out-of-range codes
unseen.
"""

from __future__ import annotations

import numpy as np

from driftline.serving.drift.profile import (
    MISSING,
    TextLookup,
    build_profile,
    category_key,
    encode_categories,
    hash_texts,
)


def _expected(categories: tuple[str, ...], values: list[object], unseen: int) -> list[int]:
    index = {c: i for i, c in enumerate(categories)}
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and v != v) or v == "":
            out.append(MISSING)
        else:
            out.append(index.get(str(v), unseen))
    return out


def _words(rng: np.random.Generator, n: int, alphabet: str = "abcxyzé中0") -> list[str]:
    lengths = rng.integers(1, 12, n)
    return ["".join(rng.choice(list(alphabet), k)) for k in lengths]


def test_strings_map_like_a_dictionary_with_a_slot_table() -> None:
    rng = np.random.default_rng(0)
    vocab = sorted(set(_words(rng, 300)))
    ref = rng.choice(np.array(vocab, dtype=object), 5000)
    profile = build_profile({"s": ref}, "sha")
    layout = profile.layout
    assert layout.text_lookups[0].table is not None
    cats = layout.categorical[0].categories
    current: list[object] = [*rng.choice(vocab, 400).tolist(), *_words(rng, 100), "", None,
                             float("nan"), "x" * 40, cats[0] + "\x00z"]  # fmt: skip
    for values in (np.array(current, dtype=object), np.array([str(v) for v in current[:500]])):
        got = encode_categories(layout, 0, values).tolist()
        want = _expected(cats, list(values), layout.vmax)
        assert got == want


def test_large_vocabularies_use_sorted_hashes_and_stay_exact() -> None:
    rng = np.random.default_rng(1)
    vocab = [f"item-{i}" for i in range(3000)]
    lookup = TextLookup.build(tuple(vocab))
    assert lookup.table is None  # no 16-bit slot table separates 3000 strings
    values = np.array([*vocab[::7], "item-3000", "item-", "ITEM-1"], dtype=np.str_)
    got = lookup.columns(values).tolist()
    assert got == [*range(0, 3000, 7), -1, -1, -1]
    assert rng is not None


def test_a_string_on_a_taken_slot_is_still_unseen() -> None:
    lookup = TextLookup.build(("alpha", "beta", "gamma"))
    assert lookup.table is not None
    taken = {int(s) for s in np.flatnonzero(lookup.table >= 0)}
    probe = None
    for i in range(100_000):  # find a non-category whose hash lands on a taken slot
        text = np.array([f"probe{i}"])
        slot = int(hash_texts(text, lookup.salt)[0] >> np.uint64(64 - lookup.bits))
        if slot in taken:
            probe = text
            break
    assert probe is not None
    assert lookup.columns(probe).tolist() == [-1]


def test_a_string_hashes_the_same_at_any_array_width() -> None:
    narrow = np.array(["ab", "c"])
    wide = np.array(["ab", "c", "a much longer string"])
    assert np.array_equal(hash_texts(narrow, 7), hash_texts(wide, 7)[:2])


def test_integer_codes_use_the_direct_table_and_match_a_dictionary() -> None:
    rng = np.random.default_rng(2)
    profile = build_profile({"k": rng.integers(-3, 40, 5000).astype(float)}, "sha",
                            categorical=["k"])  # fmt: skip
    layout = profile.layout
    assert layout.code_tables[0] is not None
    values = np.array([-3, 0, 39, 40, -4, 2.5, np.nan, np.inf, -np.inf, 1e300, -0.0, 7])
    got = encode_categories(layout, 0, values).tolist()
    index = {c: i for i, c in enumerate(layout.categorical[0].categories)}
    unseen = layout.vmax
    want = [MISSING if not np.isfinite(v) else index.get(category_key(float(v)), unseen)
            for v in values]  # fmt: skip
    assert got == want
    assert got[3] == got[4] == got[5] == got[9] == unseen
    small = np.array([-3, 0, 39, 40, 2.5, np.nan, 7], dtype=np.float32)
    assert encode_categories(layout, 0, small).tolist() == [want[i] for i in (0, 1, 2, 3, 5, 6, 11)]
    as_ints = encode_categories(layout, 0, np.array([-3, 0, 39, 40, 7], dtype=np.int64))
    assert as_ints.tolist() == [want[i] for i in (0, 1, 2, 3, 11)]


def test_fractional_codes_fall_back_to_the_sorted_search() -> None:
    profile = build_profile({"k": np.array([0.5, 1.0, 2.0, 0.5] * 100)}, "sha", categorical=["k"])
    layout = profile.layout
    assert layout.code_tables[0] is None
    got = encode_categories(layout, 0, np.array([0.5, 1.0, 2.0, 3.0, np.nan])).tolist()
    index = {c: i for i, c in enumerate(layout.categorical[0].categories)}
    assert got == [index["0.5"], index["1"], index["2"], layout.vmax, MISSING]


def test_big_endian_and_strided_strings_map_like_native_ones() -> None:
    profile = build_profile({"s": np.array(["eu", "us", "apac"] * 50, dtype=object)}, "sha")
    native = np.array(["eu", "mars", "apac", "", "us"])
    want = encode_categories(profile.layout, 0, native).tolist()
    assert encode_categories(profile.layout, 0, native.astype(">U4")).tolist() == want
    grid = np.stack([native, native[::-1]], axis=1)  # a column of a 2-D tensor: strided
    assert encode_categories(profile.layout, 0, grid[:, 0]).tolist() == want
