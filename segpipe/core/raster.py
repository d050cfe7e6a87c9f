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
from collections.abc import Callable

import numpy as np
import polars as pl
from PIL import Image, ImageDraw

from segpipe.core.formats.annotation import BoxMask
from segpipe.core.png import encode_mask_png
from segpipe.core.schemas import MaskRecord
from segpipe.core.taxonomy import Taxonomy


def rasterize_shapes(
    shapes: pl.DataFrame, width: int, height: int, ignore_index: int, box_class_ids: frozenset[int] = frozenset(),
) -> np.ndarray:
    """Paint one entry's mapped shapes (ShapeRecord columns plus class_id, mapping) into a mask."""
    canvas = Image.new("L", (width, height), ignore_index)
    draw = ImageDraw.Draw(canvas)
    painted = (pl.col("kind") == "polygon") | (pl.col("kind") == "mask") | (
        (pl.col("kind") == "box") & pl.col("class_id").is_in(list(box_class_ids)))
    ordered = shapes.filter(painted & ~pl.col("mapping").is_in(["unmapped_ignore", "skip"])).sort("z_order", "shape_index")
    for kind, class_id, rings, box, counts in ordered.select("kind", "class_id", "rings", "mask_box", "mask_counts").iter_rows():
        fill = ignore_index if class_id is None else class_id
        if kind == "mask":
            left, top, box_width, box_height = box
            binary = BoxMask(left, top, box_width, box_height, np.asarray(counts, dtype=np.uint32)).to_array()
            stencil = Image.fromarray(binary.astype(np.uint8) * 255, mode="L")
            canvas.paste(fill, (left, top, left + box_width, top + box_height), stencil)
            continue
        for ring in rings:
            draw.polygon(list(zip(ring[0::2], ring[1::2], strict=True)), fill=fill)
    return np.asarray(canvas, dtype=np.uint8)


def decode_mask_png(data: bytes) -> np.ndarray:
    """Read a mask as class indices, whether grayscale or palette."""
    with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
        if image.mode not in ("L", "P"):
            raise ValueError(f"mask PNG has mode {image.mode}, expected L or P")
        return np.asarray(image, dtype=np.uint8)


def rasterize_batch(
    images: pl.DataFrame,
    shapes: pl.DataFrame,
    taxonomy: Taxonomy,
    mask_encoding: str,
    write_mask: Callable[[str, bytes], None],
) -> pl.DataFrame:
    """Rasterize and encode every accepted entry of a batch; returns the mask table.

    Mask keys include the taxonomy version, so a taxonomy change writes new masks beside
    the old ones instead of changing files an earlier run produced.
    """
    palette = taxonomy.palette() if mask_encoding == "palette" else None
    box_class_ids = frozenset(c.id for c in taxonomy.classes if c.rasterize_boxes)
    shapes_by_entry = {key[0]: group for key, group in shapes.group_by("entry_id")}
    no_shapes = shapes.clear()
    rows = []
    for entry in images.iter_rows(named=True):
        mask = rasterize_shapes(
            shapes_by_entry.get(entry["entry_id"], no_shapes), entry["width"], entry["height"],
            taxonomy.ignore_index, box_class_ids)
        key = f"masks/{taxonomy.taxonomy_version}/{entry['batch_id']}/{entry['entry_id']}.png"
        write_mask(key, encode_mask_png(mask, palette))
        rows.append({
            "entry_id": entry["entry_id"], "image_id": entry["image_id"], "annotator": entry["annotator"],
            "is_gold": entry["is_gold"], "mask_key": key, "width": entry["width"], "height": entry["height"],
            "taxonomy_version": taxonomy.taxonomy_version,
        })
    schema = {"entry_id": pl.String, "image_id": pl.String, "annotator": pl.String, "is_gold": pl.Boolean,
              "mask_key": pl.String, "width": pl.Int64, "height": pl.Int64, "taxonomy_version": pl.String}
    return MaskRecord.validate(pl.DataFrame(rows, schema=schema))
