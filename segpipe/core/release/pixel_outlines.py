"""Exact pixel-edge outlines of every region of a class mask, traced for all classes at once.

A ring runs along the unit edges between a pixel of its class and one of another value (or the
frame's outside), the class on its left as drawn (y down). Each edge's successor is read off the
2x2 pixels ahead of it, so the whole mask is chained in a few array passes instead of a polygon
union per class. Where two pixels of a class meet only at a corner, the rings are those of the
OGC model (the one shapely/GEOS builds from the union of the pixels): two regions that touch at
a corner get a ring each, and a hole that touches its own region's outline at a corner is a hole,
not a pinch of the outline. Rings are then in shapely's normal form: vertices only where the
direction changes, starting at the smallest (x, y), exteriors clockwise and holes anticlockwise
in (x, y) as numbers.
"""

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, depth_first_order

# Edge directions, each turn left (as drawn, y down) is +1: east, north, west, south.
_DX = np.array([1, 0, -1, 0])
_DY = np.array([0, -1, 0, 1])
_SOUTH = 3


@dataclass(frozen=True)
class PixelRings:
    """Rings as flat arrays: ring r is xs[starts[r]:starts[r + 1]], ys likewise, of mask value
    values[r]; exterior[r] is False for a hole. Rings are ordered by value, exteriors before holes,
    then most vertices first and by descending start vertex: the exteriors of a value in the order
    of the parts of its normalized shapely MultiPolygon."""
    values: np.ndarray
    exterior: np.ndarray
    starts: np.ndarray
    xs: np.ndarray
    ys: np.ndarray


def pixel_rings(mask: np.ndarray, ignore_index: int) -> PixelRings:
    """Every ring (exteriors and holes) of every value's 4-connected regions; ignore_index has none.
    The frame is padded with ignore_index: outside the image reads as an ignored pixel."""
    height = mask.shape[0]
    padded = np.pad(mask, 1, constant_values=ignore_index)
    tail_x, tail_y, direction, value = _boundary_edges(padded, ignore_index)
    if not len(value):
        empty = np.zeros(0, np.int64)
        return PixelRings(empty, np.zeros(0, bool), np.zeros(1, np.int64), empty, empty)
    successor = _successors(padded, tail_x, tail_y, direction, value)
    order, ring_of = _walk_cycles(successor)
    return _normal_form(tail_x[order], tail_y[order], direction[order], value[order], ring_of[order], height)


def _boundary_edges(padded: np.ndarray, ignore_index: int) -> tuple[np.ndarray, ...]:
    """Tail x, tail y, direction and value of each directed unit edge with its value on the left.
    Both sides of a pixel edge are compared on the flat frame, whose padding never differs from
    itself across a row's end."""
    stride, flat = padded.shape[1], padded.ravel()
    across = np.flatnonzero(flat[:-stride] != flat[stride:])  # pixel above a horizontal edge
    along = np.flatnonzero(flat[:-1] != flat[1:])  # pixel left of a vertical edge
    row, column = np.divmod(across, stride)
    line_row, line_column = np.divmod(along, stride)
    tail_x = np.concatenate([column - 1, column, line_column, line_column])
    tail_y = np.concatenate([row, row, line_row - 1, line_row])
    direction = np.repeat(np.array([0, 2, 3, 1], np.int8), [len(row), len(row), len(line_row), len(line_row)])
    value = np.concatenate([flat[across], flat[across + stride], flat[along + 1], flat[along]])
    kept = value != ignore_index
    return tail_x[kept], tail_y[kept], direction[kept], value[kept]


def _successors(padded: np.ndarray, tail_x: np.ndarray, tail_y: np.ndarray, direction: np.ndarray,
                value: np.ndarray) -> np.ndarray:
    """Index of the edge that follows each edge on its ring. At a corner where two pixels of the
    value meet diagonally, an edge first turns left (each pixel keeps its own ring); where that
    closes a ring through the corner twice (both pixels in one region), the pair turns right instead,
    so the ring splits into the outline and the hole that touches it, as GEOS has them."""
    stride = padded.shape[1]
    head_x, head_y = tail_x + _DX[direction], tail_y + _DY[direction]
    keys = (tail_y * stride + tail_x) * 4 + direction
    by_key = np.argsort(keys, kind="stable")  # keys are unique, so any sort gives this order; _boundary_edges
    # lists them as four ascending runs, which a merging sort takes in a few passes (quicksort: 5x longer)
    sorted_keys = keys[by_key]
    head_key = (head_y * stride + head_x) * 4
    corner = head_y * stride + head_x  # the head's top-left pixel in the padded frame
    flat = padded.ravel()
    left_is_value = flat[corner + np.array([1, 0, stride, stride + 1])[direction]] == value
    right_is_value = flat[corner + np.array([stride + 1, 1, 0, stride])[direction]] == value
    turn = np.where(~left_is_value, 1, np.where(right_is_value, 3, 0))
    successor = by_key[np.searchsorted(sorted_keys, head_key + (direction + turn) % 4)]
    diagonal = np.flatnonzero(~left_is_value & right_is_value)
    if len(diagonal):
        rings = _cycle_labels(successor)
        right_turn = by_key[np.searchsorted(sorted_keys, head_key[diagonal] + (direction[diagonal] + 3) % 4)]
        predecessor = np.empty_like(successor)
        predecessor[successor] = np.arange(len(successor))
        pinched = rings[diagonal] == rings[predecessor[right_turn]]
        successor[diagonal[pinched]] = right_turn[pinched]
    return successor


def _cycle_labels(successor: np.ndarray) -> np.ndarray:
    """The ring (cycle of the successor permutation) of each edge, as a label."""
    count = len(successor)
    graph = csr_matrix((np.ones(count, np.int8), successor, np.arange(count + 1)), shape=(count, count))
    return connected_components(graph, directed=True, connection="weak")[1]


def _first_edges(rings: np.ndarray) -> np.ndarray:
    """The first edge of each ring label, by label (np.unique's return_index). scipy numbers the
    components in the order their first node appears, so they are where a label exceeds every
    label before it, found in one pass; any other numbering falls back to np.unique."""
    record = np.flatnonzero(np.r_[True, rings[1:] > np.maximum.accumulate(rings)[:-1]])
    if len(record) == int(rings.max()) + 1 and rings[0] == 0:  # records of 0..k-1 in k steps: each label once, in order
        return record
    return np.unique(rings, return_index=True)[1]


def _walk_cycles(successor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The edges ring by ring in walking order, and each edge's ring: every ring's last edge is
    pointed at the next ring's first, and one depth-first walk follows the chain."""
    rings = _cycle_labels(successor)
    first = _first_edges(rings)
    predecessor = np.empty_like(successor)
    predecessor[successor] = np.arange(len(successor))
    chained = successor.copy()
    chained[predecessor[first]] = np.roll(first, -1)
    last = predecessor[first[-1]]
    count = len(successor)
    indptr = np.arange(count + 1)
    indptr[last + 1:] -= 1
    graph = csr_matrix((np.ones(count - 1, np.int8), np.delete(chained, last), indptr), shape=(count, count))
    return depth_first_order(graph, first[0], directed=True, return_predecessors=False), rings


def _normal_form(x: np.ndarray, y: np.ndarray, direction: np.ndarray, value: np.ndarray, ring: np.ndarray,
                 height: int) -> PixelRings:
    """Edges in walking order -> rings of corner vertices, each rotated to start at its smallest (x, y).
    The edge leaving that vertex heads south on an exterior (clockwise) and east on a hole."""
    begins = np.flatnonzero(np.r_[True, ring[1:] != ring[:-1]])
    ends = np.r_[begins[1:], len(ring)]
    before = np.roll(direction, 1)
    before[begins] = direction[ends - 1]
    corner = direction != before
    x, y, direction, ring = x[corner], y[corner], direction[corner], ring[corner]
    starts = np.flatnonzero(np.r_[True, ring[1:] != ring[:-1]])
    lengths = np.diff(np.r_[starts, len(ring)])
    key = x * (height + 1) + y
    smallest = np.flatnonzero(key == np.repeat(np.minimum.reduceat(key, starts), lengths))
    exterior = direction[smallest] == _SOUTH
    position = np.arange(len(ring)) - np.repeat(starts, lengths)
    rotated = np.repeat(starts, lengths) + (position - np.repeat(smallest - starts, lengths)) % np.repeat(lengths, lengths)
    out_x, out_y = np.empty_like(x), np.empty_like(y)
    out_x[rotated], out_y[rotated] = x, y
    values, first_x, first_y = value[corner][starts], x[smallest], y[smallest]
    ranked = np.lexsort((-first_y, -first_x, -lengths, ~exterior, values))  # no two exteriors of a value share a start
    ranked_lengths = lengths[ranked]
    ranked_starts = np.r_[0, np.cumsum(ranked_lengths)]
    taken = np.arange(len(ring)) + np.repeat(starts[ranked] - ranked_starts[:-1], ranked_lengths)
    return PixelRings(values[ranked], exterior[ranked], ranked_starts, out_x[taken], out_y[taken])
