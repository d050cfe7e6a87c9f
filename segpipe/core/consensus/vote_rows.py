"""The distinct combinations of votes on an image's pixels, without sorting its pixels.

Fusion and the reliability estimate need, per image, each distinct combination of its annotators'
labels (a vote row) and how many pixels got it; fusion also needs which row each disputed pixel
has, to paint the decision back. Annotators agree on most of a frame, so only the disputed pixels
are coded (see fusion.disputed_pixels); the unanimous rest is counted from each mask's class_pixels.
A row is coded one annotator at a time, each step renumbering the combinations seen so far densely
(a bincount, not a sort), so the work is a few passes over the disputed pixels for any panel size.
"""

from dataclasses import dataclass

import numpy as np

CLASS_VALUES = 256


@dataclass(frozen=True)
class ImageVotes:
    """One image's vote rows: `rows` (n, m) label values, `pixels` (n,) how many pixels got each;
    `disputed_row` the row of each disputed pixel (in the order of the image's disputed pixels)."""

    rows: np.ndarray
    pixels: np.ndarray
    disputed_row: np.ndarray


def vote_rows(labels: np.ndarray, first_mask_pixels: np.ndarray) -> ImageVotes:
    """Vote rows of an image from its annotators' labels on the disputed pixels (one row of
    `labels` per annotator, see fusion.disputed_labels) and the first mask's pixels per value:
    off the disputed pixels every annotator gives the first mask's label."""
    codes, rows = _codes(labels)
    disputed_pixels = np.bincount(codes, minlength=len(rows)).astype(np.int64)
    unanimous = np.asarray(first_mask_pixels, dtype=np.int64) - np.bincount(labels[0], minlength=CLASS_VALUES)
    values = np.flatnonzero(unanimous)
    unanimous_rows = np.repeat(values[:, None], labels.shape[0], axis=1).astype(np.uint8)
    return ImageVotes(np.concatenate([rows, unanimous_rows]), np.concatenate([disputed_pixels, unanimous[values]]),
                      codes)


def _codes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's number among the distinct columns of `labels` (m, n), and those distinct
    columns as rows (d, m), ordered by the first annotator's label, then the second's, ..."""
    codes = labels[0]
    rows = np.zeros((1, 0), dtype=np.uint8)
    for i in range(labels.shape[0]):
        span = len(rows) * CLASS_VALUES
        index = np.int32 if span < 2**31 else np.int64  # int32 halves the memory traffic of every pass
        combined = codes if i == 0 else codes.astype(index, copy=False) * CLASS_VALUES + labels[i]
        seen = np.flatnonzero(np.bincount(combined, minlength=span))
        renumber = np.zeros(span, dtype=index)
        renumber[seen] = np.arange(len(seen), dtype=index)
        codes = np.take(renumber, combined)
        rows = np.concatenate([rows[seen // CLASS_VALUES], (seen % CLASS_VALUES).astype(np.uint8)[:, None]], axis=1)
    return codes, rows
