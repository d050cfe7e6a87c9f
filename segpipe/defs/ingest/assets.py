import dagster as dg

from segpipe.core.ingest import ingest_batch
from segpipe.defs.metadata import markdown_table
from segpipe.defs.partitions import annotation_batches
from segpipe.io.object_store import LandingZone


@dg.multi_asset(
    outs={
        "batch_images": dg.AssetOut(kinds={"polars"}, description="Accepted image entries of the batch, with metadata and content hash."),
        "batch_shapes": dg.AssetOut(kinds={"polars"}, description="Polygons of accepted entries, in the source's raw labels."),
        "batch_quarantine": dg.AssetOut(kinds={"polars"}, description="Entries that could not be used, each with a rule and a message."),
    },
    group_name="ingest",
    partitions_def=annotation_batches,
    check_specs=[dg.AssetCheckSpec(
        "entries_accepted", asset="batch_quarantine",
        description="Every entry of the batch was accepted; lists quarantined files otherwise.")],
)
def ingest_annotation_batch(context: dg.AssetExecutionContext, landing_zone: LandingZone):
    """Read one landing batch; an unusable file becomes a quarantine row, never a failed run."""
    fs, root = landing_zone.location()
    batch = ingest_batch(fs, root, context.partition_key)
    quarantined = batch.quarantine.height
    yield dg.Output(batch.images, output_name="batch_images", metadata={"entries_accepted": batch.images.height})
    yield dg.Output(batch.shapes, output_name="batch_shapes", metadata={"shapes": batch.shapes.height})
    yield dg.Output(batch.quarantine, output_name="batch_quarantine", metadata={"entries_quarantined": quarantined})
    yield dg.AssetCheckResult(
        check_name="entries_accepted", asset_key="batch_quarantine", passed=quarantined == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined": quarantined, "entries": dg.MetadataValue.md(markdown_table(batch.quarantine.head(20)))},
    )

