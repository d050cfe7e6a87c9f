import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from segpipe.core.release.pixel_outlines import _first_edges, pixel_rings
from segpipe.core.release.yolo_labels import class_outlines
from segpipe_tests.bench.outlines import scene_masks, shapely_class_outlines, shapely_polygons

IGNORE = 255


def traced_holes(mask: np.ndarray) -> dict[int, list]:
    """Value -> its holes, sorted, as lists of (x, y)."""
    rings = pixel_rings(mask, IGNORE)
    holes: dict[int, list] = {}
    for ring in np.flatnonzero(~rings.exterior):
        begin, end = rings.starts[ring], rings.starts[ring + 1]
        holes.setdefault(int(rings.values[ring]), []).append(
            list(zip(rings.xs[begin:end].astype(float).tolist(), rings.ys[begin:end].astype(float).tolist())))
    return {value: sorted(found) for value, found in holes.items()}


def shapely_holes(mask: np.ndarray) -> dict[int, list]:
    found = {value: sorted(hole for _, holes in parts for hole in holes)
             for value, parts in shapely_polygons(mask, IGNORE).items()}
    return {value: holes for value, holes in found.items() if holes}


def assert_same_as_shapely(mask: np.ndarray) -> None:
    assert class_outlines(mask, IGNORE) == shapely_class_outlines(mask, IGNORE)
    assert traced_holes(mask) == shapely_holes(mask)


def test_a_hole_touching_its_regions_outline_at_a_corner_is_a_hole():
    mask = np.zeros((3, 3), np.uint8)
    mask[0, 0] = mask[1, 1] = 4  # the hole (1, 1) meets the outside (0, 0) only at the corner (1, 1)
    assert class_outlines(mask, IGNORE)[0] == [[(0.0, 1.0), (0.0, 3.0), (3.0, 3.0), (3.0, 0.0), (1.0, 0.0), (1.0, 1.0)]]
    assert traced_holes(mask) == {0: [[(1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 2.0)]]}
    assert class_outlines(mask, IGNORE)[4] == [[(1.0, 1.0), (1.0, 2.0), (2.0, 2.0), (2.0, 1.0)],
                                               [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0)]]


def test_regions_meeting_at_a_corner_inside_a_hole_are_separate_polygons():
    mask = np.zeros((6, 6), np.uint8)
    mask[1:5, 1:5] = 5
    mask[2, 2] = mask[3, 3] = 0  # two 0 islands in the 5's hole, touching at the corner (3, 3) ...
    mask[2, 3] = mask[3, 2] = 7  # ... where the two 7 pixels touch too
    outlines = class_outlines(mask, IGNORE)
    assert outlines[0] == [[(3.0, 3.0), (3.0, 4.0), (4.0, 4.0), (4.0, 3.0)], [(2.0, 2.0), (2.0, 3.0), (3.0, 3.0), (3.0, 2.0)],
                           [(0.0, 0.0), (0.0, 6.0), (6.0, 6.0), (6.0, 0.0)]]
    assert outlines[5] == [[(1.0, 1.0), (1.0, 5.0), (5.0, 5.0), (5.0, 1.0)]]
    assert outlines[7] == [[(3.0, 2.0), (3.0, 3.0), (4.0, 3.0), (4.0, 2.0)], [(2.0, 3.0), (2.0, 4.0), (3.0, 4.0), (3.0, 3.0)]]
    assert traced_holes(mask) == {0: [[(1.0, 1.0), (5.0, 1.0), (5.0, 5.0), (1.0, 5.0)]],
                                  5: [[(2.0, 2.0), (4.0, 2.0), (4.0, 4.0), (2.0, 4.0)]]}


def test_an_ignored_or_empty_mask_has_no_rings():
    assert class_outlines(np.full((3, 4), IGNORE, np.uint8), IGNORE) == {}
    assert class_outlines(np.zeros((0, 5), np.uint8), IGNORE) == {}


@settings(max_examples=400, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12)),
              elements=st.sampled_from([0, 1, 2, 3, IGNORE])))
def test_random_small_masks_trace_as_shapely_does(mask):
    assert_same_as_shapely(mask)


@settings(max_examples=200, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 5), st.integers(1, 5)), elements=st.sampled_from([0, 1, 2, IGNORE])),
       st.integers(1, 4), st.lists(st.tuples(st.integers(0, 19), st.integers(0, 19), st.sampled_from([0, 1, 2, IGNORE])),
                                   max_size=30))
def test_blocky_masks_with_speckles_trace_as_shapely_does(blocks, scale, speckles):
    """Regions several pixels wide, with single-pixel holes, islands and corner touches in them."""
    mask = np.kron(blocks, np.ones((scale, scale), np.uint8))
    for row, column, value in speckles:
        if row < mask.shape[0] and column < mask.shape[1]:
            mask[row, column] = value
    assert_same_as_shapely(mask)


@pytest.mark.parametrize("height, width, period", [(1, 1, 1), (6, 7, 1), (8, 8, 2), (9, 5, 3), (1, 9, 1)])
def test_checkerboards_trace_as_shapely_does(height, width, period):
    rows, columns = np.mgrid[0:height, 0:width]
    assert_same_as_shapely(((rows // period + columns // period) % 2).astype(np.uint8))


def test_generated_street_scenes_trace_as_shapely_does(tmp_path):
    scenes = scene_masks(tmp_path, 2, 5)
    for mask, _ in scenes:
        assert len(np.unique(mask)) >= 8
        assert_same_as_shapely(mask)


@given(arrays(np.int64, st.integers(1, 60), elements=st.integers(0, 6)))
def test_each_rings_first_edge_is_np_uniques_however_the_rings_are_numbered(values):
    by_value = np.unique(values, return_inverse=True)[1].ravel()  # labels 0..k-1, not in order of appearance
    _, appearance = np.unique(values, return_index=True)
    in_order = np.argsort(np.argsort(appearance))[by_value]  # as scipy numbers components: by first appearance
    for rings in (by_value, in_order):
        assert np.array_equal(_first_edges(rings), np.unique(rings, return_index=True)[1])
