import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from segpipe.core.consensus.image_outcomes import agreement_map, pair_class_ious
from segpipe.core.consensus.mask_agreement import class_iou
from segpipe.core.consensus.plurality import disputed_labels, disputed_pixels, fuse_with_agreement
from segpipe.core.consensus.vote_rows import vote_rows
from segpipe.core.rasterize.label_masks import class_pixels

IGNORE = 255
LABELS = st.sampled_from([0, 1, 2, 7, IGNORE])
PANELS = st.integers(1, 5).flatmap(lambda m: st.lists(arrays(np.uint8, (6, 7), elements=LABELS), min_size=m, max_size=m))


def image_votes(masks: list[np.ndarray]):
    disputed = disputed_pixels(masks)
    return disputed, vote_rows(disputed_labels(masks, disputed), np.asarray(class_pixels(masks[0])))


@settings(max_examples=150, deadline=None)
@given(PANELS)
def test_vote_rows_are_every_distinct_combination_of_labels_with_its_pixels(masks):
    disputed, votes = image_votes(masks)
    stacked = np.stack([mask.ravel() for mask in masks], axis=1)
    expected = dict(zip(map(tuple, np.unique(stacked, axis=0, return_counts=True)[0].tolist()),
                        np.unique(stacked, axis=0, return_counts=True)[1].tolist(), strict=True))
    assert dict(zip(map(tuple, votes.rows.tolist()), votes.pixels.tolist(), strict=True)) == expected
    assert len(votes.rows) == len(expected)  # each combination once
    assert np.array_equal(votes.rows[votes.disputed_row], stacked[disputed])  # each disputed pixel's own row


@settings(max_examples=150, deadline=None)
@given(PANELS.filter(lambda masks: len(masks) >= 2))
def test_the_agreement_map_from_vote_rows_is_the_plurality_rules_map(masks):
    disputed, votes = image_votes(masks)
    _, shown = fuse_with_agreement(masks, 0.5, IGNORE, None, disputed, disputed_labels(masks, disputed))
    assert np.array_equal(agreement_map(masks[0].shape, disputed, votes, IGNORE), shown)


@settings(max_examples=150, deadline=None)
@given(PANELS.filter(lambda masks: len(masks) >= 2))
def test_pair_ious_from_vote_rows_are_the_class_ious_counted_pixel_by_pixel(masks):
    _, votes = image_votes(masks)
    pixels = [class_pixels(mask) for mask in masks]
    expected = [class_iou(masks[i], masks[j], IGNORE) for i in range(len(masks)) for j in range(i + 1, len(masks))]
    assert pair_class_ious(votes, pixels, IGNORE) == expected
