"""COCO run-length encoding of binary masks (column-major, compressed counts string).

Same encoding as pycocotools' `mask.encode`/`decode`, so the release's coco.json opens in any
COCO tool and COCO inputs read here as they read there; written here because pycocotools is a
heavy build dependency for a few dozen lines.
"""

import numpy as np

from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import MALFORMED_MASK

# Twice Pillow's default MAX_IMAGE_PIXELS: Pillow refuses to open any image larger, so a mask
# this large cannot belong to an image the pipeline accepts, and decoding it would only waste memory.
MAX_RLE_PIXELS = 2 * 89_478_485


def encode_rle(binary: np.ndarray) -> dict:
    """{"size": [h, w], "counts": str} for a 2-D boolean mask."""
    height, width = binary.shape
    flat = np.asarray(binary, dtype=bool).ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], changes, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts.insert(0, 0)
    return {"size": [height, width], "counts": _counts_to_string(counts)}


def encode_window_rle(window: np.ndarray, left: int, top: int, width: int, height: int) -> dict:
    """encode_rle of a width x height frame that is False outside `window`, placed with its top-left
    pixel at (left, top): the runs of a small shape come from its window alone, so a crowd does not
    cost a frame. Each window column is closed by a False row at both ends, so its runs end in it;
    the gaps between columns are the frame's rows outside the window; a run that ends a column and
    one that starts the next meet in the frame when the window spans its full height."""
    rows, columns = window.shape
    padded = np.zeros((columns, rows + 2), dtype=bool)
    padded[:, 1:-1] = window.T
    flat = padded.ravel()
    column, row = np.divmod(np.flatnonzero(flat[1:] != flat[:-1]) + 1, rows + 2)
    edges = (left + column) * height + top + row - 1
    touching = np.flatnonzero(edges[1:] == edges[:-1])
    edges = np.delete(edges, np.concatenate((touching, touching + 1)))
    counts = np.diff(np.concatenate(([0], edges, [width * height])))
    if counts.size > 1 and counts[-1] == 0:
        counts = counts[:-1]
    return {"size": [height, width], "counts": _counts_to_string(counts)}


def encode_value_rles(mask: np.ndarray) -> dict[int, dict]:
    """For every value of a 2-D label mask, the COCO RLE, area and bbox of its pixels, from one
    column-major pass over the mask: the RLE of value v equals encode_rle(mask == v), but the
    frame is scanned once for all values instead of once per value."""
    height, width = mask.shape
    flat = np.ascontiguousarray(mask.T).ravel()
    starts = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1))
    ends = np.append(starts[1:], flat.size)
    values = flat[starts]
    order = np.argsort(values, kind="stable")
    split = np.flatnonzero(np.diff(values[order])) + 1
    found = {}
    for runs in np.split(order, split):
        run_starts, run_ends = starts[runs], ends[runs]
        bounds = np.concatenate(([0], np.column_stack((run_starts, run_ends)).ravel(), [flat.size]))
        counts = np.diff(bounds)
        if counts[-1] == 0:
            counts = counts[:-1]
        first_column, last_column = run_starts // height, (run_ends - 1) // height
        wraps = last_column > first_column
        top = np.where(wraps, 0, run_starts % height).min()
        bottom = np.where(wraps, height - 1, (run_ends - 1) % height).max()
        left, right = first_column.min(), last_column.max()
        found[int(values[runs[0]])] = {
            "segmentation": {"size": [height, width], "counts": _counts_to_string(counts)},
            "area": int((run_ends - run_starts).sum()),
            "bbox": [int(left), int(top), int(right - left + 1), int(bottom - top + 1)],
        }
    return found


def _counts_to_string(counts: list[int] | np.ndarray) -> str:
    """pycocotools' compressed counts: each count (from the 4th on, as the difference to the count
    two before) in 5-bit little-endian groups, 0x20 marking that another group follows, + 48.
    Computed a group position at a time over all counts, since masks have thousands of runs."""
    counts = np.asarray(counts, dtype=np.int64)
    values = counts.copy()
    values[3:] -= counts[1:-2]
    alive = np.ones(values.size, dtype=bool)
    groups, emitted = [], []
    while alive.any():
        group = values & 0x1F
        values = values >> 5
        more = np.where(group & 0x10, values != -1, values != 0) & alive
        groups.append(np.where(more, group | 0x20, group) + 48)
        emitted.append(alive)
        alive = more
    if not groups:
        return ""
    chars = np.stack(groups, axis=1)[np.stack(emitted, axis=1)]
    return chars.astype(np.uint8).tobytes().decode("ascii")


def rle_size(rle: dict, where: str) -> tuple[int, int]:
    """The (height, width) of a COCO RLE, validated before anything is allocated for it."""
    size = rle.get("size")
    if not isinstance(size, list) or len(size) != 2 or not all(type(v) is int and v > 0 for v in size):
        raise InputError(MALFORMED_MASK, f"{where} has an RLE size {size!r}, not [height, width] positive integers")
    height, width = size
    if height * width > MAX_RLE_PIXELS:
        raise InputError(MALFORMED_MASK, f"{where} has an RLE of {height}x{width} pixels, over {MAX_RLE_PIXELS}")
    return height, width


def decode_rle(rle: dict, where: str) -> np.ndarray:
    """The (h, w) boolean mask of a COCO RLE, compressed (counts a string) or not (a list of ints).

    Counts alternate background and foreground runs over the column-major pixels, background
    first. They must cover the mask exactly: a short or long RLE is corrupt, and pycocotools
    would silently pad or truncate it.
    """
    height, width = rle_size(rle, where)
    counts = rle.get("counts")
    if isinstance(counts, str):
        counts = _string_to_counts(counts, where)
    elif not isinstance(counts, list) or not all(type(c) is int for c in counts):
        raise InputError(MALFORMED_MASK, f"{where} has RLE counts that are neither a string nor a list of integers")
    if any(c < 0 for c in counts):
        raise InputError(MALFORMED_MASK, f"{where} has a negative RLE count")
    if sum(counts) != height * width:
        raise InputError(MALFORMED_MASK, (
            f"{where} has RLE counts summing to {sum(counts)}, not {height}x{width} = {height * width} pixels"))
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    return np.repeat(values, counts).reshape((height, width), order="F")


def _string_to_counts(text: str, where: str) -> list[int]:
    """Invert `_counts_to_string` (pycocotools' rleFrString): 5 bits per character with a
    continuation bit, sign-extended, and counts after the third stored as the difference from
    the count two before."""
    counts: list[int] = []
    value = shift = 0
    for char in text:
        code = ord(char) - 48
        if not 0 <= code < 64:
            raise InputError(MALFORMED_MASK, f"{where} has a compressed RLE with the invalid character {char!r}")
        value |= (code & 0x1F) << shift
        shift += 5
        if code & 0x20:
            continue
        if code & 0x10:
            value |= -1 << shift
        counts.append(value + counts[-2] if len(counts) > 2 else value)
        value = shift = 0
    if shift:
        raise InputError(MALFORMED_MASK, f"{where} has a compressed RLE that ends inside a count")
    return counts
