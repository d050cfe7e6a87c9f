"""Instance-id masks in the Cityscapes convention (`*_instanceIds.png`): one uint16 per pixel.

Rule. The shapes painted and their order are exactly those of the class mask (raster.py:
painter's order by z_order then shape_index, the same Pillow polygon fill and exact mask pixels,
boxes only for classes with `rasterize_boxes`, `skip` and unmapped-ignore shapes not painted), so
`value // 1000` (or the value itself below 1000) always equals the class mask. Only the value of
each painted shape differs:
- a shape of a class with `has_instances` that is not a crowd paints `class_id * 1000 + k`, where
  k numbers that class's instances in the entry from 0, in painter's order of each instance's
  first shape; shapes of one class sharing a non-null group_id (a CVAT group, a LabelMe group) are
  one instance, any other shape is an instance of its own (a COCO multi-part annotation is already
  one shape with several rings). The class is part of the instance so that a CVAT group binding,
  say, a rider and a bicycle gives one rider and one bicycle;
- a crowd (`is_crowd`: a `crowd: true` rule or iscrowd "1") and any shape of a class without
  instances paint the bare class id: no annotator separated its objects, so it has no number;
- `void` and unmapped-void shapes paint the ignore index, as uncovered pixels do.

This is json2instanceImg's encoding: values below 1000 are class ids, values from 1000 up are
instances. Instances are counted even when later shapes cover them entirely, as json2instanceImg
counts every polygon. Two cases cannot be encoded and raise ValueError rather than write an
ambiguous mask: an instance of class 0 (0 * 1000 + k would read as class k) and a value above
65535, the 16-bit limit (every instance of a class id from 66 up, or k > 535 for class 65).
"""

import io

import numpy as np
import polars as pl
from PIL import Image

from segpipe.core.shared.artefacts import ArtefactStore, content_digest
from segpipe.core.shared.png import encode_instance_png
from segpipe.core.rasterize.raster import paint_in_order, painted_in_order
from segpipe.core.shared.schemas import MaskRecord
from segpipe.core.taxonomy.model import Taxonomy
from segpipe.store import keys as store_keys

INSTANCE_FACTOR = 1000
MAX_INSTANCE_VALUE = np.iinfo(np.uint16).max


def rasterize_instances(mapped: pl.DataFrame, width: int, height: int, taxonomy: Taxonomy) -> np.ndarray:
    """Paint one entry's mapped shapes (MappedShapeRecord columns) into a uint16 instance-id mask."""
    box_class_ids = frozenset(c.id for c in taxonomy.classes if c.rasterize_boxes)
    ordered = painted_in_order(mapped, box_class_ids)
    fills = pl.Series("fill", _instance_values(ordered, taxonomy), dtype=pl.Int64)
    canvas = paint_in_order(ordered.with_columns(fills), width, height, taxonomy.ignore_index, mode="I")
    return canvas.astype(np.uint16)


def render_instance_masks(
    batch_id: str, masks: pl.DataFrame, mapped_shapes: pl.DataFrame, taxonomy: Taxonomy, store: ArtefactStore,
) -> pl.DataFrame:
    """The class-mask table with each entry's instance-id mask added (instance_mask_key), drawn from
    its mapped shapes and named after its bytes. An entry whose ids the encoding cannot hold gets
    no instance mask and the reason (instance_error) instead of failing the batch; its class mask
    is unaffected."""
    shapes_by_entry = {key[0]: group for key, group in mapped_shapes.group_by("entry_id")}
    keys, errors = [], []
    for entry_id, width, height in masks.select("entry_id", "width", "height").iter_rows():
        try:
            mask = rasterize_instances(shapes_by_entry.get(entry_id, mapped_shapes.clear()), width, height, taxonomy)
        except ValueError as exc:
            keys.append(None)
            errors.append(f"entry {entry_id}: {exc}")
            continue
        png = encode_instance_png(mask)
        key = store_keys.instance_mask(batch_id, entry_id, content_digest(png))
        store.write_once(key, png)
        keys.append(key)
        errors.append(None)
    return MaskRecord.validate(masks.with_columns(
        pl.Series("instance_mask_key", keys, dtype=pl.String), pl.Series("instance_error", errors, dtype=pl.String)))


def _instance_values(ordered: pl.DataFrame, taxonomy: Taxonomy) -> list[int]:
    """The value each shape paints, for shapes already in painter's order (see the module docstring)."""
    with_instances = {c.id for c in taxonomy.classes if c.has_instances}
    instance_of: dict[tuple[int, int], int] = {}  # (class_id, group_id) -> k
    count: dict[int, int] = {}  # class_id -> instances numbered so far
    values = []
    for class_id, is_crowd, group_id, raw_label in ordered.select(
            "class_id", "is_crowd", "group_id", "raw_label").iter_rows():
        if class_id is None:
            values.append(taxonomy.ignore_index)
            continue
        if class_id not in with_instances or is_crowd:
            values.append(class_id)
            continue
        k = instance_of.get((class_id, group_id)) if group_id is not None else None
        if k is None:
            k = count.get(class_id, 0)
            count[class_id] = k + 1
            if group_id is not None:
                instance_of[class_id, group_id] = k
        values.append(_instance_id(class_id, k, raw_label))
    return values


def _instance_id(class_id: int, k: int, raw_label: str) -> int:
    value = class_id * INSTANCE_FACTOR + k
    if class_id == 0:
        raise ValueError(f"shape {raw_label!r} is an instance of class 0, which the class*1000+k encoding cannot "
                         f"tell from class {k}; give the class a non-zero id or set has_instances: false")
    if value > MAX_INSTANCE_VALUE:
        raise ValueError(f"shape {raw_label!r} would be instance {k} of class {class_id}, id {value}, above the 16-bit "
                         f"limit {MAX_INSTANCE_VALUE}; class*1000+k fits only class ids up to 65 (k <= 535 for 65)")
    return value


def decode_instance_png(data: bytes) -> np.ndarray:
    """Read an instance-id PNG (16-bit grayscale, as encode_instance_png and json2instanceImg write it) as uint16."""
    with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
        if image.mode not in ("I;16", "I"):
            raise ValueError(f"instance PNG has mode {image.mode}, expected 16-bit grayscale (I;16 or I)")
        pixels = np.asarray(image)
    if pixels.size and (pixels.min() < 0 or pixels.max() > MAX_INSTANCE_VALUE):
        raise ValueError(f"instance PNG holds values {pixels.min()}..{pixels.max()}, outside 0..{MAX_INSTANCE_VALUE}")
    return pixels.astype(np.uint16)
