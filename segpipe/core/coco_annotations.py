"""COCO annotations of a released image, in the form its mask came from.

An image whose mask one annotator drew from polygons (consensus "single" or "gold") gets one
annotation per drawn shape of a trainable class, its rings as COCO polygons, so a detector keeps
the annotator's geometry and the objects apart; a crowd shape gets `iscrowd: 1` and an RLE of its
pixels, as COCO requires. A fused mask, or one read from mask files, has no shapes behind its
pixels, and gets one RLE per class present (COCO-Stuff style).

area and bbox of a drawn shape are those of the pixels segpipe's raster rule paints for that shape
alone (Pillow's scan conversion, see raster.py), so they agree with masks/; pycocotools'
rasterization of the same polygon differs by a fraction of a pixel along the outline.
"""

import math

import numpy as np
import polars as pl

from segpipe.core.raster import paint_in_order, painted_in_order
from segpipe.core.rle import encode_rle
from segpipe.core.taxonomy import Taxonomy

SHAPE_COLUMNS = ["entry_id", "shape_index", "kind", "rings", "class_id", "mapping", "is_crowd", "z_order"]
POLYGON_SOURCES = ("single", "gold")
DRAWN_KINDS = ("polygon", "box")


def released_shapes(consensus: pl.DataFrame, annotation_masks: pl.DataFrame, mapped_shapes: pl.DataFrame) -> pl.DataFrame:
    """The mapped shapes (SHAPE_COLUMNS) behind each accepted single or gold image's mask, keyed by
    that mask_key: the released mask is the entry's own, so its key names the entry. Images whose
    entry has a mask shape are left out: their pixels did not come from polygons."""
    entries = (consensus.filter((pl.col("status") == "accepted") & pl.col("mask_source").is_in(POLYGON_SOURCES))
               .select("mask_key").join(annotation_masks.select("mask_key", "entry_id"), on="mask_key"))
    shapes = mapped_shapes.select(SHAPE_COLUMNS).join(entries, on="entry_id")
    from_masks = shapes.filter(pl.col("kind") == "mask").select("entry_id").unique()
    return shapes.join(from_masks, on="entry_id", how="anti").sort("mask_key", "z_order", "shape_index")


def shape_annotations(shapes: pl.DataFrame, taxonomy: Taxonomy, width: int, height: int) -> list[dict]:
    """One COCO annotation (category_id, segmentation, area, bbox, iscrowd) per shape of a trainable
    class that the raster rule paints, in painter's order; shapes that cover no pixel are left out."""
    box_class_ids = frozenset(c.id for c in taxonomy.classes if c.rasterize_boxes)
    painted = painted_in_order(shapes, box_class_ids)
    found = []
    for kind, rings, class_id, mapping, is_crowd in painted.select(
            "kind", "rings", "class_id", "mapping", "is_crowd").iter_rows():
        if mapping != "mapped" or class_id not in taxonomy.class_ids:
            continue
        pixels, left, top = _shape_pixels(kind, rings, width, height)
        if not pixels.any():
            continue
        rows, columns = np.nonzero(pixels)
        bbox = [int(left + columns.min()), int(top + rows.min()),
                int(columns.max() - columns.min() + 1), int(rows.max() - rows.min() + 1)]
        if is_crowd:
            frame = np.zeros((height, width), dtype=bool)
            frame[top:top + pixels.shape[0], left:left + pixels.shape[1]] = pixels
            segmentation: dict | list = encode_rle(frame)
        else:
            segmentation = [list(ring) for ring in rings]
        found.append({"category_id": class_id, "segmentation": segmentation, "area": int(pixels.sum()),
                      "bbox": bbox, "iscrowd": int(is_crowd)})
    return found


def _shape_pixels(kind: str, rings: list[list[float]], width: int, height: int) -> tuple[np.ndarray, int, int]:
    """The pixels one shape paints, on the smallest window of the frame holding its rings, and the
    window's (left, top): drawing a shape on the whole frame would cost a frame per shape."""
    xs = [x for ring in rings for x in ring[0::2]]
    ys = [y for ring in rings for y in ring[1::2]]
    left, top = max(0, math.floor(min(xs)) - 1), max(0, math.floor(min(ys)) - 1)
    right, bottom = min(width, math.ceil(max(xs)) + 2), min(height, math.ceil(max(ys)) + 2)
    if right <= left or bottom <= top:
        return np.zeros((0, 0), dtype=bool), 0, 0
    shifted = [[v - (left if i % 2 == 0 else top) for i, v in enumerate(ring)] for ring in rings]
    window = pl.DataFrame({"kind": [kind], "fill": [1], "rings": [shifted], "mask_box": [None], "mask_counts": [None]},
                          schema={"kind": pl.String, "fill": pl.Int64, "rings": pl.List(pl.List(pl.Float64)),
                                  "mask_box": pl.List(pl.Int64), "mask_counts": pl.List(pl.UInt32)})
    return paint_in_order(window, right - left, bottom - top, 0) == 1, left, top
