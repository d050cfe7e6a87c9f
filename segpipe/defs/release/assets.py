import dagster as dg
import polars as pl

from segpipe.core.qa.pictures import qa_legend
from segpipe.core.release import layout
from segpipe.core.release.build import ReleaseInputs
from segpipe.core.release.writers import BuildStamp
from segpipe.core.release.writers.datasheet import DatasheetPicture
from segpipe.core.shared.batch_tables import BatchTables
from segpipe.core.shared.pictures import Picture
from segpipe.core.taxonomy.model import Taxonomy
from segpipe.defs.batches import batches_not_done, done_batches
from segpipe.core.release.diff import ReleaseDiff
from segpipe.defs.metadata import md_table, readable
from segpipe.defs.pictures import gallery, legend, store_location
from segpipe.defs.retries import OBJECT_STORE_RETRY, only_transient_retried
from segpipe.io.annotator_pseudonyms import AnnotatorPseudonyms
from segpipe.io.object_store import LandingZone, ObjectStore
from segpipe.io.pipeline_config import PipelineConfig
from segpipe.store import keys
from segpipe.store.release_build import build_and_publish


def release_pictures(pictures: list[DatasheetPicture], archive: str, taxonomy: Taxonomy) -> dict[str, dg.MetadataValue]:
    """The datasheet's chart, naming its member of the archive, and the legend as a table of swatches
    (its QA thumbnails are qa_report's, shown there)."""
    chart = [Picture(f"{p.caption} ({p.path})", p.read, f"{p.path} in {archive}")
             for p in pictures if p.path == layout.DISTRIBUTION_CHART]
    return {"chart": gallery(chart), "legend": legend(qa_legend(taxonomy))}


@dg.asset(
    group_name="release",
    kinds={"zip", "parquet"},
    pool="object_store",
    retry_policy=OBJECT_STORE_RETRY,
    check_specs=[dg.AssetCheckSpec(
        "ledger_balances", asset="dataset_release",
        description="Every input entry is released, filtered with a reason, or quarantined: the counts add up.")],
)
def dataset_release(
    context: dg.AssetExecutionContext,
    pipeline_config: PipelineConfig,
    object_store: ObjectStore,
    landing_zone: LandingZone,
    annotator_pseudonyms: AnnotatorPseudonyms,
    dataset_split: pl.DataFrame,
    sampling_report: pl.DataFrame,
    class_balance: pl.DataFrame,
    consensus_masks: pl.DataFrame,
    annotation_masks: BatchTables,
    mapped_shapes: BatchTables,
    batch_images: pl.DataFrame,
    batch_quarantine: pl.DataFrame,
    qa_report: pl.DataFrame,
) -> dg.MaterializeResult:
    """A versioned ZIP (images, masks, coco.json, index.csv, meta.json, the QA and sampling reports)
    with its Parquet manifest and item ledger, published as the next dated version (never
    overwritten) unless the newest release already holds this content. Past release.part_mib of
    images and masks, the items' files go into shared parts, of which a build writes only those no
    earlier version holds (`parts`, `parts_written`). It holds the batches done
    (defs/batches.py) and names each other one with its last failure; a batch never ingested has no
    entries, so it is in no count of the ledger. A store that fails to answer is
    retried with backoff; a conflict with someone else's release is not (defs/retries.py)."""
    with only_transient_retried():
        taxonomy, settings = pipeline_config.taxonomy(), pipeline_config.settings()
        inputs = ReleaseInputs(
            dataset_split=dataset_split, sampling_report=sampling_report, class_balance=class_balance,
            consensus_masks=consensus_masks, annotation_masks=annotation_masks, mapped_shapes=mapped_shapes,
            batch_images=batch_images, batch_quarantine=batch_quarantine, qa_report=qa_report, taxonomy=taxonomy,
            dataset_name=settings.dataset_name, mask_encoding=settings.mask_encoding, sampling=settings.sampling,
            near_duplicate_bits=settings.qa.near_duplicate_bits, store=object_store.artefacts(),
            stamp=BuildStamp.now(context.run.run_id), landing_uri=landing_zone.uri(),
            pseudonym_key=annotator_pseudonyms.key(), part_bytes=settings.release.part_bytes,
            exports=settings.release.exports, cityscapes_city=settings.release.cityscapes_city,
            workers=settings.release.workers)
        fs, root = object_store.location()
        built = build_and_publish(fs, root, inputs)
        object_store.make_durable()  # the marker and pointer on disk before the materialization is recorded
    contents, published, diff, counts = built.contents, built.published, built.diff, built.contents.counts
    archive_key = f"{published.prefix}/{keys.archive_name(settings.dataset_name, published.version)}"
    not_done = batches_not_done(context.instance)
    balanced = counts["input"] == counts["released"] + counts["filtered"] + counts["quarantined"]
    return dg.MaterializeResult(
        metadata=readable({
            "version": published.version,
            "content_digest": contents.version,
            "latest": published.latest,
            "release": store_location(object_store, published.prefix),
            "archive": store_location(object_store, archive_key),
            **release_pictures(contents.pictures, object_store.url(archive_key), taxonomy),
            "newly_published": published.newly_published,
            "parts": len(published.marker.get("parts", {})),
            "parts_written": len(built.parts_written),
            "entries": dg.MetadataValue.json(counts),
            "images_released": contents.manifest.height,
            "images_per_split": dg.MetadataValue.json(contents.meta["splits"]),
            **(_diff_metadata(built.previous_version, diff) if published.newly_published else {
                "diff_against": f"nothing published: {published.version} already holds this content"}),
            "batches_released": dg.MetadataValue.json(done_batches(context.instance)),
            "batches_not_released": dg.MetadataValue.json(not_done),
        }),
        check_results=[dg.AssetCheckResult(
            check_name="ledger_balances", passed=balanced, metadata={"entries": dg.MetadataValue.json(counts)})],
    )


def _diff_metadata(previous_version: str | None, diff: ReleaseDiff) -> dict[str, object]:
    """What changed since the release before this newly published one (every image is added to the first)."""
    return {
        "diff_against": previous_version or "none: the first release",
        "diff_images": dg.MetadataValue.json(diff.counts()),
        "diff_items": md_table(diff.items),
        "diff_classes": md_table(
            diff.classes.filter(pl.col("change").abs() > 0).sort(pl.col("change").abs(), descending=True),
            percent=("share_before", "share_after", "change")),
    }

