import dagster as dg
import polars as pl

from segpipe.core.ingest import image_metadata
from segpipe.core.sampling import assign_splits, split_proportions
from segpipe.io.pipeline_config import PipelineConfig


@dg.asset(group_name="sampling", kinds={"polars"})
def dataset_split(
    context: dg.AssetExecutionContext, pipeline_config: PipelineConfig, consensus_masks: pl.DataFrame, batch_images: pl.DataFrame
) -> pl.DataFrame:
    """Seeded train/val/test assignment of accepted images, stratified, with no group in two splits."""
    sampling = pipeline_config.settings().sampling
    accepted = consensus_masks.filter(pl.col("status") == "accepted").select("image_id")
    splits = assign_splits(accepted.join(image_metadata(batch_images), on="image_id", how="left"), sampling)
    by_stratum = splits.group_by("stratum", "split").len().sort("stratum", "split")
    context.add_output_metadata({
        "proportions": dg.MetadataValue.json(split_proportions(splits)),
        "targets": dg.MetadataValue.json(sampling.splits),
        "by_stratum": dg.MetadataValue.json([dict(zip(by_stratum.columns, row, strict=True)) for row in by_stratum.iter_rows()]),
    })
    return splits
