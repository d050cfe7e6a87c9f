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
        if kind == "mask":
            annotation = _pixel_annotation(*_mask_pixels(box, counts, width, height), width, height, class_id, is_crowd)
        elif (window := _shape_window(rings, width, height)) is None or (extent := window[0].getbbox()) is None:
            annotation = None
        elif is_crowd:
            image, left, top = window
            annotation = _pixel_annotation(np.asarray(image).view(bool), left, top, width, height, class_id, is_crowd)
        else:
            (image, left, top), (x0, y0, x1, y1) = window, extent
            annotation = {"category_id": class_id, "segmentation": [list(ring) for ring in rings],
                          "area": image.histogram()[1], "bbox": [left + x0, top + y0, x1 - x0, y1 - y0], "iscrowd": 0}
        if annotation is not None:
            found.append(annotation)
    return found


def _pixel_annotation(pixels: np.ndarray, left: int, top: int, width: int, height: int, class_id: int,
                      is_crowd: bool) -> dict | None:
    """The annotation of a shape's pixels (on a window at left, top) as an RLE; None when it has none."""
    rows, columns = pixels.any(axis=1), pixels.any(axis=0)
    if not rows.any():
        return None
    first_row, first_column = int(rows.argmax()), int(columns.argmax())
    bbox = [left + first_column, top + first_row, int(columns.size - columns[::-1].argmax()) - first_column,
            int(rows.size - rows[::-1].argmax()) - first_row]
    return {"category_id": class_id, "segmentation": encode_window_rle(pixels, left, top, width, height),
            "area": int(np.count_nonzero(pixels)), "bbox": bbox, "iscrowd": int(is_crowd)}


def _shape_window(rings: list[list[float]], width: int, height: int) -> tuple[Image.Image, int, int] | None:
    """One polygon or box painted (1 on 0) on the smallest window of the frame holding its rings, and
    the window's (left, top); None when the rings lie outside the frame. Pillow measures the window
    (getbbox, histogram) without a copy into numpy: a shape's measuring costs about as much as its drawing."""
    xs = [x for ring in rings for x in ring[0::2]]
    ys = [y for ring in rings for y in ring[1::2]]
    left, top = max(0, math.floor(min(xs)) - 1), max(0, math.floor(min(ys)) - 1)
    right, bottom = min(width, math.ceil(max(xs)) + 2), min(height, math.ceil(max(ys)) + 2)
    if right <= left or bottom <= top:
        return None
    window = Image.new("L", (right - left, bottom - top), 0)
    draw_rings(ImageDraw.Draw(window), rings, 1, (left, top))
    return window, left, top


def _mask_pixels(box: list[int], counts: list[int], width: int, height: int) -> tuple[np.ndarray, int, int]:
    """The pixels a mask shape paints (its runs over its box), clipped to the frame, and the box's (left, top)."""
    left, top, box_width, box_height = box
    pixels = BoxMask(left, top, box_width, box_height, np.asarray(counts, dtype=np.uint32)).to_array()
    clipped_left, clipped_top = max(0, left), max(0, top)
    pixels = pixels[clipped_top - top:max(0, height - top), clipped_left - left:max(0, width - left)]
    return pixels, clipped_left, clipped_top
