"""Connected regions of a class mask: every 4-connected patch of one value, for all values at once.

QA rules about a mask's structure (fragments a rasterizer left, a class enclosed by another) need
its regions. Labelling each class separately walks the 2 MP mask once per class; here the mask is
cut into runs (maximal equal-valued stretches of a row), runs of one value that overlap in adjacent
rows are joined, and the run graph's connected components are the regions. A street mask has a few
ten thousand runs, so the graph is small and one pass serves every value.
"""

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components


@dataclass(frozen=True)
class MaskRegions:
    """Regions by index: value, pixel count, bounding box (x0, y0, x1, y1, inclusive), whether the
    region reaches the image border, and its outside neighbourhood as (region, neighbour value)
    pairs, sorted and unique. Runs are kept so pixels of chosen regions can be drawn."""

    value: np.ndarray  # uint8 (n,)
    pixels: np.ndarray  # int64 (n,)
    bbox: np.ndarray  # int64 (n, 4)
    touches_border: np.ndarray  # bool (n,)
    neighbour_region: np.ndarray  # int64 (m,)
    neighbour_value: np.ndarray  # uint8 (m,)
    run_region: np.ndarray  # int64 (runs,): the region of each run, runs in row-major order
    run_length: np.ndarray  # int64 (runs,)
    shape: tuple[int, int]

    def __len__(self) -> int:
        return len(self.value)

    def neighbours(self, region: int) -> frozenset[int]:
        """Values of the 4-neighbours outside the region (never its own value)."""
        lo, hi = np.searchsorted(self.neighbour_region, [region, region + 1])
        return frozenset(self.neighbour_value[lo:hi].tolist())

    def enclosed_by(self, value: int) -> np.ndarray:
        """Per region: wholly surrounded by `value` (every outside neighbour is it, off the border)."""
        count = np.bincount(self.neighbour_region, minlength=len(self))
        other = np.bincount(self.neighbour_region, weights=self.neighbour_value != value, minlength=len(self))
        return (count > 0) & (other == 0) & ~self.touches_border

    def pixels_of(self, chosen: np.ndarray) -> np.ndarray:
        """A boolean image of the pixels of the chosen regions (a boolean per region)."""
        return np.repeat(chosen[self.run_region], self.run_length).reshape(self.shape)


def mask_regions(mask: np.ndarray) -> MaskRegions:
    """The 4-connected regions of equal value of a 2-D uint8 mask."""
    height, width = mask.shape
    flat = np.ascontiguousarray(mask).ravel()
    starts_run = np.empty(flat.size, dtype=bool)
    starts_run[0] = True
    np.not_equal(flat[1:], flat[:-1], out=starts_run[1:])
    starts_run[::width] = True
    start = np.flatnonzero(starts_run)
    run_value = flat[start]
    run_length = np.diff(start, append=flat.size)
    # Below the first row, the pair (run here, run above) changes only where a run starts in either
    # row, so one position per stretch of constant pair stands for all its vertical neighbours.
    stretch = np.flatnonzero(starts_run[width:] | starts_run[:-width]) + width
    below = np.searchsorted(start, stretch, side="right") - 1
    above = np.searchsorted(start, stretch - width, side="right") - 1
    same = flat[stretch] == flat[stretch - width]
    runs = len(start)
    graph = coo_array((np.ones(int(same.sum()), dtype=np.int8), (below[same], above[same])), shape=(runs, runs))
    count, run_region = connected_components(graph, directed=False)
    run_region = run_region.astype(np.int64)

    order = np.argsort(run_region, kind="stable")
    first = np.searchsorted(run_region[order], np.arange(count))
    x0 = start % width
    y = start // width
    x1 = x0 + run_length - 1
    bbox = np.stack([np.minimum.reduceat(x0[order], first), np.minimum.reduceat(y[order], first),
                     np.maximum.reduceat(x1[order], first), np.maximum.reduceat(y[order], first)], axis=1)
    touches_border = (bbox[:, 0] == 0) | (bbox[:, 1] == 0) | (bbox[:, 2] == width - 1) | (bbox[:, 3] == height - 1)

    inside_row = np.flatnonzero(x0 > 0)  # a run with a left neighbour: a different value by construction
    differ = ~same
    pairs_region = np.concatenate([run_region[inside_row], run_region[inside_row - 1],
                                   run_region[below[differ]], run_region[above[differ]]])
    pairs_value = np.concatenate([run_value[inside_row - 1], run_value[inside_row],
                                  run_value[above[differ]], run_value[below[differ]]])
    pairs = np.unique(pairs_region * 256 + pairs_value)
    return MaskRegions(
        value=run_value[order[first]], pixels=np.bincount(run_region, weights=run_length, minlength=count).astype(np.int64),
        bbox=bbox.astype(np.int64), touches_border=touches_border, neighbour_region=pairs // 256,
        neighbour_value=(pairs % 256).astype(np.uint8), run_region=run_region, run_length=run_length.astype(np.int64),
        shape=(height, width))
