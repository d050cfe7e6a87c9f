import io

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from segpipe.core.png import encode_mask_png
from segpipe.core.raster import decode_mask_png, rasterize_polygons


def shapes(rows):
    return pl.DataFrame(rows, schema={"shape_index": pl.Int64, "z_order": pl.Int64, "rings": pl.List(pl.List(pl.Float64)),
                                      "class_id": pl.Int64, "mapping": pl.String})


SQUARE = [[2.0, 2.0, 7.0, 2.0, 7.0, 7.0, 2.0, 7.0]]


def test_painters_order_is_z_order_then_document_order():
    mask = rasterize_polygons(shapes([
        {"shape_index": 0, "z_order": 5, "rings": SQUARE, "class_id": 1, "mapping": "mapped"},
        {"shape_index": 1, "z_order": 0, "rings": SQUARE, "class_id": 2, "mapping": "mapped"},
        {"shape_index": 2, "z_order": 5, "rings": [[4.0, 4.0, 9.0, 4.0, 9.0, 9.0, 4.0, 9.0]], "class_id": 3, "mapping": "mapped"},
    ]), 12, 10, 255)
    assert mask.shape == (10, 12)
    assert mask[3, 3] == 1  # z 5 drawn over z 0 although it comes first in the file
    assert mask[5, 5] == 3  # same z: later in the file wins
    assert mask[0, 0] == 255 and mask[9, 11] == 255  # unlabeled pixels get the ignore index


def test_unmapped_shapes_paint_void_or_are_skipped():
    base = {"shape_index": 0, "z_order": 0, "rings": SQUARE, "class_id": 4, "mapping": "mapped"}
    void = {"shape_index": 1, "z_order": 1, "rings": SQUARE, "class_id": None, "mapping": "unmapped_void"}
    skipped = {**void, "mapping": "unmapped_ignore"}
    assert rasterize_polygons(shapes([base, void]), 10, 10, 255)[4, 4] == 255
    assert rasterize_polygons(shapes([base, skipped]), 10, 10, 255)[4, 4] == 4


def test_multi_ring_shapes_paint_the_union():
    mask = rasterize_polygons(shapes([{"shape_index": 0, "z_order": 0, "class_id": 6, "mapping": "mapped",
                                       "rings": [[0.0, 0, 2, 0, 2, 2, 0, 2], [6.0, 6, 8, 6, 8, 8, 6, 8]]}]), 10, 10, 255)
    assert mask[1, 1] == 6 and mask[7, 7] == 6 and mask[4, 4] == 255


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40)), elements=st.integers(0, 255)))
def test_png_round_trips_through_pillow_exactly(mask):
    assert np.array_equal(decode_mask_png(encode_mask_png(mask)), mask)
    with Image.open(io.BytesIO(encode_mask_png(mask))) as image:
        assert image.mode == "L" and image.size == (mask.shape[1], mask.shape[0])


def test_palette_png_decodes_to_indices_and_carries_the_colours():
    mask = np.array([[0, 1], [255, 1]], dtype=np.uint8)
    palette = [(0, 0, 0)] * 256
    palette[1] = (10, 20, 30)
    data = encode_mask_png(mask, palette)
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "P"
        assert image.convert("RGB").getpixel((1, 0)) == (10, 20, 30)
    assert np.array_equal(decode_mask_png(data), mask)


def test_encoder_refuses_non_uint8_masks():
    with pytest.raises(ValueError, match="uint8"):
        encode_mask_png(np.zeros((2, 2), dtype=np.int32))
