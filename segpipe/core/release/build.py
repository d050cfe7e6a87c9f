"""Building a release: from the pipeline's tables to one archive (images, masks, COCO, YOLO, the
manifest, meta.json, the QA and sampling reports, a README datasheet and SHA256SUMS), or to the
version's own archive and the shared parts that hold its items' files (parts.py).

The archive is deterministic (members in writer order, items sorted, fixed timestamps), and its
version is a hash of what it contains, so rebuilding the same data gives the same version. Only
meta.json's `lineage.run_id` and `lineage.created_at` (and so SHA256SUMS) say which build made
it: they are left out of the version, so a rebuild of the same data is recognisably the same release.
Core only: the Dagster asset and the store's publishing call it, and so can anything else.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import polars as pl

from segpipe.core.consensus.review import unapplied_reviews
from segpipe.core.ingest.batch import image_metadata
from segpipe.core.qa.deliveries import superseded_entries
from segpipe.core.qa.near_duplicates import split_leaks
from segpipe.core.qa.rules import excluded_entries
from segpipe.core.release.coco_fragments import shape_batches, shelve_class_annotations, shelve_shape_annotations
from segpipe.core.release.ledger import build_ledger, outcome_counts
from segpipe.core.release.packaging import Packager, ZipPackager
from segpipe.core.release.parallel_deflate import DeflatedSegments
from segpipe.core.release.parts import PartLayout, PartPlanner, member_index
from segpipe.core.release.provenance import batch_provenance
from segpipe.core.release.released_names import ReleasedNames
from segpipe.core.release.settings import CITY_FROM_BATCH, ReleaseSettings
from segpipe.core.release.writers import WRITERS, BuildStamp, ReleaseContext, ReleaseItem, ReleaseWriter
from segpipe.core.release.writers.datasheet import DatasheetPicture, datasheet_pictures
from segpipe.core.release.writers.manifest import manifest_table
from segpipe.core.release.writers.meta import release_meta
from segpipe.core.sampling.report import report_files
from segpipe.core.sampling.sample import unselected_reasons
from segpipe.core.sampling.spec import DistributionSpec
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.shared.batch_tables import BatchTables, FrameBatches
from segpipe.core.shared.class_pixels import as_sparse
from segpipe.core.taxonomy.model import Taxonomy


@dataclass(frozen=True)
class ReleaseInputs:
    """Everything a release is built from: the pipeline's tables, as the dataset_release asset
    receives them, the taxonomy, the settings the release reads, the store holding the images and
    masks, and which build this is."""

    dataset_split: pl.DataFrame
    sampling_report: pl.DataFrame
    class_balance: pl.DataFrame
    consensus_masks: pl.DataFrame
    annotation_masks: pl.DataFrame | BatchTables  # read a batch at a time, in the columns the release needs
    mapped_shapes: pl.DataFrame | BatchTables  # read a batch at a time: the outlines behind COCO's polygons
    batch_images: pl.DataFrame
    batch_quarantine: pl.DataFrame
    qa_report: pl.DataFrame
    taxonomy: Taxonomy
    dataset_name: str
    mask_encoding: str
    sampling: DistributionSpec
    near_duplicate_bits: int  # qa.near_duplicate_bits: how near two images are to count as a split leak
    store: ArtefactStore
    stamp: BuildStamp
    landing_uri: str  # the landing zone's root, as ingest's messages name it: kept out of released tables
    pseudonym_key: bytes  # the annotator pseudonyms' key, which names batches in the release (released_names)
    part_bytes: int = ReleaseSettings().part_bytes  # release.part_mib: when items' files go into shared parts
    exports: tuple[str, ...] = ()  # release.exports
    cityscapes_city: str = CITY_FROM_BATCH  # release.cityscapes_city
    workers: int = 1  # release.workers: processes the per-image annotations are computed on


@dataclass(frozen=True)
class ReleaseContents:
    version: str  # the content digest
    manifest: pl.DataFrame
    meta: dict
    ledger: pl.DataFrame
    counts: dict[str, int]
    pictures: list[DatasheetPicture]  # what the datasheet shows, to show where the release is announced
    members: pl.DataFrame  # members.parquet: every file, the part holding it, its SHA-256 (parts.member_index)
    parts: PartLayout | None  # the shared parts used and written; None when built as one ZIP
    deflated_segments: frozenset[str] = frozenset()  # the store keys of the deflated segments it used
    coco_fragments: frozenset[str] = frozenset()  # the store keys of the COCO fragments it used


def build_release(inputs: ReleaseInputs, out: BinaryIO, parts: PartPlanner | None = None) -> ReleaseContents:
    """Build the release of `inputs` into `out`: work out the released items, the ledger (where
    every input entry ended up) and its counts, the drawn shapes behind the masks and the sampling
    reports, then package every writer's members: all into `out` without a planner, else the items'
    files as `parts` places them. Released tables name batches and files as released_names says."""
    names = ReleasedNames.of(
        {*inputs.batch_images["batch_id"], *inputs.batch_quarantine["batch_id"], *inputs.qa_report["batch_id"]},
        inputs.landing_uri, inputs.pseudonym_key)
    items = release_items(inputs.dataset_split, inputs.consensus_masks, inputs.batch_images, inputs.qa_report)
    ledger = build_ledger(inputs.batch_images, inputs.batch_quarantine, excluded_entries(inputs.qa_report),
                          inputs.consensus_masks, set(items["image_id"]),
                          unselected_reasons(inputs.dataset_split, inputs.sampling))
    ledger = names.table(ledger, "reason", "replaces").sort("batch_id", "file_name")
    items = items.with_columns(pl.col("source_batches").map_elements(names.batch_list, return_dtype=pl.String))
    counts = outcome_counts(ledger)
    masks, shapes = _batches(inputs.annotation_masks), _batches(inputs.mapped_shapes)
    coco_annotations = shelve_shape_annotations(
        items, shape_batches(items, inputs.consensus_masks, masks, shapes, inputs.taxonomy),
        inputs.taxonomy, inputs.store, inputs.workers)
    shelve_class_annotations(items, coco_annotations, inputs.taxonomy, inputs.store)
    leaks = split_leaks(inputs.dataset_split.filter(pl.col("split").is_not_null()), inputs.batch_images,
                        inputs.near_duplicate_bits)
    release = ReleaseContext(
        store=inputs.store, taxonomy=inputs.taxonomy, dataset_name=inputs.dataset_name,
        mask_encoding=inputs.mask_encoding, stamp=inputs.stamp, counts=counts,
        qa_results=names.table(inputs.qa_report, "reason"),
        report_files=report_files(inputs.sampling_report, inputs.class_balance, leaks,
                                  {c.id: c.color for c in inputs.taxonomy.classes}),
        coco_annotations=coco_annotations,
        provenance={names.batches[batch]: terms for batch, terms in batch_provenance(inputs.batch_images).items()},
        batch_order=batch_order(inputs.batch_images),
        exports=inputs.exports, cityscapes_city=inputs.cityscapes_city, workers=inputs.workers)
    release.resources.callback(coco_annotations.close)
    placed, members = package_release(release, items, out, parts)
    return ReleaseContents(release.version, release.manifest, release.meta, ledger, counts, datasheet_pictures(release),
                           members, placed, frozenset(release.deflated_segments), frozenset(coco_annotations.fragments))


def _batches(table: pl.DataFrame | BatchTables) -> BatchTables:
    return table if isinstance(table, BatchTables) else FrameBatches({"all": table})


def package_release(release: ReleaseContext, items: pl.DataFrame, out: BinaryIO,
                    parts: PartPlanner | None = None) -> tuple[PartLayout | None, pl.DataFrame]:
    """write_release into the version's ZIP streamed into `out`: where the items' files went, and
    the member index (members.parquet) of every file. The deflate of coco.json's segments is
    remembered in the release's store for the next build."""
    with ZipPackager(out, DeflatedSegments(release.store, release.dataset_name, release.deflated_segments)) as packager:
        placed = write_release(release, items, packager, parts)
    return placed, member_index(release.packaged, placed or PartLayout(), packager.sizes)


def write_release(release: ReleaseContext, items: pl.DataFrame, packager: Packager,
                  parts: PartPlanner | None = None) -> PartLayout | None:
    """Run every writer of WRITERS over `items` (one row per released image, see release_items) into
    `packager`, sealing the release's manifest, content version and meta between the items and the
    closing members. With a planner, the items' members are planned first and then placed, into
    `packager` or into shared parts; where they went is returned."""
    items = items.with_columns(as_sparse(items["class_pixels"]))  # as release_items has them, from any caller
    with release.resources:
        writers = [make(release) for make in WRITERS.values() if make.runs_in(release)]
        for n, row in enumerate(items.sort("split", "image_id").iter_rows(named=True)):
            item = ReleaseItem(row, release.store)
            group = f"{item.group}/{row['split']}"
            for writer in writers:
                for member in writer.item_members(item):
                    release.packaged[member.path] = (packager.add(member) if parts is None
                                                     else parts.add(member, n, group))
        placed = None if parts is None else parts.place(packager)
        release.manifest = manifest_table(release.manifest_rows)
        release.version = release_version(release, writers)
        release.meta = release_meta(release)
        for writer in writers:
            for member in writer.closing_members():
                release.packaged[member.path] = packager.add(member)
    return placed


def batch_order(images: pl.DataFrame) -> dict[str, int]:
    """batch id -> its place in the order the batches landed (batch_images' landed_at, unknown first;
    then by id): a batch that lands later comes after every earlier one, whatever its name."""
    landed = images.group_by("batch_id").agg(pl.col("landed_at").min()).sort("landed_at", "batch_id", nulls_last=False)
    return {batch: place for place, batch in enumerate(landed["batch_id"])}


def release_version(release: ReleaseContext, writers: Sequence[ReleaseWriter]) -> str:
    """Content hash of what the release holds: same data, same version. The manifest covers every
    image and mask (by SHA-256); the writers add what it does not, such as the QA and sampling
    reports and the COCO annotations (a polygon edit that moves no mask pixel still changes coco.json)."""
    digest = hashlib.sha256()
    digest.update(f"{release.dataset_name}\0{release.taxonomy.taxonomy_version}\0{release.mask_encoding}\0".encode())
    digest.update(release.manifest.sort("image_id").write_csv().encode())
    for writer in writers:
        digest.update(writer.version_content())
    return digest.hexdigest()[:12]


def release_items(splits: pl.DataFrame, consensus: pl.DataFrame, images: pl.DataFrame,
                  qa_results: pl.DataFrame) -> pl.DataFrame:
    """One row per image to release: its split, released mask and its class pixels (sparse, as
    core/shared/class_pixels.py holds them, whichever form `consensus` has), a source file,
    metadata merged over its deliveries (the current ones first: see image_metadata; a review that
    released nothing is no delivery), qa_warnings: the QA rules failed by the entries of it that QA
    kept (`;`-separated, null when none), and part_group: the batch its file name comes from (the
    first current one by id), whose parts hold it in a release in parts."""
    unapplied = unapplied_reviews(images, consensus)
    per_image = image_metadata(images, {*superseded_entries(images), *unapplied}).with_columns(
        pl.col("source_batches").str.split(";").list.first().alias("part_group"))
    accepted = consensus.filter(pl.col("status") == "accepted").select(
        "image_id", "mask_key", "instance_mask_key", "mask_source", "agreement", "class_pixels")
    accepted = accepted.with_columns(as_sparse(accepted["class_pixels"]))
    chosen = splits.filter(pl.col("split").is_not_null()).select("image_id", "split")
    kept = qa_results.join(excluded_entries(qa_results), on="entry_id", how="anti").filter(
        ~pl.col("entry_id").is_in(sorted(unapplied)))
    warnings = (kept.filter(~pl.col("passed")).select("entry_id", "check_id")
                .join(images.select("entry_id", "image_id"), on="entry_id")
                .group_by("image_id").agg(pl.col("check_id").unique().sort().str.join(";").alias("qa_warnings")))
    return (chosen.join(accepted, on="image_id").join(per_image, on="image_id")
            .join(warnings, on="image_id", how="left").sort("image_id"))
