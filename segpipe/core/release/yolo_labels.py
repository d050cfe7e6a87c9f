"""YOLO segmentation labels traced from a class mask, and the data.yaml that names the classes.

A label line is `<class index> x1 y1 x2 y2 ...`: one polygon, coordinates divided by the image's
width and height. The outline of every 4-connected region is traced along its exact pixel edges
(segpipe/core/release/pixel_outlines.py; regions meeting only at a corner are separate polygons), the same
rings as the shapely union of the region's pixels: sampling its inside at pixel centres gives back
its pixels. YOLO has no holes: a ring inside a region is left out, so a hole of another class is
covered by that class's own, smaller polygon (trainers draw the smaller polygon last), and an
ignored hole reads as the surrounding class.
Class indices are contiguous (0..n-1 in taxonomy id order), as YOLO trainers require.
"""

import functools
from dataclasses import dataclass

import numpy as np
import orjson
import yaml

from segpipe.core.release.pixel_outlines import pixel_rings
from segpipe.core.shared.artefacts import content_digest
from segpipe.core.taxonomy.model import Taxonomy

Ring = list[tuple[float, float]]
COORDINATE_CHARS = 8  # x / width and y / height with six decimals: 0.000000 to 1.000000


@dataclass(frozen=True)
class ClassOutlines:
    """The exterior rings of a mask's regions as flat integer arrays (pixel corners): ring r is
    xs[starts[r]:starts[r + 1]], ys likewise, of mask value values[r]; rings ordered by value, and
    within a value as class_outlines lists them. Flat, so a label is formatted in a few array
    passes and remembered as four lists of numbers rather than a list per vertex."""

    values: np.ndarray
    starts: np.ndarray
    xs: np.ndarray
    ys: np.ndarray

    def rings(self) -> dict[int, list[Ring]]:
        """Mask value -> its rings as lists of (x, y)."""
        points = list(zip(self.xs.astype(float).tolist(), self.ys.astype(float).tolist()))
        starts = self.starts.tolist()
        outlines: dict[int, list[Ring]] = {}
        for ring, value in enumerate(self.values.tolist()):
            outlines.setdefault(value, []).append(points[starts[ring]:starts[ring + 1]])
        return outlines

    def to_json(self) -> dict[str, list[int]]:
        return {name: getattr(self, name).tolist() for name in ("values", "starts", "xs", "ys")}

    @staticmethod
    def from_json(document: dict[str, list[int]]) -> "ClassOutlines":
        return ClassOutlines(*(np.asarray(document[name], np.int64) for name in ("values", "starts", "xs", "ys")))

    @staticmethod
    def of_rings(outlines: dict[int, list[Ring]]) -> "ClassOutlines":
        """From mask value -> rings (whole-number vertices), values in ascending order."""
        rings = [(value, ring) for value in sorted(outlines) for ring in outlines[value]]
        sizes = [len(ring) for _, ring in rings]
        points = np.array([point for _, ring in rings for point in ring], np.int64).reshape(-1, 2)
        return ClassOutlines(np.array([value for value, _ in rings], np.int64), np.concatenate([[0], np.cumsum(sizes)]),
                             points[:, 0], points[:, 1])


def class_exteriors(mask: np.ndarray, ignore_index: int) -> ClassOutlines:
    """The exterior ring of each region of each mask value, in pixel-edge coordinates, without the
    closing point and without collinear vertices, in shapely's normal form (fixed direction, start
    vertex and order of parts, see pixel_outlines); ignore_index has none."""
    rings = pixel_rings(mask, ignore_index)
    exterior = np.flatnonzero(rings.exterior)
    sizes = rings.starts[exterior + 1] - rings.starts[exterior]
    vertices = np.repeat(rings.starts[exterior] - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes) \
        + np.arange(int(sizes.sum()))
    return ClassOutlines(rings.values[exterior].astype(np.int64), np.concatenate([[0], np.cumsum(sizes)]),
                         rings.xs[vertices].astype(np.int64), rings.ys[vertices].astype(np.int64))


def class_outlines(mask: np.ndarray, ignore_index: int) -> dict[int, list[Ring]]:
    """Mask value -> the exterior ring of each of its regions (class_exteriors), as lists of (x, y)."""
    return class_exteriors(mask, ignore_index).rings()


def yolo_label_text(outlines: ClassOutlines, taxonomy: Taxonomy, width: int, height: int) -> str:
    """One line per polygon of a taxonomy class; values the taxonomy does not name are left out.
    Vertices are pixel corners, so each of the frame's width + 1 and height + 1 coordinates is
    formatted once, into a table of fixed-width byte strings the vertices index: formatting every
    vertex took as long as tracing the outlines."""
    index = yolo_class_index(taxonomy)
    named = np.flatnonzero(np.isin(outlines.values, list(index)))
    if not len(named):
        return ""
    xs, ys = _coordinate_table(width), _coordinate_table(height)
    sizes = outlines.starts[named + 1] - outlines.starts[named]
    vertices = np.repeat(outlines.starts[named] - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes) \
        + np.arange(int(sizes.sum()))
    cells = np.empty((len(vertices), 2 * COORDINATE_CHARS + 2), np.uint8)
    cells[:, 0] = cells[:, COORDINATE_CHARS + 1] = ord(" ")
    cells[:, 1:COORDINATE_CHARS + 1] = xs[outlines.xs[vertices]]
    cells[:, COORDINATE_CHARS + 2:] = ys[outlines.ys[vertices]]
    text = cells.tobytes()
    cell = cells.shape[1]
    ends = np.cumsum(sizes).tolist()
    lines, begin = [], 0
    for ring, end in zip(named.tolist(), ends):
        lines.append(f"{index[int(outlines.values[ring])]}{text[begin * cell:end * cell].decode()}\n")
        begin = end
    return "".join(lines)


def label_digest(taxonomy: Taxonomy, width: int, height: int) -> str:
    """What a mask's label text depends on besides the mask: the ignore index (no outlines), the
    YOLO class indices and the image size (the coordinates' divisors)."""
    return content_digest(orjson.dumps([taxonomy.ignore_index, sorted(yolo_class_index(taxonomy).items()), width, height]))


@functools.cache
def _coordinate_table(size: int) -> np.ndarray:
    """Row c: the bytes of f"{c / size:.6f}", for c in 0..size; made once per size (a release's
    images mostly share a few), read-only."""
    table = np.frombuffer("".join(f"{c / size:.6f}" for c in range(size + 1)).encode(), np.uint8)
    return table.reshape(size + 1, COORDINATE_CHARS)


def yolo_class_index(taxonomy: Taxonomy) -> dict[int, int]:
    """Taxonomy class id -> YOLO class index."""
    return {c.id: n for n, c in enumerate(sorted(taxonomy.classes, key=lambda c: c.id))}


def yolo_data_yaml(taxonomy: Taxonomy, splits: list[str]) -> str:
    """Ultralytics' data.yaml for the unzipped release: split folders relative to yolo/ (Ultralytics
    resolves them from the yaml's folder when `path` is absent) and names by YOLO index. Ultralytics
    finds each image's label by replacing `images/` with `labels/` in its path."""
    index = yolo_class_index(taxonomy)
    names = dict(sorted((index[c.id], c.name) for c in taxonomy.classes))
    doc = {split: f"../images/{split}" for split in splits} | {"nc": len(names), "names": names}
    return yaml.safe_dump(doc, sort_keys=False)
