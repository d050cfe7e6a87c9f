import io

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from segpipe.core.ingest.images import difference_hash, inspect_image
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
