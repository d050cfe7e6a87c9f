import io

import dagster as dg
import polars as pl

from segpipe.core.release.coco_annotations import SHAPE_COLUMNS, released_shapes
from segpipe.core.sampling.report import report_files
from segpipe.core.release.ledger import build_ledger, outcome_counts
from segpipe.core.qa.near_duplicates import split_leaks
from segpipe.store.publish import latest_release_file, open_staging, publish_release
from segpipe.core.qa.rules import excluded_entries
from segpipe.core.release.archive import BuildStamp, release_items, write_release_archive
from segpipe.core.release.diff import diff_against, diff_files
from segpipe.core.release.verify import archive_problems
from segpipe.core.sampling.sample import unselected_reasons
from segpipe.defs.metadata import markdown_table
from segpipe.defs.retries import OBJECT_STORE_RETRY, decisions_not_retried
from segpipe.io.object_store import ObjectStore
from segpipe.io.pipeline_config import PipelineConfig
from segpipe.store import keys

STAGED_ARCHIVE = "dataset.zip"


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
    dataset_split: pl.DataFrame,
    sampling_report: pl.DataFrame,
    class_balance: pl.DataFrame,
    consensus_masks: pl.DataFrame,
    annotation_masks: pl.DataFrame,
    mapped_shapes: pl.DataFrame,
    batch_images: pl.DataFrame,
    batch_quarantine: pl.DataFrame,
    qa_report: pl.DataFrame,
) -> dg.MaterializeResult:
    """A versioned ZIP (images, masks, coco.json, index.csv, meta.json, the QA and sampling reports)
    with its Parquet manifest and item ledger, published as the next dated version (never
    overwritten) unless the newest release already holds this content. A store that fails to answer is
    retried with backoff; a conflict with someone else's release is not (defs/retries.py)."""
    with decisions_not_retried():
        taxonomy, settings = pipeline_config.taxonomy(), pipeline_config.settings()
        items = release_items(dataset_split, consensus_masks, batch_images, qa_report)
        ledger = build_ledger(batch_images, batch_quarantine, excluded_entries(qa_report), consensus_masks,
                              set(items["image_id"]), unselected_reasons(dataset_split, settings.sampling))
        counts = outcome_counts(ledger)
        shapes = released_shapes(consensus_masks, annotation_masks.select("mask_key", "entry_id"),
                                 mapped_shapes.select(SHAPE_COLUMNS))
        fs, root = object_store.location()
        with open_staging(fs, root, settings.dataset_name) as staging:
            with staging.open(STAGED_ARCHIVE) as out:
                contents = write_release_archive(
                    out, items, object_store.artefacts(), taxonomy,
                    settings.dataset_name, settings.mask_encoding, counts, qa_report, BuildStamp.now(context.run.run_id),
                    report_files(sampling_report, class_balance, split_leaks(
                        dataset_split.filter(pl.col("split").is_not_null()), batch_images, settings.qa.near_duplicate_bits)),
                    shapes)
            staging.put_bytes("manifest.parquet", _parquet(contents.manifest))
            staging.put_bytes("ledger.parquet", _parquet(ledger))
            previous_version, previous_bytes = latest_release_file(fs, root, settings.dataset_name, "manifest.parquet")
            previous = None if previous_bytes is None else pl.read_parquet(io.BytesIO(previous_bytes))
            diff = diff_against(previous, contents.manifest)
            for name, data in diff_files(diff, previous_version).items():
                staging.put_bytes(name, data)
            published = publish_release(
                fs, root, settings.dataset_name, staging, STAGED_ARCHIVE, {"counts": counts, "run_id": context.run.run_id},
                content_digest=contents.version, taxonomy_version=taxonomy.taxonomy_version, check_archive=archive_problems)
    archive_key = f"{published.prefix}/{keys.archive_name(settings.dataset_name, published.version)}"
    balanced = counts["input"] == counts["released"] + counts["filtered"] + counts["quarantined"]
    return dg.MaterializeResult(
        metadata={
            "version": published.version,
            "content_digest": contents.version,
            "latest": published.latest,
            "release": dg.MetadataValue.url(object_store.url(published.prefix)),
            "archive": dg.MetadataValue.url(object_store.url(archive_key)),
            "newly_published": published.newly_published,
            "counts": dg.MetadataValue.json(counts),
            "splits": dg.MetadataValue.json(contents.meta["splits"]),
            "diff_against": previous_version or "none",
            "diff_counts": dg.MetadataValue.json(diff.counts()),
            "diff_items": dg.MetadataValue.md(markdown_table(diff.items.head(20))),
            "diff_classes": dg.MetadataValue.md(markdown_table(
                diff.classes.filter(pl.col("change").abs() > 0).sort(pl.col("change").abs(), descending=True))),
            "dagster/row_count": contents.manifest.height,
        },
        check_results=[dg.AssetCheckResult(
            check_name="ledger_balances", passed=balanced, metadata={"counts": dg.MetadataValue.json(counts)})],
    )


def _parquet(table: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table.write_parquet(buffer)
    return buffer.getvalue()
