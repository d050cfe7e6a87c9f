"""Check one annotation source outside Dagster, with the same core code ingestion runs.

Users run this on an export before dropping it into the landing zone: it writes the canonical
tables, the quarantine report and, given a taxonomy, one mask per image named as in a release.
Ingest runs with `lint_without_images`, so an export whose images are not uploaded yet still
shows its shapes and labels: such entries stay quarantined, their shapes are flagged
`image_missing` in shapes.parquet, and their masks are drawn from the size the annotation
declares, into masks/no-image/. Under `unmapped: error` with a label no rule maps, no mask is
written at all, since the batch would block a release.
"""

import functools
from collections.abc import Iterable
from dataclasses import dataclass, replace
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
from segpipe.core.taxonomy.model import Taxonomy, map_labels, unmapped_label_report, unmapped_segments

SHOWN_LABELS = 12
SHOWN_RULES = 10  # quarantine rules with an example and what to do; the rest by name and count
NO_IMAGE_MASKS = "no-image"
ENTRY_COLUMNS = ("entry_id", "batch_id", "file_name", "source")


@dataclass(frozen=True)
class SourceCheck:
    batch: IngestedBatch
    mapped: pl.DataFrame | None
    masks_written: int
    taxonomy: Taxonomy | None = None
    masks_without_image: int = 0

    @functools.cached_property
    def unmapped(self) -> pl.DataFrame:
        """Per source and label, the segmentation shapes no rule maps: what the build's unmapped_labels
        check lists, with the shapes of entries read without their image counted too."""
        return unmapped_label_report(unmapped_segments(self.mapped), read_entries(self.batch), examples=1)

    @property
    def blocked(self) -> bool:
        """Under `unmapped: error` an unmapped label blocks a release, so no masks are written for it."""
        return self.taxonomy is not None and self.taxonomy.unmapped == "error" and not self.unmapped.is_empty()


def check_source(
    fs: fsspec.AbstractFileSystem, path: str, out: Path, annotator_key: bytes,
    declared_format: str | None = None, taxonomy: Taxonomy | None = None, source_name: str | None = None,
) -> SourceCheck:
    """`source_name`, when given, replaces the batch's source (batch.json's, else the format's name),
    as a `source` in batch.json would."""
    batch_id = path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".zip") or "source"
    batch = read_source(fs, path, batch_id, annotator_key, declared_format, lint_without_images=True)
    if source_name is not None:
        named = pl.lit(source_name).alias("source")
        batch = replace(batch, images=batch.images.with_columns(named),
                        images_missing=batch.images_missing.with_columns(named))
    out.mkdir(parents=True, exist_ok=True)
    missing = batch.images_missing
    shapes = batch.shapes.with_columns(pl.col("entry_id").is_in(missing["entry_id"].implode()).alias("image_missing"))
    for name, table in (("images", batch.images), ("shapes", shapes), ("quarantine", batch.quarantine), ("files", batch.files)):
        table.write_parquet(out / f"{name}.parquet")
    batch.quarantine.write_csv(out / "quarantine.csv")
    if taxonomy is None:
        return SourceCheck(batch, None, 0)
    check = SourceCheck(batch, map_batch(batch, taxonomy), 0, taxonomy)
    if check.blocked:
        return check
    with_image = ((e, f"{release_stem(f, i)}.png", w, h)
                  for e, f, i, w, h in batch.images.select("entry_id", "file_name", "image_id", "width", "height").iter_rows())
    without_image = ((e, f"{release_stem(f, e)}.png", w, h)
                     for e, f, w, h in missing.select("entry_id", "file_name", "width", "height").iter_rows())
    (out / "masks").mkdir(exist_ok=True)
    return replace(check, masks_written=_write_masks(with_image, check.mapped, taxonomy, out / "masks"),
                   masks_without_image=_write_masks(without_image, check.mapped, taxonomy, out / "masks" / NO_IMAGE_MASKS))


def read_source(fs: fsspec.AbstractFileSystem, path: str, batch_id: str, annotator_key: bytes,
                declared_format: str | None = None, lint_without_images: bool = False) -> IngestedBatch:
    """The export at `path` read as ingestion reads a landed batch, images checked but not stored;
    an export that cannot even be listed is one quarantined item. With `lint_without_images`, the
    shapes of entries whose image is absent are read too (see ingest_batch)."""
    try:
        with open_source(fs, path) as source:
            return ingest_batch(source, batch_id, annotator_key, declared_format=declared_format,
                                lint_without_images=lint_without_images)
    except InputError as exc:
        return quarantine_unreadable_batch(batch_id, exc)


def read_entries(batch: IngestedBatch) -> pl.DataFrame:
    """(entry_id, batch_id, file_name, source) of every entry whose shapes were read: the accepted
    images and, read with `lint_without_images`, the entries whose image is missing."""
    return pl.concat([batch.images.select(ENTRY_COLUMNS), batch.images_missing.select(ENTRY_COLUMNS)])


def map_batch(batch: IngestedBatch, taxonomy: Taxonomy) -> pl.DataFrame:
    """Every shape read, with images or without, mapped by the rules of its entry's source."""
    return map_labels(batch.shapes, read_entries(batch).select("entry_id", "source"), taxonomy)


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


def format_source_check(check: SourceCheck, out: Path, taxonomy_file: Path | None = None) -> str:
    """A one-screen summary: what summary_lines says, given the taxonomy's mapping the masks written
    (none when unmapped: error blocks them; those drawn from the declared size, no image, apart),
    and where the tables are."""
    mapping = []
    if check.taxonomy is not None:
        mapping = mapping_lines(check, "the taxonomy" if taxonomy_file is None else str(taxonomy_file))
        if check.blocked:
            mapping.append("masks written: none: under unmapped: error these labels would block a release; add the "
                           "rules and run again")
        else:
            mapping.append(f"masks written: {check.masks_written} in {out / 'masks'}" + (
                f", and {check.masks_without_image} drawn from the declared size, no image, in "
                f"{out / 'masks' / NO_IMAGE_MASKS}" if check.masks_without_image else ""))
    lines = summary_lines(check.batch, mapping, flagged_in="shapes.parquet")
    lines.append(f"tables: {out}/{{images,shapes,quarantine,files}}.parquet, report: {out / 'quarantine.csv'}")
    return "\n".join(lines)


def summary_lines(batch: IngestedBatch, mapping: Iterable[str] = (), flagged_in: str | None = None) -> list[str]:
    """What reading an export found: its format, items, files, shapes and labels (those of entries
    read without their image included, and said so; `flagged_in` names the table that flags their
    shapes), then the `mapping` lines (see mapping_lines), then the quarantined items by rule with
    what to do about each rule (docs/quarantine-rules.md lists them all)."""
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
    lines.append(f"labels found: {labels.height}" + (f": {_listed(labels.iter_rows())}" if labels.height else ""))
    if batch.images_missing.height:
        without = batch.shapes.filter(pl.col("entry_id").is_in(batch.images_missing["entry_id"].implode())).height
        lines.append(f"image missing: {batch.images_missing.height} items, their {without} shapes counted above"
                     + (f" (flagged image_missing in {flagged_in})" if flagged_in else ""))
    lines += mapping
    rules = batch.quarantine.group_by("rule").agg(pl.len(), pl.col("message").first()).sort("len", descending=True)
    for rule, count, example in rules.head(SHOWN_RULES).iter_rows():
        lines.append(f"quarantined {count} x {rule}: e.g. {example}")
        lines.append(f"  what to do: {quarantine_rule(rule).action}")
    if rules.height > SHOWN_RULES:
        lines.append(f"quarantined under {rules.height - SHOWN_RULES} more rules: "
                     + ", ".join(f"{rule} {count}" for rule, count, _ in rules.slice(SHOWN_RULES).iter_rows()))
    return lines


def mapping_lines(check: SourceCheck, taxonomy_file: str) -> list[str]:
    """Which rules applied, the labels mapped to void or skip on purpose, and the labels no rule maps
    with what to add for them."""
    taxonomy, mapped, unmapped = check.taxonomy, check.mapped, check.unmapped
    lines = []
    for source in sorted(read_entries(check.batch)["source"].unique().to_list()):
        rules = taxonomy.rule_source(source)
        if rules not in taxonomy.mappings:
            known = ", ".join(sorted([*taxonomy.mappings, *taxonomy.aliases]))
            lines.append(f"source: {source}: {taxonomy_file} has no rules for it; its sources: {known}")
        else:
            lines.append(f"source: {source}: the rules of mappings.{rules} in {taxonomy_file}")
    for target in ("void", "skip"):
        chosen = mapped.filter(pl.col("mapping") == target).group_by("raw_label").len().sort(
            "len", "raw_label", descending=[True, False])
        if chosen.height:
            lines.append(f"{'voided' if target == 'void' else 'skipped'} on purpose (rules to {target}): {chosen.height}: "
                         + _listed(chosen.iter_rows()))
    lines.append(f"unmapped labels: {unmapped.height}" + (
        f" ({unmapped['shapes'].sum()} shapes; unmapped: {taxonomy.unmapped}): "
        + _listed(unmapped.select("raw_label", "shapes").iter_rows()) if unmapped.height else ""))
    if unmapped.height:
        lines.append("  e.g. " + ", ".join(f"{label!r} in {examples}" for label, examples in
                                           unmapped.select("raw_label", "examples").head(3).iter_rows()))
    for source, labels in unmapped.group_by("source", maintain_order=True).agg("raw_label").iter_rows():
        lines.append(f"  what to do: add a rule for {'each' if len(labels) > 1 else 'it'} under "
                     f"mappings.{taxonomy.rule_source(source)} in {taxonomy_file}, e.g. `- {{label: {labels[0]}, to: <class>}}` "
                     f"(`to: void` or `to: skip` to leave it out on purpose), or name another source with --source")
    return lines


def _listed(counts: Iterable[tuple[str, int]]) -> str:
    """`'label' n, ...` for the first few (label, count) pairs, and how many more there are."""
    pairs = list(counts)
    return ", ".join(f"{label!r} {n}" for label, n in pairs[:SHOWN_LABELS]) + _more(len(pairs))


def _more(total: int) -> str:
    return f" +{total - SHOWN_LABELS} more" if total > SHOWN_LABELS else ""
