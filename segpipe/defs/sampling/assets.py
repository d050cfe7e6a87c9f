import dagster as dg
import polars as pl

from segpipe.core.ingest import image_metadata
from segpipe.core.near_duplicates import split_leaks
from segpipe.core.sampling import assign_splits, split_proportions
from segpipe.defs.metadata import markdown_table
from segpipe.io.pipeline_config import PipelineConfig


@dg.asset(
    group_name="sampling",
    kinds={"polars"},
    check_specs=[dg.AssetCheckSpec(
        "near_duplicates_in_one_split", asset="dataset_split",
        description="No two near-duplicate images (perceptual hash within qa.near_duplicate_bits) are in different "
                    "splits, where a copy in test would leak what train saw. Severity: WARN.")],
)
def dataset_split(
    pipeline_config: PipelineConfig, consensus_masks: pl.DataFrame, batch_images: pl.DataFrame
):
    """Seeded train/val/test assignment of accepted images, stratified, with no group in two splits;
    near-duplicate images in different splits are reported."""
    settings = pipeline_config.settings()
    sampling = settings.sampling
    accepted = consensus_masks.filter(pl.col("status") == "accepted").select("image_id")
    splits = assign_splits(accepted.join(image_metadata(batch_images), on="image_id", how="left"), sampling)
    by_stratum = splits.group_by("stratum", "split").len().sort("stratum", "split")
    leaks = split_leaks(splits, batch_images, settings.qa.near_duplicate_bits)
    yield dg.Output(splits, metadata={
        "proportions": dg.MetadataValue.json(split_proportions(splits)),
        "targets": dg.MetadataValue.json(sampling.splits),
        "by_stratum": dg.MetadataValue.json([dict(zip(by_stratum.columns, row, strict=True)) for row in by_stratum.iter_rows()]),
    })
    yield dg.AssetCheckResult(
        check_name="near_duplicates_in_one_split", passed=leaks.is_empty(), severity=dg.AssetCheckSeverity.WARN,
        metadata={"pairs_across_splits": leaks.height, "pairs": dg.MetadataValue.md(markdown_table(leaks.head(20)))})
