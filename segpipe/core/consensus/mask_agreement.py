"""How far two masks of one image agree, pixel by pixel: per-class IoU, pixel accuracy, boundary F1.

Annotators agree on most of a frame, so IoUs are counted from the pixels where masks differ,
given each mask's pixels per class (class_pixels, known when the mask was made); boundary F1
measures the outline itself, which IoU barely sees on a large region.
"""

import numpy as np

from segpipe.core.rasterize.label_masks import class_pixels

CLASS_VALUES = 256


def class_iou(
    a: np.ndarray, b: np.ndarray, ignore_index: int,
    a_pixels: np.ndarray | None = None, b_pixels: np.ndarray | None = None, where: np.ndarray | None = None,
) -> dict[int, float]:
    """IoU of every class either mask uses, on the pixels both masks label.

    Counted from the pixels where the masks differ (`where`: flat indices of a superset of them,
    such as an image's disputed pixels; found by one comparison when not given), which are a small
    share of the frame: with each mask's pixels per class given (class_pixels, known when the mask
    was made), nothing else is counted."""
    a_pixels = np.asarray(class_pixels(a)) if a_pixels is None else np.asarray(a_pixels, dtype=np.int64)
    b_pixels = np.asarray(class_pixels(b)) if b_pixels is None else np.asarray(b_pixels, dtype=np.int64)
    where = np.flatnonzero(a != b) if where is None else where
    a_sub, b_sub = a.ravel()[where], b.ravel()[where]
    a_both = a_pixels - np.bincount(a_sub[b_sub == ignore_index], minlength=CLASS_VALUES)
    b_both = b_pixels - np.bincount(b_sub[a_sub == ignore_index], minlength=CLASS_VALUES)
    differ = (a_sub != b_sub) & (a_sub != ignore_index) & (b_sub != ignore_index)
    intersection = a_both - np.bincount(a_sub[differ], minlength=CLASS_VALUES)
    a_both[ignore_index] = b_both[ignore_index] = intersection[ignore_index] = 0
    union = a_both + b_both - intersection
    return {int(c): float(intersection[c] / union[c]) for c in np.flatnonzero(union)}


def mean_iou(
    a: np.ndarray, b: np.ndarray, ignore_index: int,
    a_pixels: np.ndarray | None = None, b_pixels: np.ndarray | None = None, where: np.ndarray | None = None,
) -> float:
    """Mean IoU over the classes either mask uses, on pixels both masks label."""
    ious = class_iou(a, b, ignore_index, a_pixels, b_pixels, where)
    return float(np.mean(list(ious.values()))) if ious else 0.0


def pixel_accuracy(mask: np.ndarray, gold: np.ndarray, ignore_index: int) -> float:
    """Share of gold-labelled pixels the mask labels with the gold class."""
    labelled = gold != ignore_index
    if not labelled.any():
        return 0.0
    return float((mask[labelled] == gold[labelled]).mean())


def label_boundaries(mask: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another value (both sides of every edge between labels)."""
    edge = np.zeros(mask.shape, dtype=bool)
    vertical, horizontal = mask[1:] != mask[:-1], mask[:, 1:] != mask[:, :-1]
    edge[1:] |= vertical
    edge[:-1] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    return edge


def _dilate(binary: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2r+1)-pixel square, as two separable passes of shifted ORs."""
    out = binary.copy()
    for shift in range(1, radius + 1):
        out[shift:] |= binary[:-shift]
        out[:-shift] |= binary[shift:]
    rows = out.copy()
    for shift in range(1, radius + 1):
        out[:, shift:] |= rows[:, :-shift]
        out[:, :-shift] |= rows[:, shift:]
    return out


def boundary_f1(mask: np.ndarray, gold: np.ndarray, ignore_index: int, tolerance: int) -> float:
    """F1 of the mask's label boundaries against gold's, a boundary pixel counting as matched when
    the other has one within `tolerance` pixels (chessboard distance). Only gold-labelled pixels
    take part, as in pixel_accuracy: where gold is ignore, the mask's labels are not judged. IoU
    misses a sloppy outline on a large region; this measures the outline itself."""
    judged = np.where(gold == ignore_index, np.uint8(ignore_index), mask)
    ours, theirs = label_boundaries(judged), label_boundaries(gold)
    if not ours.any() and not theirs.any():
        return 1.0
    if not ours.any() or not theirs.any():
        return 0.0
    precision = float((ours & _dilate(theirs, tolerance)).sum() / ours.sum())
    recall = float((theirs & _dilate(ours, tolerance)).sum() / theirs.sum())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
