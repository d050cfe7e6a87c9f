"""The plurality vote: each pixel keeps the class with the most vote weight, if it leads alone
with at least `quorum` of the image's total weight; otherwise it becomes ignore, because a disputed
pixel is worse for training than none. Under consensus.fusion "plurality" every vote weighs 1;
under "honeypot_weighted" it weighs the annotator's honeypot mean IoU (honeypots are scored first,
so the weights are known before any image is fused). Its agreement map, the share of the votes
behind each pixel's leading class, is drawn for every fused image whatever the rule.
"""

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import polars as pl

WEIGHT_SCALE = 1000  # vote weights are whole thousandths, so equal weighted sums are exactly equal: a tie


def disputed_pixels(masks: list[np.ndarray]) -> np.ndarray:
    """Flat indices of the pixels not every mask labels alike: annotators agree on most of a frame,
    and fusion and IoU need to look only at the rest."""
    first = masks[0].ravel()
    differ = np.zeros(first.shape, dtype=bool)
    for other in masks[1:]:
        differ |= first != other.ravel()
    return np.flatnonzero(differ)


def disputed_labels(masks: list[np.ndarray], disputed: np.ndarray) -> np.ndarray:
    """Each mask's labels on the disputed pixels, one row per mask: all that fusion and IoU read."""
    labels = np.empty((len(masks), disputed.size), dtype=np.uint8)
    for row, mask in zip(labels, masks, strict=True):
        np.take(mask.ravel(), disputed, out=row)
    return labels


def fuse_masks(
    masks: list[np.ndarray], quorum: float, ignore_index: int, weights: Sequence[int] | None = None,
) -> np.ndarray:
    """Weighted plurality vote over masks of one image; ignore-index votes abstain (see fuse_with_agreement)."""
    return fuse_with_agreement(masks, quorum, ignore_index, weights)[0]


def fuse_with_agreement(
    masks: list[np.ndarray], quorum: float, ignore_index: int, weights: Sequence[int] | None = None,
    disputed: np.ndarray | None = None, labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The fused mask and the agreement map of one image's masks.

    Fusion: a pixel keeps the class with the most vote weight if it leads alone and has at least
    `quorum` of the total weight, else ignore. weights: each mask's vote as a positive whole number
    (1 each when not given: a plain plurality); whole, so that equal sums tie exactly. A pixel all
    annotators label alike wins with the whole weight (and `needed` never exceeds it), so only the
    disputed pixels are counted (`disputed` and `labels`, see disputed_labels, when the caller has
    them), per annotator rather than per class: votes[i] is the weight behind the class annotator i
    chose. The map shows, per pixel as 0..255, the share of the weight behind its leading class:
    255 where all agree, darker where they split; what a reviewer looks at first."""
    weights = np.ones(len(masks), dtype=np.int64) if weights is None else np.asarray(weights, dtype=np.int64)
    total = int(weights.sum())
    needed = max(1, int(np.ceil(quorum * total)))
    disputed = disputed_pixels(masks) if disputed is None else disputed
    labels = disputed_labels(masks, disputed) if labels is None else labels
    valid = labels != ignore_index
    weights = weights.astype(np.min_scalar_type(total))
    votes = valid * weights[:, None]
    for i, j in combinations(range(len(labels)), 2):
        same = (labels[i] == labels[j]) & valid[i]
        votes[i] += same * weights[j]
        votes[j] += same * weights[i]
    best = votes.max(axis=0)
    winner = labels[-1]
    for i in range(len(labels) - 2, -1, -1):  # the first annotator whose class has the most weight
        winner = np.where(votes[i] == best, labels[i], winner)
    contested = np.zeros(best.shape, dtype=bool)
    for row, vote, is_valid in zip(labels, votes, valid, strict=True):
        contested |= (vote == best) & (row != winner) & is_valid
    share = np.round(255.0 * np.arange(total + 1) / total).astype(np.uint8)
    fused, shown = masks[0].copy(), np.full(masks[0].shape, 255, dtype=np.uint8)
    fused.ravel()[disputed] = np.where((best >= needed) & ~contested, winner, np.uint8(ignore_index))
    shown.ravel()[disputed] = share[best]
    return fused, shown


def honeypot_weights(board: pl.DataFrame) -> tuple[dict[str, int], int]:
    """Each scored annotator's vote weight (honeypot mean IoU in thousandths), and the weight of an
    annotator with no honeypot: the scored annotators' mean, since an unknown annotator is most
    likely as reliable as the typical known one (the whole weight when none is scored). A weight
    never falls below one thousandth, so an image's total weight is never zero and a pixel all its
    annotators agree on always keeps its class."""
    def weight(iou: float) -> int:
        return max(1, round(iou * WEIGHT_SCALE))

    scored = dict(board.select("annotator", "mean_iou").iter_rows())
    unscored = weight(sum(scored.values()) / len(scored)) if scored else WEIGHT_SCALE
    return {annotator: weight(iou) for annotator, iou in scored.items()}, unscored
