import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as coco_mask

from segpipe.core.rle import encode_rle, encode_value_rles


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
