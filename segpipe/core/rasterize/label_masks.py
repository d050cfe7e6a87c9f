"""Rasterize once per annotation, remap per taxonomy.

Drawing is the expensive part of a mask; a taxonomy edit usually changes only which class a
label means. So every entry is drawn once in source-label space (pixel k = the k-th distinct
(raw label, attributes) of its drawable shapes), and a class mask is that drawing passed
through a lookup table built from the taxonomy. A mapping-only change then costs a PNG decode,
a table lookup and an encode per entry whose table it changed, and nothing for the others (their
masks keep their content-derived names): no image is decoded and no polygon redrawn.

A lookup is exact only while every drawable shape is painted: a shape mapped to `skip`
(or unmapped under policy "ignore", or a box of a class that does not paint boxes) must let
the shapes beneath it show, and the source-space drawing has already covered them. Entries
with such a shape are redrawn from their shapes, by the same rule (see raster.py).
"""

from collections.abc import Callable

import numpy as np
import orjson
import polars as pl

from segpipe.core.shared.artefacts import ArtefactStore, content_digest
from segpipe.core.shared.class_pixels import value_counts
from segpipe.core.ingest.formats.annotation import SEGMENTATION_KINDS
from segpipe.core.shared.png import encode_mask_png
from segpipe.core.rasterize.raster import decode_mask_png, paint_in_order, rasterize_shapes
from segpipe.core.shared.schemas import LabelMaskRecord, MaskRecord, polars_schema
from segpipe.core.taxonomy.model import Taxonomy
from segpipe.store import keys as store_keys

MAX_LABEL_KEYS = 255
UNLABELED = 0


def rasterize_label_masks(images: pl.DataFrame, shapes: pl.DataFrame, store: ArtefactStore) -> pl.DataFrame:
    """Draw every accepted entry of a batch in source-label space; returns the label-mask table.
    Each PNG is named after its content, so a redraw of the same annotation rewrites nothing."""
    drawable = shapes.filter(pl.col("kind").is_in(sorted(SEGMENTATION_KINDS))).sort("entry_id", "z_order", "shape_index")
    by_entry = {key[0]: group for key, group in drawable.group_by("entry_id", maintain_order=True)}
    rows = []
    for entry in images.select("entry_id", "batch_id", "width", "height").iter_rows(named=True):
        ordered = by_entry.get(entry["entry_id"], drawable.clear())
        keys = ordered.select("raw_label", "attributes").unique(maintain_order=True)
        key_of = {pair: index for index, pair in enumerate(keys.iter_rows(), start=1)}
        mask_key = key_pixels = None
        if len(key_of) <= MAX_LABEL_KEYS:
            fills = [key_of[pair] for pair in ordered.select("raw_label", "attributes").iter_rows()]
            mask = paint_in_order(ordered.with_columns(pl.Series("fill", fills, dtype=pl.Int64)),
                                  entry["width"], entry["height"], UNLABELED)
            png = encode_mask_png(mask)
            mask_key = store_keys.label_mask(entry["batch_id"], entry["entry_id"], content_digest(png))
            store.write_once(mask_key, png)
            key_pixels = value_counts(mask)[:len(key_of) + 1]  # no pixel is above len(key_of)
        rows.append({**entry, "label_mask_key": mask_key, "key_labels": keys["raw_label"].to_list(),
                     "key_attributes": keys["attributes"].to_list(), "key_pixels": key_pixels})
    return LabelMaskRecord.validate(pl.DataFrame(rows, schema=polars_schema(LabelMaskRecord)))


def _entries_to_redraw(mapped_shapes: pl.DataFrame, box_class_ids: frozenset[int]) -> set[str]:
    """Entries with a drawn shape that must not be painted: skipped, unmapped under "ignore", or a
    box of a class that does not paint boxes."""
    hidden = pl.col("mapping").is_in(["skip", "unmapped_ignore"]) | (
        (pl.col("kind") == "box") & ~pl.col("class_id").is_in(sorted(box_class_ids)).fill_null(False))
    drawn = pl.col("kind").is_in(sorted(SEGMENTATION_KINDS))
    return set(mapped_shapes.filter(drawn & hidden)["entry_id"].to_list())


def _lookup_table(labels: list[str], attributes: list[str], source: str, taxonomy: Taxonomy,
                  resolved: dict[tuple[str, str, str], int | None]) -> np.ndarray:
    """Pixel value -> class id for one entry's label keys (value 0 and void labels get the ignore
    index); one entry per key, so the table is exactly what the entry's class mask depends on."""
    table = np.full(len(labels) + 1, taxonomy.ignore_index, dtype=np.uint8)
    for index, (label, attrs) in enumerate(zip(labels, attributes, strict=True), start=1):
        if (source, label, attrs) not in resolved:
            resolved[source, label, attrs] = taxonomy.resolve(source, label, orjson.loads(attrs))[0]
        class_id = resolved[source, label, attrs]
        if class_id is not None:
            table[index] = class_id
    return table


def class_pixels(mask: np.ndarray) -> list[int]:
    """Pixels per mask value 0..255: what the QA rules judge a mask by."""
    return value_counts(mask)


def render_class_masks(
    label_masks: pl.DataFrame,
    mapped_shapes: pl.DataFrame,
    images: pl.DataFrame,
    taxonomy: Taxonomy,
    mask_encoding: str,
    store: ArtefactStore,
    drawn: Callable[[str, np.ndarray], object] | None = None,
) -> pl.DataFrame:
    """The class mask of every entry, by lookup from its label mask where that is exact, else
    redrawn from its mapped shapes. `drawn`, if given, is called with the key and pixels of each
    mask made here (not of one found in the store), so a caller that needs them decodes no PNG.

    A looked-up mask is named after its label mask, its lookup table and its encoding, so after a
    taxonomy edit only the entries whose table changed are decoded, remapped and written; the rest
    keep their key, and their histogram follows from the table and the label mask's key_pixels."""
    palette = taxonomy.palette() if mask_encoding == "palette" else None
    encoding = mask_encoding.encode() + (bytes(v for rgb in palette for v in rgb) if palette else b"")
    box_class_ids = frozenset(c.id for c in taxonomy.classes if c.rasterize_boxes)
    shapes_by_entry = {key[0]: group for key, group in mapped_shapes.group_by("entry_id")}
    redraw = _entries_to_redraw(mapped_shapes, box_class_ids)
    resolved: dict[tuple[str, str, str], int | None] = {}
    entries = images.select("entry_id", "image_id", "annotator", "is_gold", "source").join(
        label_masks.select("entry_id", "batch_id", "label_mask_key", "key_labels", "key_attributes", "key_pixels",
                           "width", "height"),
        on="entry_id")
    rows = []
    for entry in entries.iter_rows(named=True):
        if entry["label_mask_key"] is not None and entry["entry_id"] not in redraw:
            table = _lookup_table(entry["key_labels"], entry["key_attributes"], entry["source"], taxonomy, resolved)
            key = store_keys.class_mask(entry["batch_id"], entry["entry_id"],
                                 content_digest(entry["label_mask_key"].encode(), table.tobytes(), encoding))
            if not store.holds_png(key):
                # take: the lookup in half the time of table[pixels]
                mask = table.take(decode_mask_png(store.read_png(entry["label_mask_key"])))
                store.write(key, encode_mask_png(mask, palette))
                if drawn is not None:
                    drawn(key, mask)
            pixels = np.bincount(table, weights=entry["key_pixels"], minlength=256).astype(np.int64).tolist()
            rendered_by = "lookup"
        else:
            shapes = shapes_by_entry.get(entry["entry_id"], mapped_shapes.clear())
            mask = rasterize_shapes(shapes, entry["width"], entry["height"], taxonomy.ignore_index, box_class_ids)
            png = encode_mask_png(mask, palette)
            key = store_keys.class_mask(entry["batch_id"], entry["entry_id"], content_digest(png))
            store.write_once(key, png)
            if drawn is not None:
                drawn(key, mask)
            pixels, rendered_by = class_pixels(mask), "redraw"
        rows.append({
            "entry_id": entry["entry_id"], "image_id": entry["image_id"], "annotator": entry["annotator"],
            "is_gold": entry["is_gold"], "mask_key": key, "width": entry["width"], "height": entry["height"],
            "taxonomy_version": taxonomy.taxonomy_version, "rendered_by": rendered_by, "class_pixels": pixels,
            "instance_mask_key": None, "instance_error": None,
        })
    return MaskRecord.validate(pl.DataFrame(rows, schema=polars_schema(MaskRecord)))
