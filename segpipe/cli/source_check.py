"""Check one annotation source outside Dagster, with the same core code ingestion runs.

Users run this on an export before dropping it into the landing zone: it writes the canonical
tables, the quarantine report and, given a taxonomy, one mask per image named as in a release.
Ingest runs with `lint_without_images`, so an export whose images are not uploaded yet still
shows its shapes and labels: such entries stay quarantined, their shapes are flagged
`image_missing` in shapes.parquet, and their masks are drawn from the size the annotation
declares, into masks/no-image/.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import fsspec
import polars as pl

from segpipe.core.shared.errors import InputError
from segpipe.core.ingest.batch import IngestedBatch, ingest_batch, quarantine_unreadable_batch
from segpipe.core.shared.png import encode_mask_png
from segpipe.core.shared.quarantine_rules import quarantine_rule
from segpipe.core.rasterize.raster import rasterize_shapes
from segpipe.core.release.layout import release_stem
from segpipe.core.ingest.sources import open_source
from segpipe.core.taxonomy.model import Taxonomy, map_labels

NO_IMAGE_MASKS = "no-image"


@dataclass(frozen=True)
class SourceCheck:
    batch: IngestedBatch
    mapped: pl.DataFrame | None
    masks_written: int
    masks_without_image: int = 0


def check_source(
    fs: fsspec.AbstractFileSystem, path: str, out: Path, annotator_key: bytes,
    declared_format: str | None = None, taxonomy: Taxonomy | None = None,
) -> SourceCheck:
    batch_id = path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".zip") or "source"
    try:
        with open_source(fs, path) as source:
            batch = ingest_batch(source, batch_id, annotator_key, declared_format=declared_format,
                                 lint_without_images=True)
    except InputError as exc:
        batch = quarantine_unreadable_batch(batch_id, exc)
    out.mkdir(parents=True, exist_ok=True)
    missing = batch.images_missing
    shapes = batch.shapes.with_columns(pl.col("entry_id").is_in(missing["entry_id"].implode()).alias("image_missing"))
    for name, table in (("images", batch.images), ("shapes", shapes), ("quarantine", batch.quarantine), ("files", batch.files)):
        table.write_parquet(out / f"{name}.parquet")
    batch.quarantine.write_csv(out / "quarantine.csv")
    if taxonomy is None:
        return SourceCheck(batch, None, 0)
    sources = pl.concat([batch.images.select("entry_id", "source"), missing.select("entry_id", "source")])
    mapped = map_labels(batch.shapes, sources, taxonomy)
    with_image = ((e, f"{release_stem(f, i)}.png", w, h)
                  for e, f, i, w, h in batch.images.select("entry_id", "file_name", "image_id", "width", "height").iter_rows())
    without_image = ((e, f"{release_stem(f, e)}.png", w, h)
                     for e, f, w, h in missing.select("entry_id", "file_name", "width", "height").iter_rows())
    (out / "masks").mkdir(exist_ok=True)
    return SourceCheck(batch, mapped, _write_masks(with_image, mapped, taxonomy, out / "masks"),
                       _write_masks(without_image, mapped, taxonomy, out / "masks" / NO_IMAGE_MASKS))


def _write_masks(entries: Iterable[tuple[str, str, int, int]], mapped: pl.DataFrame, taxonomy: Taxonomy,
                 folder: Path) -> int:
    """One mask per (entry_id, file name, width, height): named as in a release for an image, and by
    its entry for one drawn from the declared size alone (no content hash without an image)."""
    by_entry = {key[0]: group for key, group in mapped.group_by("entry_id")}
    box_class_ids = frozenset(c.id for c in taxonomy.classes if c.rasterize_boxes)
    written = 0
    for entry, name, width, height in entries:
        if not written:
            folder.mkdir(parents=True, exist_ok=True)
        mask = rasterize_shapes(by_entry.get(entry, mapped.clear()), width, height, taxonomy.ignore_index, box_class_ids)
        (folder / name).write_bytes(encode_mask_png(mask, taxonomy.palette()))
        written += 1
    return written


def format_source_check(check: SourceCheck, out: Path) -> str:
    """A one-screen summary: items, shapes, labels found and unmapped, quarantined with reasons and
    what to do about each rule (docs/quarantine-rules.md lists them all)."""
    batch = check.batch
    items = batch.images.height + batch.quarantine.height
    lines = [
        f"format: {batch.source_format or 'unreadable'}",
        f"items: {items} ({batch.images.height} accepted, {batch.quarantine.height} quarantined)",
        f"files: {batch.files.height} ({batch.files.filter(pl.col('outcome') == 'unused').height} unused, "
        f"{batch.files.filter(pl.col('outcome') == 'rejected').height} rejected)",
    ]
    kinds = ", ".join(f"{k} {n}" for k, n in batch.shapes.group_by("kind").len().sort("kind").iter_rows())
    lines.append(f"shapes: {batch.shapes.height}" + (f" ({kinds})" if kinds else ""))
    labels = batch.shapes.group_by("raw_label").len().sort("len", "raw_label", descending=[True, False])
    lines.append(f"labels found: {labels.height}: " + ", ".join(f"{label!r} {n}" for label, n in labels.head(12).iter_rows())
                 + (" ..." if labels.height > 12 else ""))
    if batch.images_missing.height:
        without = batch.shapes.filter(pl.col("entry_id").is_in(batch.images_missing["entry_id"].implode())).height
        lines.append(f"image missing: {batch.images_missing.height} items, their {without} shapes counted above "
                     "(flagged image_missing in shapes.parquet)")
    if check.mapped is not None:
        unmapped = check.mapped.filter(pl.col("mapping") != "mapped").group_by("raw_label").len().sort("len", descending=True)
        lines.append(f"unmapped labels: {unmapped.height}" + (": " + ", ".join(
            f"{label!r} {n}" for label, n in unmapped.head(12).iter_rows()) if unmapped.height else ""))
        lines.append(f"masks written: {check.masks_written} in {out / 'masks'}" + (
            f", and {check.masks_without_image} drawn from the declared size, no image, in "
            f"{out / 'masks' / NO_IMAGE_MASKS}" if check.masks_without_image else ""))
    rules = batch.quarantine.group_by("rule").agg(pl.len(), pl.col("message").first()).sort("len", descending=True)
    for rule, count, example in rules.head(10).iter_rows():
        lines.append(f"quarantined {count} x {rule}: e.g. {example[:160]}")
        lines.append(f"  what to do: {quarantine_rule(rule).action}")
    lines.append(f"tables: {out}/{{images,shapes,quarantine,files}}.parquet, report: {out / 'quarantine.csv'}")
    return "\n".join(lines)
