import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from segpipe.core.qa.mask_regions import mask_regions


def regions_of(mask: np.ndarray) -> list[tuple]:
    """(value, pixels, bbox, touches border, outside neighbour values) per region, sorted."""
    found = mask_regions(mask)
    return sorted((int(found.value[i]), int(found.pixels[i]), tuple(found.bbox[i].tolist()),
                   bool(found.touches_border[i]), found.neighbours(i)) for i in range(len(found)))


def labelled_per_value(mask: np.ndarray) -> list[tuple]:
    """The same, one scipy.ndimage.label per value (4-connectivity is its default structure)."""
    height, width = mask.shape
    found = []
    for value in np.unique(mask).tolist():
        labels, count = ndimage.label(mask == value)
        for label in range(1, count + 1):
            inside = labels == label
            ys, xs = np.nonzero(inside)
            ring = ndimage.binary_dilation(inside) & ~inside  # cross-shaped: the 4-neighbours
            bbox = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
            border = bbox[0] == 0 or bbox[1] == 0 or bbox[2] == width - 1 or bbox[3] == height - 1
            found.append((value, len(xs), bbox, border, frozenset(mask[ring].tolist())))
    return sorted(found)


def test_regions_of_a_constructed_mask():
    mask = np.array([
        [6, 6, 6, 6, 6],
        [6, 8, 8, 6, 6],
        [6, 8, 6, 6, 0],
        [0, 0, 0, 0, 0],
    ], dtype=np.uint8)
    assert regions_of(mask) == [
        (0, 6, (0, 2, 4, 3), True, frozenset({6, 8})),
        (6, 11, (0, 0, 4, 2), True, frozenset({0, 8})),
        (8, 3, (1, 1, 2, 2), False, frozenset({0, 6})),
    ]


def test_diagonal_pixels_are_separate_regions_and_equal_values_apart_are_too():
    mask = np.array([
        [1, 0, 1],
        [0, 1, 0],
        [1, 0, 1],
    ], dtype=np.uint8)
    found = mask_regions(mask)
    assert len(found) == 9
    assert sorted(found.pixels.tolist()) == [1] * 9
    centre = int(np.flatnonzero((found.bbox == [1, 1, 1, 1]).all(axis=1))[0])
    assert not found.touches_border[centre] and found.neighbours(centre) == frozenset({0})
    assert found.enclosed_by(0).tolist() == [i == centre for i in range(9)]


def test_a_ring_encloses_its_hole_and_is_enclosed_by_what_surrounds_it():
    mask = np.full((5, 5), 3, dtype=np.uint8)
    mask[1:4, 1:4] = 7
    mask[2, 2] = 3  # a hole of the outer value: its own region, enclosed by 7
    found = mask_regions(mask)
    assert sorted(zip(found.value.tolist(), found.pixels.tolist(), found.enclosed_by(7).tolist(), strict=True)) == [
        (3, 1, True), (3, 16, False), (7, 8, False)]
    assert sorted(zip(found.value.tolist(), found.enclosed_by(3).tolist(), strict=True)) == [
        (3, False), (3, False), (7, True)]  # 3 outside the ring and 3 in its hole: only 3s around it


def test_pixels_of_chosen_regions_paint_exactly_those_pixels():
    mask = np.array([[2, 2, 5], [5, 5, 5], [2, 5, 2]], dtype=np.uint8)
    found = mask_regions(mask)
    chosen = (found.value == 2) & (found.pixels == 1)
    assert found.pixels_of(chosen).astype(int).tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 1]]


@settings(max_examples=300, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 9)), elements=st.integers(0, 3)))
def test_regions_match_scipy_labelling_each_value(mask):
    assert regions_of(mask) == labelled_per_value(mask)
