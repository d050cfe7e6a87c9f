import dagster as dg
import polars as pl

from segpipe.core.polygon_checks import polygon_findings
from segpipe.core.qa import evaluate_entries
from segpipe.core.taxonomy import unmapped_segments
from segpipe.io.pipeline_config import PipelineConfig


@dg.asset(group_name="qa", kinds={"polars"})
def qa_report(
    context: dg.AssetExecutionContext,
    pipeline_config: PipelineConfig,
    annotation_masks: pl.DataFrame,
    batch_images: pl.DataFrame,
    mapped_shapes: pl.DataFrame,
) -> pl.DataFrame:
    """Every QA rule on every entry of every batch: masks judged by their pixels per class (counted
    when the mask was made, so no mask is decoded here), polygons by their outlines."""
    taxonomy, settings = pipeline_config.taxonomy(), pipeline_config.settings()
    entries = annotation_masks.join(
        batch_images.select("entry_id", "batch_id", "file_name"), on="entry_id", how="left", validate="1:1")
    unmapped = unmapped_segments(mapped_shapes)
    polygons = polygon_findings(mapped_shapes, batch_images, settings.qa.vertex_tolerance_px)
    results = evaluate_entries(entries, unmapped, taxonomy, settings.qa, polygons)
    failed = results.filter(~pl.col("passed"))
    context.add_output_metadata({
        "entries_checked": entries.height,
        "failures_by_rule": dg.MetadataValue.json(dict(failed.group_by("check_id").len().sort("check_id").iter_rows())),
    })
    return results
