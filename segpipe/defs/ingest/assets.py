from collections.abc import Iterator, Sequence

import dagster as dg
import polars as pl

from segpipe.core.shared.errors import InputError
from segpipe.core.ingest.batch import IngestedBatch, ingest_batch, quarantine_unreadable_batch
from segpipe.core.ingest.model_settings import ModelSettings
from segpipe.core.ingest.batch_report import quarantine_reasons, unusable_batch
from segpipe.defs.batches import LANDED_AT
from segpipe.defs.ingest.bad_input import BAD_INPUT_TAG, BATCH_USABLE, USABLE_DESCRIPTION, tag_value, usable_result
from segpipe.defs.metadata import markdown_table, metadata_table
from segpipe.defs.partitions import BATCH_BACKFILL_POLICY, annotation_batches, batch_check_results, batch_check_spec
from segpipe.defs.retries import OBJECT_STORE_RETRY, only_transient_retried
from segpipe.io.annotator_pseudonyms import AnnotatorPseudonyms
from segpipe.io.object_store import LandingZone, ObjectStore
from segpipe.io.pipeline_config import PipelineConfig


def _read_batch(batch_id: str, landing_zone: LandingZone, object_store: ObjectStore, key: bytes,
                models: ModelSettings) -> tuple[IngestedBatch, float | None]:
    """The batch as read, and when it landed (its batch.json's or archive's modification time; None
    when it could not be opened)."""
    try:
        with landing_zone.open_batch(batch_id) as (source, landed):
            return ingest_batch(source, batch_id, key, object_store.write_content_addressed,
                                landed_at=landed.ready_at, models=models), landed.ready_at
    except InputError as exc:  # the archive itself is unsafe or unreadable, or the batch is gone
        return quarantine_unreadable_batch(batch_id, exc), None


@dg.multi_asset(
    outs={
        "batch_images": dg.AssetOut(kinds={"polars"}, description="Accepted image entries of the batch, with metadata and content hash."),
        "batch_shapes": dg.AssetOut(kinds={"polars"}, description="Shapes of accepted entries (polygons, boxes, masks, ...), in the source's raw labels."),
        "batch_quarantine": dg.AssetOut(kinds={"polars"}, description="Entries that could not be used, each with a rule and a message."),
        "batch_files": dg.AssetOut(kinds={"polars"}, description="Every file of the batch: its role, and whether it was read, rejected or unused."),
    },
    group_name="ingest",
    partitions_def=annotation_batches,
    backfill_policy=BATCH_BACKFILL_POLICY,
    pool="object_store",
    retry_policy=OBJECT_STORE_RETRY,
    check_specs=[
        batch_check_spec("entries_accepted", "batch_quarantine", (
            "Every entry of the batch was accepted; lists the quarantined ones by rule, with their files, the "
            "message and what to do otherwise. A warning: the accepted entries go on.")),
        batch_check_spec(BATCH_USABLE.name, BATCH_USABLE.asset_key.to_user_string(), USABLE_DESCRIPTION),
    ],
)
def ingest_annotation_batch(
    context: dg.AssetExecutionContext, landing_zone: LandingZone, object_store: ObjectStore,
    annotator_pseudonyms: AnnotatorPseudonyms, pipeline_config: PipelineConfig,
):
    """Read each landing batch of the run; an unusable file becomes a quarantine row, never a failed
    run, and a batch of which nothing is usable marks its run (tag segpipe/bad_input) and fails its
    batch_usable check. Accepted images are copied into the object store by content hash; a store
    that fails to answer is retried with backoff (defs/retries.py)."""
    with only_transient_retried():
        yield from _ingest_batches(context, landing_zone, object_store, annotator_pseudonyms.key(),
                                   pipeline_config.settings().models)


def _ingest_batches(
    context: dg.AssetExecutionContext, landing_zone: LandingZone, object_store: ObjectStore, key: bytes,
    models: ModelSettings,
) -> Iterator[dg.Output | dg.AssetCheckEvaluation]:
    batch_ids: Sequence[str] = context.partition_keys
    read = {batch_id: _read_batch(batch_id, landing_zone, object_store, key, models) for batch_id in batch_ids}
    batches = {batch_id: batch for batch_id, (batch, _) in read.items()}
    for batch_id, (batch, landed_at) in read.items():
        _add_batch_metadata(context, batch_id, batch, landed_at)
    unusable = {batch_id: unusable_batch(batch) for batch_id, batch in batches.items()}
    bad = [batch_id for batch_id, problem in unusable.items() if problem is not None]
    if bad:
        context.instance.add_run_tags(context.run.run_id, {BAD_INPUT_TAG: tag_value(bad)})
    for name in ("images", "shapes", "quarantine", "files"):
        yield dg.Output({b: getattr(batch, name) for b, batch in batches.items()}, output_name=f"batch_{name}")
    yield from batch_check_results(context, "batch_quarantine", "entries_accepted", {
        batch_id: _accepted_result(batch_id, batch) for batch_id, batch in batches.items()})
    yield from batch_check_results(context, BATCH_USABLE.asset_key.to_user_string(), BATCH_USABLE.name, {
        batch_id: usable_result(batch_id, problem) for batch_id, problem in unusable.items()})


def _add_batch_metadata(context: dg.AssetExecutionContext, batch_id: str, batch: IngestedBatch,
                        landed_at: float | None) -> None:
    """Each partition's own numbers, not the run's totals; and when the batch read had landed, by
    which `segpipe build` tells a batch landed again since (defs/batches.landed_again)."""
    def add(asset: str, metadata: dict) -> None:
        context.add_asset_metadata(metadata, asset_key=asset, partition_key=batch_id)

    add("batch_images", {"entries_accepted": batch.images.height, "format": batch.source_format or "unreadable"})
    add("batch_shapes", {
        "shapes": batch.shapes.height,
        "by_kind": dg.MetadataValue.md(markdown_table(batch.shapes.group_by("kind").len("shapes").sort("kind")))})
    add("batch_quarantine", {"entries_quarantined": batch.quarantine.height,
                             "reasons": metadata_table(quarantine_reasons(batch.quarantine))})
    add("batch_files", {"files": batch.files.height,
                        "not_read": batch.files.filter(pl.col("outcome") != "read").height,
                        **({} if landed_at is None else {LANDED_AT: dg.MetadataValue.timestamp(landed_at)})})


def _accepted_result(batch_id: str, batch: IngestedBatch) -> dg.AssetCheckResult:
    quarantined, entries = batch.quarantine.height, batch.images.height + batch.quarantine.height
    return dg.AssetCheckResult(
        passed=batch.quarantine.is_empty(), severity=dg.AssetCheckSeverity.WARN,
        description=(f"batch {batch_id}: all {entries} entries accepted" if not quarantined else
                     f"Warning: {quarantined} of the {entries} entries of batch {batch_id} are quarantined; "
                     "the accepted ones go on"),
        metadata={"batch": batch_id, "quarantined": quarantined,
                  "reasons": metadata_table(quarantine_reasons(batch.quarantine)),
                  "entries": metadata_table(batch.quarantine.select("file_name", "rule", "message"))},
    )
