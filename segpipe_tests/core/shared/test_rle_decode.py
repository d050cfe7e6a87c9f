"""decode_rle reads COCO RLE exactly as pycocotools writes it, and refuses corrupt RLE instead of padding it."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as coco_mask

from segpipe.core.shared.errors import InputError
from segpipe.core.shared.rle import MAX_RLE_PIXELS, decode_rle, encode_rle

masks = arrays(np.bool_, st.tuples(st.integers(1, 40), st.integers(1, 40)))


def uncompressed_counts(binary: np.ndarray) -> list[int]:
    """Column-major run lengths, background first, as COCO's iscrowd annotations store them."""
    flat = binary.ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist()
    return [0, *counts] if flat[0] else counts


@settings(max_examples=80, deadline=None)
@given(masks)
def test_decodes_compressed_rle_written_by_pycocotools(binary):
    written = coco_mask.encode(np.asfortranarray(binary.astype(np.uint8)))
    rle = {"size": [int(v) for v in written["size"]], "counts": written["counts"].decode()}
    decoded = decode_rle(rle, "a.json")
    assert decoded.dtype == bool and decoded.shape == binary.shape
    assert np.array_equal(decoded, binary)
    assert np.array_equal(decoded, coco_mask.decode(written).astype(bool))


@settings(max_examples=80, deadline=None)
@given(masks)
def test_uncompressed_rle_decodes_like_its_pycocotools_compressed_form(binary):
    height, width = binary.shape
    uncompressed = {"size": [height, width], "counts": uncompressed_counts(binary)}
    compressed = coco_mask.frPyObjects(uncompressed, height, width)
    assert np.array_equal(decode_rle(uncompressed, "a.json"), binary)
    assert np.array_equal(decode_rle({"size": [height, width], "counts": compressed["counts"].decode()}, "a.json"), binary)


@settings(max_examples=40, deadline=None)
@given(masks)
def test_decode_inverts_encode(binary):
    assert np.array_equal(decode_rle(encode_rle(binary), "a.json"), binary)


def test_large_counts_use_multi_character_deltas():
    binary = np.zeros((300, 200), dtype=bool)
    binary[10:290, 5:195] = True
    binary[100:120, 50:60] = False
    written = coco_mask.encode(np.asfortranarray(binary.astype(np.uint8)))
    assert np.array_equal(decode_rle({"size": [300, 200], "counts": written["counts"].decode()}, "a.json"), binary)


@pytest.mark.parametrize(("rle", "says"), [
    ({"size": [2, 2], "counts": [1, 2]}, "summing to 3"),
    ({"size": [2, 2], "counts": [1, 5]}, "summing to 6"),
    ({"size": [2, 2], "counts": [5, -1]}, "negative"),
    ({"size": [2, 2], "counts": [1.0, 3]}, "neither a string nor a list of integers"),
    ({"size": [2, 2], "counts": 4}, "neither a string nor a list of integers"),
    ({"size": [2, 2]}, "neither a string nor a list of integers"),
    ({"size": [2, 2], "counts": "1 "}, "invalid character"),
    ({"size": [2, 2], "counts": "5"}, "summing to 5, not 2x2"),
    ({"size": [2, 2], "counts": "0o"}, "ends inside a count"),
    ({"size": [2, 2], "counts": ""}, "summing to 0"),
    ({"size": [0, 2], "counts": []}, "not [height, width] positive integers"),
    ({"size": [2], "counts": [4]}, "not [height, width] positive integers"),
    ({"size": ["2", "2"], "counts": [4]}, "not [height, width] positive integers"),
    ({"size": [True, 4], "counts": [4]}, "not [height, width] positive integers"),
    ({"size": "2x2", "counts": [4]}, "not [height, width] positive integers"),
    ({"size": [100_000, 100_000], "counts": [10**10]}, f"over {MAX_RLE_PIXELS}"),
])
def test_malformed_rle_is_refused_naming_the_place(rle, says):
    with pytest.raises(InputError) as caught:
        decode_rle(rle, "c.json: annotation id 7")
    assert caught.value.rule == "malformed_mask"
    assert "c.json: annotation id 7" in str(caught.value) and says in str(caught.value)


def test_a_delta_that_goes_negative_is_refused():
    # counts [3, 1, 0, -2]: the fourth is stored as -2 - 1 = -3, "M" (29, sign bit set) in 5-bit two's complement
    with pytest.raises(InputError, match="negative"):
        decode_rle({"size": [2, 2], "counts": "310M"}, "a.json")
