"""Check one annotation source outside Dagster, with the same core code ingestion runs.

Users run this on an export before dropping it into the landing zone: it writes the canonical
tables, the quarantine report and, given a taxonomy, one mask per image named as in a release.
"""

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


@dataclass(frozen=True)
class SourceCheck:
    batch: IngestedBatch
    mapped: pl.DataFrame | None
    masks_written: int


def check_source(
    fs: fsspec.AbstractFileSystem, path: str, out: Path, annotator_key: bytes,
    declared_format: str | None = None, taxonomy: Taxonomy | None = None,
) -> SourceCheck:
    batch_id = path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".zip") or "source"
    batch = read_source(fs, path, batch_id, annotator_key, declared_format)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in (("images", batch.images), ("shapes", batch.shapes), ("quarantine", batch.quarantine), ("files", batch.files)):
        table.write_parquet(out / f"{name}.parquet")
    batch.quarantine.write_csv(out / "quarantine.csv")
    if taxonomy is None:
        return SourceCheck(batch, None, 0)
    mapped = map_labels(batch.shapes, batch.images.select("entry_id", "source"), taxonomy)
    return SourceCheck(batch, mapped, _write_masks(batch.images, mapped, taxonomy, out / "masks"))


def read_source(fs: fsspec.AbstractFileSystem, path: str, batch_id: str, annotator_key: bytes,
                declared_format: str | None = None) -> IngestedBatch:
    """The export at `path` read as ingestion reads a landed batch, images checked but not stored;
    an export that cannot even be listed is one quarantined item."""
    try:
        with open_source(fs, path) as source:
            return ingest_batch(source, batch_id, annotator_key, declared_format=declared_format)
    except InputError as exc:
        return quarantine_unreadable_batch(batch_id, exc)


def _write_masks(images: pl.DataFrame, mapped: pl.DataFrame, taxonomy: Taxonomy, folder: Path) -> int:
    folder.mkdir(exist_ok=True)
    by_entry = {key[0]: group for key, group in mapped.group_by("entry_id")}
    box_class_ids = frozenset(c.id for c in taxonomy.classes if c.rasterize_boxes)
    for entry in images.iter_rows(named=True):
        mask = rasterize_shapes(by_entry.get(entry["entry_id"], mapped.clear()), entry["width"], entry["height"],
                                taxonomy.ignore_index, box_class_ids)
        name = f"{release_stem(entry['file_name'], entry['image_id'])}.png"
        (folder / name).write_bytes(encode_mask_png(mask, taxonomy.palette()))
    return images.height


def format_source_check(check: SourceCheck, out: Path) -> str:
    """A one-screen summary: items, shapes, labels found and unmapped, quarantined with reasons and
    what to do about each rule (docs/quarantine-rules.md lists them all)."""
    lines = summary_lines(check.batch, check.mapped)
    if check.mapped is not None:
        lines.append(f"masks written: {check.masks_written} in {out / 'masks'}")
    lines.append(f"tables: {out}/{{images,shapes,quarantine,files}}.parquet, report: {out / 'quarantine.csv'}")
    return "\n".join(lines)


def summary_lines(batch: IngestedBatch, mapped: pl.DataFrame | None) -> list[str]:
    """What reading an export found: its format, items, files, shapes and labels, the labels a
    taxonomy leaves unmapped (given its mapped shapes), and the quarantined items by rule."""
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
    if mapped is not None:
        unmapped = mapped.filter(pl.col("mapping") != "mapped").group_by("raw_label").len().sort("len", descending=True)
        lines.append(f"unmapped labels: {unmapped.height}" + (": " + ", ".join(
            f"{label!r} {n}" for label, n in unmapped.head(12).iter_rows()) if unmapped.height else ""))
    rules = batch.quarantine.group_by("rule").agg(pl.len(), pl.col("message").first()).sort("len", descending=True)
    for rule, count, example in rules.head(10).iter_rows():
        lines.append(f"quarantined {count} x {rule}: e.g. {example[:160]}")
        lines.append(f"  what to do: {quarantine_rule(rule).action}")
    return lines
