"""COCO run-length encoding of binary masks (column-major, compressed counts string).

Same encoding as pycocotools' `mask.encode`, so the release's coco.json opens in any COCO
tool; written here because pycocotools is a heavy build dependency for 30 lines.
"""

import numpy as np


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


def _counts_to_string(counts: list[int]) -> str:
    out = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)
