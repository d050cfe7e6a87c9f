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
from PIL import Image, ImageDraw

from segpipe.core.raster import draw_rings, painted_in_order
from segpipe.core.rle import encode_window_rle
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
    class_ids = taxonomy.class_ids
    found = []
    for rings, class_id, mapping, is_crowd in painted.select("rings", "class_id", "mapping", "is_crowd").iter_rows():
        if mapping != "mapped" or class_id not in class_ids:
            continue
        pixels, left, top = _shape_pixels(rings, width, height)
        rows, columns = pixels.any(axis=1), pixels.any(axis=0)
        if not rows.any():
            continue
        first_row, first_column = int(rows.argmax()), int(columns.argmax())
        bbox = [left + first_column, top + first_row, int(columns.size - columns[::-1].argmax()) - first_column,
                int(rows.size - rows[::-1].argmax()) - first_row]
        if is_crowd:
            segmentation: dict | list = encode_window_rle(pixels, left, top, width, height)
        else:
            segmentation = [list(ring) for ring in rings]
        found.append({"category_id": class_id, "segmentation": segmentation, "area": int(np.count_nonzero(pixels)),
                      "bbox": bbox, "iscrowd": int(is_crowd)})
    return found


def _shape_pixels(rings: list[list[float]], width: int, height: int) -> tuple[np.ndarray, int, int]:
    """The pixels one polygon or box paints, on the smallest window of the frame holding its rings,
    and the window's (left, top): drawing a shape on the whole frame would cost a frame per shape."""
    coordinates = [np.asarray(ring, dtype=np.float64) for ring in rings]
    xs = np.concatenate([ring[0::2] for ring in coordinates])
    ys = np.concatenate([ring[1::2] for ring in coordinates])
    left, top = max(0, math.floor(xs.min()) - 1), max(0, math.floor(ys.min()) - 1)
    right, bottom = min(width, math.ceil(xs.max()) + 2), min(height, math.ceil(ys.max()) + 2)
    if right <= left or bottom <= top:
        return np.zeros((0, 0), dtype=bool), 0, 0
    for ring in coordinates:
        ring[0::2] -= left
        ring[1::2] -= top
    window = Image.new("L", (right - left, bottom - top), 0)
    draw_rings(ImageDraw.Draw(window), [ring.tolist() for ring in coordinates], 1)
    return np.asarray(window).view(bool), left, top
