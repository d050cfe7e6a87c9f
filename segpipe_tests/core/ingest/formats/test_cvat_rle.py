import numpy as np
import pytest

from segpipe.core.shared.errors import InputError
from segpipe.core.ingest.formats.annotation import BoxMask
from segpipe.core.ingest.formats.cvat_rle import decode_cvat_rle, encode_cvat_rle

WHERE = "mem://batch/annotations.xml: image 'images/a.png': shape #2 ('car')"

# The example of https://docs.cvat.ai/docs/other/xml_format: a 13x15 blob at (707, 888).
DOCS_RLE = "3, 5, 7, 7, 5, 9, 3, 11, 2, 11, 2, 12, 1, 12, 1, 26, 1, 12, 1, 12, 2, 11, 3, 9, 5, 7, 7, 5, 3"


def attrs(rle: str, left: int = 0, top: int = 0, width: int = 3, height: int = 2) -> dict[str, str]:
    return {"rle": rle, "left": str(left), "top": str(top), "width": str(width), "height": str(height)}


def test_hand_computed_runs_are_row_major_and_start_with_background():
    # 3x2 box: one background pixel, two foreground, then the same again on the next row.
    mask = decode_cvat_rle(attrs("1, 2, 1, 2", left=4, top=5), 10, 10, WHERE)
    assert (mask.left, mask.top, mask.width, mask.height) == (4, 5, 3, 2)
    assert mask.to_array().astype(int).tolist() == [[0, 1, 1], [0, 1, 1]]


def test_a_leading_zero_run_means_the_box_starts_with_foreground():
    mask = decode_cvat_rle(attrs("0,4,1,4", width=3, height=3), 3, 3, WHERE)
    assert mask.to_array().astype(int).tolist() == [[1, 1, 1], [1, 0, 1], [1, 1, 1]]


def test_the_cvat_documentation_example_decodes():
    mask = decode_cvat_rle(attrs(DOCS_RLE, left=707, top=888, width=13, height=15), 1600, 1200, WHERE)
    rows = mask.to_array().astype(int)
    assert rows.shape == (15, 13)
    assert rows[0].tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    assert rows[7].all() and rows[8].all()
    assert rows[14].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0]
    assert rows.sum() == sum(int(v) for v in DOCS_RLE.split(",")[1::2])


def test_encode_writes_what_cvat_writes():
    mask = BoxMask(2, 3, 3, 2, np.array([1, 2, 1, 2], dtype=np.uint32))
    assert encode_cvat_rle(mask) == {"rle": "1, 2, 1, 2", "left": "2", "top": "3", "width": "3", "height": "2"}


def round_trip(mask: BoxMask, image_size: tuple[int, int]) -> BoxMask:
    return decode_cvat_rle(encode_cvat_rle(mask), *image_size, WHERE)


def test_a_mask_with_holes_survives_encode_then_decode():
    binary = np.zeros((12, 16), dtype=bool)
    binary[2:10, 3:14] = True
    binary[4:7, 6:9] = False  # a hole
    binary[5, 7] = True  # an island inside the hole
    mask = BoxMask.from_array(binary)
    assert mask is not None
    back = round_trip(mask, (16, 12))
    assert (back.left, back.top, back.width, back.height) == (mask.left, mask.top, mask.width, mask.height)
    assert back.counts.tolist() == mask.counts.tolist()
    placed = np.zeros_like(binary)
    placed[back.top:back.top + back.height, back.left:back.left + back.width] = back.to_array()
    assert (placed == binary).all()


def test_random_masks_round_trip():
    rng = np.random.default_rng(7)
    for _ in range(25):
        binary = rng.random((rng.integers(1, 30), rng.integers(1, 30))) < rng.random()
        mask = BoxMask.from_array(binary)
        if mask is None:
            continue
        back = round_trip(mask, (binary.shape[1], binary.shape[0]))
        assert (back.to_array() == mask.to_array()).all()
        assert (back.left, back.top) == (mask.left, mask.top)


@pytest.mark.parametrize("rle", ["1, -2, 1, 2", "1, 2.0, 1, 2", "1, 2, 1", "1, 2, 1, 3", "", "1,,2,3", "a, 6", "1_0"])
def test_bad_counts_are_malformed_masks_naming_the_shape(rle):
    with pytest.raises(InputError) as caught:
        decode_cvat_rle(attrs(rle), 10, 10, WHERE)
    assert caught.value.rule == "malformed_mask"
    assert WHERE in str(caught.value)


def test_a_run_too_long_for_uint32_is_refused():
    width, height = 100_000, 50_000
    with pytest.raises(InputError) as caught:
        decode_cvat_rle(attrs(f"{width * height - 1}, 1", width=width, height=height), width, height, WHERE)
    assert caught.value.rule == "malformed_mask"


@pytest.mark.parametrize(("left", "top", "width", "height"), [(8, 0, 3, 2), (0, 9, 3, 2), (-1, 0, 3, 2), (0, -1, 3, 2)])
def test_a_box_not_inside_the_image_is_out_of_frame(left, top, width, height):
    with pytest.raises(InputError) as caught:
        decode_cvat_rle(attrs("1, 2, 1, 2", left, top, width, height), 10, 10, WHERE)
    assert caught.value.rule == "coordinates_out_of_frame"
    assert WHERE in str(caught.value)


@pytest.mark.parametrize("change", [{"width": "0"}, {"left": "1.5"}, {"top": ""}, {"height": "nan"}])
def test_bad_box_attributes_are_malformed_masks(change):
    with pytest.raises(InputError) as caught:
        decode_cvat_rle({**attrs("1, 2, 1, 2"), **change}, 10, 10, WHERE)
    assert caught.value.rule == "malformed_mask"


def test_a_missing_box_attribute_is_a_malformed_mask():
    incomplete = attrs("1, 2, 1, 2")
    del incomplete["height"]
    with pytest.raises(InputError, match="height=None") as caught:
        decode_cvat_rle(incomplete, 10, 10, WHERE)
    assert caught.value.rule == "malformed_mask"
