"""Check one annotation source outside Dagster, with the same core code ingestion runs.

Users run this on an export before dropping it into the landing zone: it writes the canonical
tables, the quarantine report and, given a taxonomy, one mask per image named as in a release.
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


@dataclass(frozen=True)
class SourceCheck:
    batch: IngestedBatch
    mapped: pl.DataFrame | None
    masks_written: int
    taxonomy: Taxonomy | None = None

    @functools.cached_property
    def unmapped(self) -> pl.DataFrame:
        """Per source and label, the segmentation shapes no rule maps: what the build's unmapped_labels check lists."""
        return unmapped_label_report(unmapped_segments(self.mapped), self.batch.images, examples=1)

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
    batch = read_source(fs, path, batch_id, annotator_key, declared_format)
    if source_name is not None:
        batch = replace(batch, images=batch.images.with_columns(pl.lit(source_name).alias("source")))
    out.mkdir(parents=True, exist_ok=True)
    for name, table in (("images", batch.images), ("shapes", batch.shapes), ("quarantine", batch.quarantine), ("files", batch.files)):
        table.write_parquet(out / f"{name}.parquet")
    batch.quarantine.write_csv(out / "quarantine.csv")
    if taxonomy is None:
        return SourceCheck(batch, None, 0)
    check = SourceCheck(batch, map_labels(batch.shapes, batch.images.select("entry_id", "source"), taxonomy), 0, taxonomy)
    if check.blocked:
        return check
    return replace(check, masks_written=_write_masks(batch.images, check.mapped, taxonomy, out / "masks"))



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


def format_source_check(check: SourceCheck, out: Path, taxonomy_file: Path | None = None) -> str:
    """A one-screen summary: what summary_lines says, given the taxonomy's mapping the masks written
    (none when unmapped: error blocks them), and where the tables are."""
    mapping = []
    if check.taxonomy is not None:
        mapping = mapping_lines(check, "the taxonomy" if taxonomy_file is None else str(taxonomy_file))
        mapping.append("masks written: none: under unmapped: error these labels would block a release; add the rules "
                       "and run again" if check.blocked else f"masks written: {check.masks_written} in {out / 'masks'}")
    lines = summary_lines(check.batch, mapping)
    lines.append(f"tables: {out}/{{images,shapes,quarantine,files}}.parquet, report: {out / 'quarantine.csv'}")
    return "\n".join(lines)


def summary_lines(batch: IngestedBatch, mapping: Iterable[str] = ()) -> list[str]:
    """What reading an export found: its format, items, files, shapes and labels, then the `mapping`
    lines (see mapping_lines), then the quarantined items by rule with what to do about each rule
    (docs/quarantine-rules.md lists them all)."""
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
    lines.append(f"labels found: {labels.height}: " + _listed(labels.iter_rows()))
    lines += mapping
    rules = batch.quarantine.group_by("rule").agg(pl.len(), pl.col("message").first()).sort("len", descending=True)
    for rule, count, example in rules.head(10).iter_rows():
        lines.append(f"quarantined {count} x {rule}: e.g. {example[:160]}")
        lines.append(f"  what to do: {quarantine_rule(rule).action}")
    return lines


def mapping_lines(check: SourceCheck, taxonomy_file: str) -> list[str]:
    """Which rules applied, the labels mapped to void or skip on purpose, and the labels no rule maps
    with what to add for them."""
    taxonomy, mapped, unmapped = check.taxonomy, check.mapped, check.unmapped
    lines = []
    for source in sorted(check.batch.images["source"].unique().to_list()):
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
