"""YOLO segmentation labels traced from a class mask, and the data.yaml that names the classes.

A label line is `<class index> x1 y1 x2 y2 ...`: one polygon, coordinates divided by the image's
width and height. Each class's pixels are the union of their row runs (unit-height boxes, exact
pixel edges), so the outline of every 4-connected region is exact (regions meeting only at a
corner are separate polygons): sampling its inside at pixel centres gives back its pixels. YOLO has no holes: a ring inside a region is left out, so a
hole of another class is covered by that class's own, smaller polygon (trainers draw the smaller
polygon last), and an ignored hole reads as the surrounding class.
Class indices are contiguous (0..n-1 in taxonomy id order), as YOLO trainers require.
"""

import numpy as np
import shapely
import yaml

from segpipe.core.taxonomy import Taxonomy

Ring = list[tuple[float, float]]


def class_outlines(mask: np.ndarray, ignore_index: int) -> dict[int, list[Ring]]:
    """Mask value -> the exterior ring of each of its regions, in pixel-edge coordinates, without
    the closing point and without collinear vertices, in shapely's normal form (fixed direction, start
    vertex and order of parts); ignore_index has none."""
    height, width = mask.shape
    edges = np.ones((height, width + 1), bool)
    edges[:, 1:-1] = mask[:, 1:] != mask[:, :-1]
    rows, starts_and_ends = np.nonzero(edges)
    per_row = np.split(starts_and_ends, np.flatnonzero(np.diff(rows)) + 1)
    x0 = np.concatenate([cuts[:-1] for cuts in per_row])
    x1 = np.concatenate([cuts[1:] for cuts in per_row])
    y0 = np.repeat(np.arange(height), [len(cuts) - 1 for cuts in per_row])
    values = mask[y0, x0]
    outlines = {}
    for value in np.unique(values).tolist():
        if value == ignore_index:
            continue
        chosen = values == value
        union = shapely.union_all(shapely.box(x0[chosen], y0[chosen], x1[chosen], y0[chosen] + 1))
        canonical = shapely.normalize(shapely.simplify(union, 0))  # GEOS's order and start point vary, these do not
        parts = canonical.geoms if isinstance(canonical, shapely.MultiPolygon) else [canonical]
        outlines[value] = [[(float(x), float(y)) for x, y in part.exterior.coords[:-1]] for part in parts]
    return outlines


def yolo_label_text(outlines: dict[int, list[Ring]], taxonomy: Taxonomy, width: int, height: int) -> str:
    """One line per polygon of a taxonomy class; values the taxonomy does not name are left out."""
    index = yolo_class_index(taxonomy)
    lines = [
        f"{index[value]} " + " ".join(f"{x / width:.6f} {y / height:.6f}" for x, y in ring)
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
