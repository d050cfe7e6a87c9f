import io

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from segpipe.core.ingest.formats.annotation import BoxMask
from segpipe.core.shared.png import decode_written_mask, encode_mask_png
from segpipe.core.rasterize.raster import decode_mask_png, rasterize_shapes


def shapes(rows):
    defaults = {"kind": "polygon", "rings": [], "mask_box": None, "mask_counts": None}
    return pl.DataFrame([{**defaults, **row} for row in rows], schema={
        "shape_index": pl.Int64, "z_order": pl.Int64, "kind": pl.String, "rings": pl.List(pl.List(pl.Float64)),
        "mask_box": pl.List(pl.Int64), "mask_counts": pl.List(pl.UInt32), "class_id": pl.Int64, "mapping": pl.String})


def mask_row(index: int, z_order: int, class_id: int, binary: np.ndarray, left: int, top: int) -> dict:
    box = BoxMask.from_array(binary, left, top)
    return {"shape_index": index, "z_order": z_order, "kind": "mask", "class_id": class_id, "mapping": "mapped",
            "mask_box": [box.left, box.top, box.width, box.height], "mask_counts": box.counts.tolist()}


SQUARE = [[2.0, 2.0, 7.0, 2.0, 7.0, 7.0, 2.0, 7.0]]


def test_painters_order_is_z_order_then_document_order():
    mask = rasterize_shapes(shapes([
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
    assert rasterize_shapes(shapes([base, void]), 10, 10, 255)[4, 4] == 255
    assert rasterize_shapes(shapes([base, skipped]), 10, 10, 255)[4, 4] == 4


def test_multi_ring_shapes_paint_the_union():
    mask = rasterize_shapes(shapes([{"shape_index": 0, "z_order": 0, "class_id": 6, "mapping": "mapped",
                                       "rings": [[0.0, 0, 2, 0, 2, 2, 0, 2], [6.0, 6, 8, 6, 8, 8, 6, 8]]}]), 10, 10, 255)
    assert mask[1, 1] == 6 and mask[7, 7] == 6 and mask[4, 4] == 255


def test_masks_fill_exactly_their_pixels_holes_included_in_painters_order():
    ring = np.ones((5, 5), dtype=bool)
    ring[2, 2] = False  # a hole
    background = {"shape_index": 0, "z_order": 0, "rings": [[0.0, 0, 11, 0, 11, 9, 0, 9]], "class_id": 1, "mapping": "mapped"}
    over = {"shape_index": 2, "z_order": 0, "rings": [[6.0, 6, 8, 6, 8, 8, 6, 8]], "class_id": 3, "mapping": "mapped"}
    mask = rasterize_shapes(shapes([background, mask_row(1, 0, 2, ring, 3, 3), over]), 12, 10, 255)
    expected = np.full((10, 12), 1, dtype=np.uint8)
    expected[3:8, 3:8][ring] = 2
    expected[6:9, 6:9] = 3
    assert np.array_equal(mask, expected)
    assert mask[5, 5] == 1  # the hole shows what lies below


def test_boxes_are_painted_only_for_classes_that_ask_and_lines_never():
    box = {"shape_index": 0, "z_order": 0, "kind": "box", "rings": [[1.0, 1, 4, 1, 4, 4, 1, 4]], "class_id": 7, "mapping": "mapped"}
    line = {"shape_index": 1, "z_order": 0, "kind": "polyline", "rings": [[0.0, 0, 9, 9]], "class_id": 8, "mapping": "mapped"}
    assert (rasterize_shapes(shapes([box, line]), 10, 10, 255) == 255).all()
    painted = rasterize_shapes(shapes([box, line]), 10, 10, 255, box_class_ids=frozenset({7}))
    assert painted[2, 2] == 7 and (painted != 8).all()


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


@settings(max_examples=80, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40))), st.booleans())
def test_the_fast_decoder_reads_the_writers_masks_exactly_as_pillow_does(mask, with_palette):
    png = encode_mask_png(mask, [(i, 255 - i, i // 2) for i in range(256)] if with_palette else None)
    fast = decode_written_mask(png)
    with Image.open(io.BytesIO(png)) as image:
        assert fast is not None and np.array_equal(fast, np.asarray(image)) and np.array_equal(fast, mask)


def test_other_pngs_go_to_pillow_and_a_damaged_mask_is_an_error():
    mask = np.arange(12, dtype=np.uint8).reshape(3, 4)
    buffer = io.BytesIO()
    Image.fromarray(mask).save(buffer, format="PNG")  # Pillow picks its own filters per row
    assert np.array_equal(decode_mask_png(buffer.getvalue()), mask)
    assert decode_written_mask(buffer.getvalue()) is None or np.array_equal(decode_written_mask(buffer.getvalue()), mask)
    damaged = bytearray(encode_mask_png(mask))
    damaged[45] ^= 0xFF  # inside the IDAT payload
    with pytest.raises(ValueError, match="IDAT"):
        decode_mask_png(bytes(damaged))
