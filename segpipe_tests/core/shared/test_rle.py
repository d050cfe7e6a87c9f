import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as coco_mask

from segpipe.core.shared.rle import decode_rle, encode_rle, encode_value_rles, encode_window_rle


@settings(max_examples=60, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 30), st.integers(1, 30))))
def test_rle_is_byte_identical_to_pycocotools(binary):
    reference = coco_mask.encode(np.asfortranarray(binary.astype(np.uint8)))
    ours = encode_rle(binary)
    assert ours["size"] == list(reference["size"])
    assert ours["counts"] == reference["counts"].decode()
    decoded = coco_mask.decode({"size": ours["size"], "counts": ours["counts"].encode()})
    assert np.array_equal(decoded.astype(bool), binary)


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 30), st.integers(1, 30)), elements=st.integers(0, 4)))
def test_every_value_of_a_label_mask_in_one_pass_matches_pycocotools(mask):
    found = encode_value_rles(mask)
    assert set(found) == set(np.unique(mask).tolist())
    for value, annotation in found.items():
        binary = np.asfortranarray((mask == value).astype(np.uint8))
        reference = coco_mask.encode(binary)
        assert annotation["segmentation"] == {"size": list(reference["size"]), "counts": reference["counts"].decode()}
        assert annotation["area"] == int(coco_mask.area(reference))
        assert annotation["bbox"] == [int(v) for v in coco_mask.toBbox(reference)]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_window_encodes_as_the_frame_it_is_placed_in(data):
    height, width = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12))
    top, left = data.draw(st.integers(0, height - 1)), data.draw(st.integers(0, width - 1))
    shape = st.tuples(st.integers(1, height - top), st.integers(1, width - left))
    window = data.draw(arrays(np.bool_, shape))
    frame = np.zeros((height, width), bool)
    frame[top:top + window.shape[0], left:left + window.shape[1]] = window
    assert encode_window_rle(window, left, top, width, height) == encode_rle(frame)


def test_full_height_windows_join_runs_across_columns_and_a_full_frame_is_one_run():
    window = np.ones((3, 2), bool)
    window[0, 0] = False
    assert encode_window_rle(window, 1, 0, 4, 3) == encode_rle(np.pad(window, ((0, 0), (1, 1))))
    assert decode_rle(encode_window_rle(window, 1, 0, 4, 3), "w").T.ravel().tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0]
    assert encode_window_rle(np.ones((2, 3), bool), 0, 0, 3, 2) == {"size": [2, 3], "counts": "06"}
