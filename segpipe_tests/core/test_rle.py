import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as coco_mask

from segpipe.core.rle import encode_rle


@settings(max_examples=60, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 30), st.integers(1, 30))))
def test_rle_is_byte_identical_to_pycocotools(binary):
    reference = coco_mask.encode(np.asfortranarray(binary.astype(np.uint8)))
    ours = encode_rle(binary)
    assert ours["size"] == list(reference["size"])
    assert ours["counts"] == reference["counts"].decode()
    decoded = coco_mask.decode({"size": ours["size"], "counts": ours["counts"].encode()})
    assert np.array_equal(decoded.astype(bool), binary)
