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

import numpy as np
import yaml

from segpipe.core.release.pixel_outlines import pixel_rings
from segpipe.core.taxonomy.model import Taxonomy

Ring = list[tuple[float, float]]


def class_outlines(mask: np.ndarray, ignore_index: int) -> dict[int, list[Ring]]:
    """Mask value -> the exterior ring of each of its regions, in pixel-edge coordinates, without
    the closing point and without collinear vertices, in shapely's normal form (fixed direction, start
    vertex and order of parts, see pixel_outlines); ignore_index has none."""
    rings = pixel_rings(mask, ignore_index)
    points = list(zip(rings.xs.astype(float).tolist(), rings.ys.astype(float).tolist()))
    starts = rings.starts.tolist()
    outlines: dict[int, list[Ring]] = {}
    for ring in np.flatnonzero(rings.exterior).tolist():
        outlines.setdefault(int(rings.values[ring]), []).append(points[starts[ring]:starts[ring + 1]])
    return outlines


def yolo_label_text(outlines: dict[int, list[Ring]], taxonomy: Taxonomy, width: int, height: int) -> str:
    """One line per polygon of a taxonomy class; values the taxonomy does not name are left out.
    Vertices are pixel corners, so each of the frame's width + 1 and height + 1 coordinates is
    formatted once: formatting every vertex took as long as tracing the outlines."""
    index = yolo_class_index(taxonomy)
    xs = [f"{x / width:.6f}" for x in range(width + 1)]
    ys = [f"{y / height:.6f}" for y in range(height + 1)]
    lines = [
        f"{index[value]} " + " ".join(f"{xs[int(x)]} {ys[int(y)]}" for x, y in ring)
        for value in sorted(outlines) if value in index
        for ring in outlines[value]
    ]
    return "".join(f"{line}\n" for line in lines)


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
