import dagster as dg

from segpipe.core.errors import InputError
from segpipe.core.ingest import IngestedBatch, ingest_batch, quarantine_unreadable_batch
from segpipe.defs.metadata import markdown_table
from segpipe.defs.partitions import annotation_batches
from segpipe.io.annotator_pseudonyms import AnnotatorPseudonyms
from segpipe.io.object_store import LandingZone, ObjectStore


def _read_batch(batch_id: str, landing_zone: LandingZone, object_store: ObjectStore, key: bytes) -> IngestedBatch:
    try:
        with landing_zone.open_batch(batch_id) as source:
            return ingest_batch(source, batch_id, key, object_store.write_content_addressed)
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
    check_specs=[dg.AssetCheckSpec(
        "entries_accepted", asset="batch_quarantine",
        description="Every entry of the batch was accepted; lists quarantined files otherwise.")],
)
def ingest_annotation_batch(
    context: dg.AssetExecutionContext, landing_zone: LandingZone, object_store: ObjectStore,
    annotator_pseudonyms: AnnotatorPseudonyms,
):
    """Read one landing batch; an unusable file becomes a quarantine row, never a failed run.
    Accepted images are copied into the object store by content hash."""
    batch = _read_batch(context.partition_key, landing_zone, object_store, annotator_pseudonyms.key())
    quarantined = batch.quarantine.height
    kinds = batch.shapes.group_by("kind").len().sort("kind")
    yield dg.Output(batch.images, output_name="batch_images", metadata={
        "entries_accepted": batch.images.height, "format": batch.source_format or "unreadable"})
    yield dg.Output(batch.shapes, output_name="batch_shapes", metadata={
        "shapes": batch.shapes.height, "by_kind": dg.MetadataValue.md(markdown_table(kinds))})
    yield dg.Output(batch.quarantine, output_name="batch_quarantine", metadata={"entries_quarantined": quarantined})
    yield dg.Output(batch.files, output_name="batch_files", metadata={
        "files": batch.files.height, "not_read": batch.files.filter(batch.files["outcome"] != "read").height})
    yield dg.AssetCheckResult(
        check_name="entries_accepted", asset_key="batch_quarantine", passed=quarantined == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined": quarantined, "entries": dg.MetadataValue.md(markdown_table(batch.quarantine.head(20)))},
    )
