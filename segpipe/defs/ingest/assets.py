from collections.abc import Iterator, Sequence

import dagster as dg
import polars as pl

from segpipe.core.shared.errors import InputError
from segpipe.core.ingest.batch import IngestedBatch, ingest_batch, quarantine_unreadable_batch
from segpipe.defs.metadata import markdown_table
from segpipe.defs.partitions import annotation_batches
from segpipe.defs.retries import OBJECT_STORE_RETRY, only_transient_retried
from segpipe.io.annotator_pseudonyms import AnnotatorPseudonyms
from segpipe.io.object_store import LandingZone, ObjectStore


def _read_batch(batch_id: str, landing_zone: LandingZone, object_store: ObjectStore, key: bytes) -> IngestedBatch:
    try:
        with landing_zone.open_batch(batch_id) as (source, landed):
            return ingest_batch(source, batch_id, key, object_store.write_content_addressed,
                                landed_at=landed.ready_at)
    except InputError as exc:  # the archive itself is unsafe or unreadable, or the batch is gone
        return quarantine_unreadable_batch(batch_id, exc)


@dg.multi_asset(
    outs={
        "batch_images": dg.AssetOut(kinds={"polars"}, description="Accepted image entries of the batch, with metadata and content hash."),
        "batch_shapes": dg.AssetOut(kinds={"polars"}, description="Shapes of accepted entries (polygons, boxes, masks, ...), in the source's raw labels."),
        "batch_quarantine": dg.AssetOut(kinds={"polars"}, description="Entries that could not be used, each with a rule and a message."),
        "batch_files": dg.AssetOut(kinds={"polars"}, description="Every file of the batch: its role, and whether it was read, rejected or unused."),
    },
    group_name="ingest",
    partitions_def=annotation_batches,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="object_store",
    retry_policy=OBJECT_STORE_RETRY,
    check_specs=[dg.AssetCheckSpec(
        "entries_accepted", asset="batch_quarantine",
        description="Every entry of the batch (of each batch, in a run over several) was accepted; lists quarantined files otherwise.")],
)
def ingest_annotation_batch(
    context: dg.AssetExecutionContext, landing_zone: LandingZone, object_store: ObjectStore,
    annotator_pseudonyms: AnnotatorPseudonyms,
):
    """Read each landing batch of the run; an unusable file becomes a quarantine row, never a failed
    run. Accepted images are copied into the object store by content hash; a store that fails to
    answer is retried with backoff (defs/retries.py)."""
    with only_transient_retried():
        yield from _ingest_batches(context.partition_keys, landing_zone, object_store, annotator_pseudonyms.key())


def _ingest_batches(
    batch_ids: Sequence[str], landing_zone: LandingZone, object_store: ObjectStore, key: bytes,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    batches = {batch_id: _read_batch(batch_id, landing_zone, object_store, key) for batch_id in batch_ids}
    images = {b: batch.images for b, batch in batches.items()}
    shapes = {b: batch.shapes for b, batch in batches.items()}
    quarantine = {b: batch.quarantine for b, batch in batches.items()}
    files = {b: batch.files for b, batch in batches.items()}
    every_shape, every_quarantined, every_file = pl.concat(shapes.values()), pl.concat(quarantine.values()), pl.concat(files.values())
    formats = sorted({batch.source_format or "unreadable" for batch in batches.values()})
    yield dg.Output(images, output_name="batch_images", metadata={
        "entries_accepted": sum(frame.height for frame in images.values()), "format": ", ".join(formats)})
    yield dg.Output(shapes, output_name="batch_shapes", metadata={
        "shapes": every_shape.height,
        "by_kind": dg.MetadataValue.md(markdown_table(every_shape.group_by("kind").len().sort("kind")))})
    yield dg.Output(quarantine, output_name="batch_quarantine", metadata={"entries_quarantined": every_quarantined.height})
    yield dg.Output(files, output_name="batch_files", metadata={
        "files": every_file.height, "not_read": every_file.filter(every_file["outcome"] != "read").height})
    yield dg.AssetCheckResult(
        check_name="entries_accepted", asset_key="batch_quarantine", passed=every_quarantined.is_empty(),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined": every_quarantined.height,
                  "entries": dg.MetadataValue.md(markdown_table(every_quarantined.head(20)))},
    )
