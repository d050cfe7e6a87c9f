"""COCO annotations of a released image, in the form its mask came from.

An image whose mask one annotator drew from polygons (consensus "single" or "gold") gets one
annotation per drawn shape of a trainable class, its rings as COCO polygons, so a detector keeps
the annotator's geometry and the objects apart; a crowd shape gets `iscrowd: 1` and an RLE of its
pixels, as COCO requires. A shape that arrived as pixels (a COCO RLE, a region of a mask file)
gets an RLE of them, with `iscrowd` as the source said, so a COCO export's crowds stay crowds. A
fused mask has no shapes behind its pixels, and gets one RLE per class present (COCO-Stuff style).

area and bbox of a drawn shape are those of the pixels segpipe's raster rule paints for that shape
alone (Pillow's scan conversion, see raster.py), so they agree with masks/; pycocotools'
rasterization of the same polygon differs by a fraction of a pixel along the outline.
"""

import math

import numpy as np
import polars as pl
from PIL import Image, ImageDraw

from segpipe.core.ingest.formats.annotation import BoxMask
from segpipe.core.rasterize.raster import draw_rings, painted_in_order
from segpipe.core.shared.rle import encode_window_rle
from segpipe.core.taxonomy.model import Taxonomy

SHAPE_COLUMNS = ["entry_id", "shape_index", "kind", "rings", "mask_box", "mask_counts", "class_id", "mapping", "is_crowd",
                 "z_order"]
POLYGON_SOURCES = ("single", "gold", "reviewed")  # the released mask is one entry's own


def released_shapes(consensus: pl.DataFrame, annotation_masks: pl.DataFrame, mapped_shapes: pl.DataFrame) -> pl.DataFrame:
    """The mapped shapes (SHAPE_COLUMNS) behind each accepted single, gold or reviewed image's mask, keyed by
    that mask_key: the released mask is the entry's own, so its key names the entry."""
    entries = (consensus.filter((pl.col("status") == "accepted") & pl.col("mask_source").is_in(POLYGON_SOURCES))
               .select("mask_key").join(annotation_masks.select("mask_key", "entry_id"), on="mask_key"))
    return mapped_shapes.select(SHAPE_COLUMNS).join(entries, on="entry_id").sort("mask_key", "z_order", "shape_index")



def shape_annotations(shapes: pl.DataFrame, taxonomy: Taxonomy, width: int, height: int) -> list[dict]:
    """One COCO annotation (category_id, segmentation, area, bbox, iscrowd) per shape of a trainable
    class that the raster rule paints, in painter's order; shapes that cover no pixel are left out."""
    box_class_ids = frozenset(c.id for c in taxonomy.classes if c.rasterize_boxes)
    painted = painted_in_order(shapes, box_class_ids)
    class_ids = taxonomy.class_ids
    found = []
    for kind, rings, box, counts, class_id, mapping, is_crowd in painted.select(
            "kind", "rings", "mask_box", "mask_counts", "class_id", "mapping", "is_crowd").iter_rows():
        if mapping != "mapped" or class_id not in class_ids:
            continue
        pixels, left, top = (_mask_pixels(box, counts, width, height) if kind == "mask"
                             else _shape_pixels(rings, width, height))
        rows, columns = pixels.any(axis=1), pixels.any(axis=0)
        if not rows.any():
            continue
        first_row, first_column = int(rows.argmax()), int(columns.argmax())
        bbox = [left + first_column, top + first_row, int(columns.size - columns[::-1].argmax()) - first_column,
                int(rows.size - rows[::-1].argmax()) - first_row]
        if is_crowd or kind == "mask":
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


def _mask_pixels(box: list[int], counts: list[int], width: int, height: int) -> tuple[np.ndarray, int, int]:
    """The pixels a mask shape paints (its runs over its box), clipped to the frame, and the box's (left, top)."""
    left, top, box_width, box_height = box
    pixels = BoxMask(left, top, box_width, box_height, np.asarray(counts, dtype=np.uint32)).to_array()
    clipped_left, clipped_top = max(0, left), max(0, top)
    pixels = pixels[clipped_top - top:max(0, height - top), clipped_left - left:max(0, width - left)]
    return pixels, clipped_left, clipped_top
