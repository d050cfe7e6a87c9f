import io

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from segpipe.core.ingest.images import difference_hash, inspect_image
from segpipe.core.qa import near_duplicates
from segpipe.core.qa.near_duplicates import near_duplicate_entries, near_duplicate_pairs, split_leaks


def photo(seed: int, size=(320, 160), quality=90, scale=1.0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = (rng.random((8, 16, 3)) * 255).astype(np.uint8)
    image = Image.fromarray(pixels).resize(size, Image.Resampling.BICUBIC)
    if scale != 1.0:
        image = image.resize((round(size[0] * scale), round(size[1] * scale)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def test_a_reencoded_resized_copy_is_near_and_another_scene_is_far():
    original, copy, other = (inspect_image(data, "x").perceptual_hash
                             for data in (photo(1), photo(1, quality=40, scale=0.6), photo(2)))
    assert (int(original, 16) ^ int(copy, 16)).bit_count() <= 4
    assert (int(original, 16) ^ int(other, 16)).bit_count() > 16


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=2, max_size=40, unique=True), st.integers(0, 12))
def test_banded_search_finds_exactly_the_pairs_a_full_comparison_finds(values, max_bits):
    images = pl.DataFrame({"image_id": [f"i{n}" for n in range(len(values))],
                           "perceptual_hash": [f"{v:016x}" for v in values]})
    expected = sorted({(f"i{a}", f"i{b}", (x ^ y).bit_count()) if f"i{a}" < f"i{b}" else
                       (f"i{b}", f"i{a}", (x ^ y).bit_count())
                       for a, x in enumerate(values) for b, y in enumerate(values)
                       if a < b and (x ^ y).bit_count() <= max_bits})
    assert near_duplicate_pairs(images, max_bits) == expected


def every_pair_within(values: list[int], max_bits: int) -> list[tuple[str, str, int]]:
    return sorted((f"i{a:03d}", f"i{b:03d}", (x ^ y).bit_count()) for a, x in enumerate(values)
                  for b, y in enumerate(values) if a < b and (x ^ y).bit_count() <= max_bits)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=4),
       st.lists(st.tuples(st.integers(0, 3), st.lists(st.integers(0, 63), max_size=8)), min_size=2, max_size=60),
       st.integers(0, 10))
def test_clustered_hashes_give_exactly_the_pairs_a_full_comparison_finds(bases, copies, max_bits):
    """Hashes as a camera rig gives them: copies of a few scenes with a few bits flipped (some
    identical), so buckets are large and pairs share several bands."""
    values = [bases[base % len(bases)] ^ sum(1 << bit for bit in set(flips)) for base, flips in copies]
    images = pl.DataFrame({"image_id": [f"i{n:03d}" for n in range(len(values))],
                           "perceptual_hash": [f"{v:016x}" for v in values]})
    assert near_duplicate_pairs(images, max_bits) == every_pair_within(values, max_bits)


def test_pairs_compared_in_chunks_are_all_found(monkeypatch):
    """One bucket of 40 identical hashes holds 780 pairs: compared 7 at a time, none is lost or doubled."""
    monkeypatch.setattr(near_duplicates, "PAIR_CHUNK", 7)
    values = [0xFFFF0000FFFF0000] * 40 + [0x0F0F0F0F0F0F0F0F ^ (1 << n) for n in range(20)]
    images = pl.DataFrame({"image_id": [f"i{n:03d}" for n in range(len(values))],
                           "perceptual_hash": [f"{v:016x}" for v in values]})
    pairs = near_duplicate_pairs(images, 4)
    assert pairs == every_pair_within(values, 4)
    assert len(pairs) == 40 * 39 // 2 + 20 * 19 // 2


def test_the_later_file_is_flagged_and_names_the_earlier_one():
    near = f"{int(difference_hash(Image.open(io.BytesIO(photo(1))).copy()), 16) ^ 0b101:016x}"
    entries = pl.DataFrame({
        "entry_id": ["e1", "e2", "e3"], "batch_id": ["b1", "b2", "b2"], "file_name": ["a.jpg", "copy.jpg", "x.jpg"],
        "image_id": ["img1", "img2", "img3"],
        "perceptual_hash": [difference_hash(Image.open(io.BytesIO(photo(1))).copy()), near,
                            difference_hash(Image.open(io.BytesIO(photo(2))).copy())],
    })
    assert near_duplicate_entries(entries, 4) == {"e2": "looks like b1/a.jpg (2 of 64 hash bits differ)"}
    assert near_duplicate_entries(entries, 1) == {}


def test_near_copies_in_different_splits_are_reported_and_in_one_split_are_not():
    images = pl.DataFrame({"image_id": ["a", "a-copy", "b", "b-copy"],
                           "perceptual_hash": ["00000000000000ff", "00000000000000fe", "ffff000000000000", "ffff000000000001"]})
    splits = pl.DataFrame({"image_id": ["a", "a-copy", "b", "b-copy"], "split": ["train", "test", "val", "val"]})
    leaks = split_leaks(splits, images, 4)
    assert leaks.to_dicts() == [{"image_a": "a", "split_a": "train", "image_b": "a-copy", "split_b": "test", "bits": 1}]
