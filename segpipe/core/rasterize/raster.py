"""Shapes to label masks, by one documented rule.

Rule: shapes are painted in painter's order, by z_order ascending and then by their order
in the annotation file; a later shape overwrites earlier pixels. A polygon pixel is filled when
Pillow's polygon scan conversion covers it (the rule cityscapesScripts' json2labelImg uses);
a mask shape fills exactly its true pixels, so holes stay holes; a box is painted only when its
class asks for it (`rasterize_boxes` in the taxonomy); polylines and points are never painted.
Pixels no shape covers get the ignore index. Rings of one shape are painted as a union;
shapes mapped to `void` and unmapped shapes under policy "void" are painted as ignore;
shapes mapped to `skip` and unmapped shapes under policy "ignore" are not painted at all.
"""

import io
from typing import Literal

import numpy as np
import polars as pl
from PIL import Image, ImageDraw

from segpipe.core.ingest.formats.annotation import BoxMask
from segpipe.core.shared.png import decode_written_mask


def rasterize_shapes(
    shapes: pl.DataFrame, width: int, height: int, ignore_index: int, box_class_ids: frozenset[int] = frozenset(),
) -> np.ndarray:
    """Paint one entry's mapped shapes (ShapeRecord columns plus class_id, mapping) into a mask."""
    ordered = painted_in_order(shapes, box_class_ids)
    fills = ordered["class_id"].fill_null(ignore_index)
    return paint_in_order(ordered.with_columns(fills.alias("fill")), width, height, ignore_index)


def painted_in_order(shapes: pl.DataFrame, box_class_ids: frozenset[int]) -> pl.DataFrame:
    """The mapped shapes the rule paints, in painter's order; every mask of an entry is painted from this."""
    painted = (pl.col("kind") == "polygon") | (pl.col("kind") == "mask") | (
        (pl.col("kind") == "box") & pl.col("class_id").is_in(list(box_class_ids)))
    return shapes.filter(painted & ~pl.col("mapping").is_in(["unmapped_ignore", "skip"])).sort("z_order", "shape_index")


def paint_in_order(ordered: pl.DataFrame, width: int, height: int, background: int, mode: Literal["L", "I"] = "L") -> np.ndarray:
    """Paint shapes (kind, fill, rings, mask_box, mask_counts), already in painter's order, onto a
    background: polygons by Pillow's scan conversion, masks by their exact pixels. Mode "L" gives a
    uint8 mask; mode "I" an int32 one, for fills above 255 (instance ids)."""
    canvas = Image.new(mode, (width, height), background)
    draw = ImageDraw.Draw(canvas)
    for kind, fill, rings, box, counts in ordered.select("kind", "fill", "rings", "mask_box", "mask_counts").iter_rows():
        if kind == "mask":
            left, top, box_width, box_height = box
            binary = BoxMask(left, top, box_width, box_height, np.asarray(counts, dtype=np.uint32)).to_array()
            stencil = Image.fromarray(binary.astype(np.uint8) * 255, mode="L")
            canvas.paste(fill, (left, top, left + box_width, top + box_height), stencil)
            continue
        draw_rings(draw, rings, fill)
    return np.asarray(canvas)


def draw_rings(draw: ImageDraw.ImageDraw, rings: list[list[float]], fill: int,
               origin: tuple[int, int] = (0, 0)) -> None:
    """Fill the union of a polygon's or box's rings (flat x, y lists) by Pillow's scan conversion:
    the one polygon rule of every mask and of the COCO annotations drawn from the same shapes.
    `origin` is the frame's point at the canvas's top left, for a canvas that is a window of the frame."""
    left, top = origin
    for ring in rings:
        if left or top:
            draw.polygon([(x - left, y - top) for x, y in zip(ring[0::2], ring[1::2], strict=True)], fill=fill)
        else:
            draw.polygon(list(zip(ring[0::2], ring[1::2], strict=True)), fill=fill)


def decode_mask_png(data: bytes) -> np.ndarray:
    """Read a mask as class indices, whether grayscale or palette: segpipe's own masks by the fast
    path of its writer, any other PNG through Pillow."""
    mask = decode_written_mask(data)
    if mask is not None:
        return mask
    with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
        if image.mode not in ("L", "P"):
            raise ValueError(f"mask PNG has mode {image.mode}, expected L or P")
        return np.asarray(image, dtype=np.uint8)
