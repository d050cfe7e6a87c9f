import dagster as dg
import polars as pl

from segpipe.core.shared.schemas import ImageRecord, with_later_columns
from segpipe.core.qa.instance_areas import instance_area_findings
from segpipe.core.qa.mask_structure import mask_structure
from segpipe.core.qa.polygon_checks import polygon_findings
from segpipe.core.qa.rules import evaluate_entries, with_thumbnails
from segpipe.core.qa.pictures import failure_pictures, qa_legend, render_qa_thumbnails
from segpipe.core.taxonomy.model import unmapped_segments
from segpipe.defs.metadata import readable
from segpipe.defs.pictures import gallery, legend, store_location, stored_pictures
from segpipe.defs.retries import OBJECT_STORE_RETRY, only_transient_retried
from segpipe.io.object_store import ObjectStore
from segpipe.io.pipeline_config import PipelineConfig
from segpipe.store import keys


@dg.asset(group_name="qa", kinds={"polars"}, retry_policy=OBJECT_STORE_RETRY)
def qa_report(
    context: dg.AssetExecutionContext,
    pipeline_config: PipelineConfig,
    object_store: ObjectStore,
    annotation_masks: pl.DataFrame,
    batch_images: pl.DataFrame,
    mapped_shapes: pl.DataFrame,
) -> pl.DataFrame:
    """Every QA rule on every entry of every batch: masks judged by their pixels per class (counted
    when the mask was made) and by their structure (fragments, class constraints: each mask decoded
    once, remembered per mask content), polygons by their outlines. The first failures of each rule
    get a thumbnail: the image beside its mask in class colours, the problem in a colour no class
    uses (the legend says which); the first few are shown here, each rule's in its check."""
    with only_transient_retried():
        taxonomy, settings = pipeline_config.taxonomy(), pipeline_config.settings()
        batch_images = with_later_columns(batch_images, ImageRecord)
        entries = annotation_masks.join(
            batch_images.select("entry_id", "batch_id", "file_name", "landed_at", "perceptual_hash"), on="entry_id",
            how="left", validate="1:1")
        unmapped = unmapped_segments(mapped_shapes)
        polygons = pl.concat([
            polygon_findings(mapped_shapes, batch_images, settings.qa.vertex_tolerance_px),
            instance_area_findings(mapped_shapes, taxonomy, settings.qa.instance_area_sigma),
        ])
        structure = mask_structure(annotation_masks, taxonomy, settings.qa.min_fragment_px, object_store.artefacts())
        results = evaluate_entries(entries, unmapped, taxonomy, settings.qa, polygons, structure)
        failures = results.filter(~pl.col("passed")).join(
            annotation_masks.select("entry_id", "mask_key"), on="entry_id").join(
            batch_images.select("entry_id", "image_key"), on="entry_id")
        thumbnails = render_qa_thumbnails(failures, polygons, mapped_shapes, taxonomy, object_store.artefacts(),
                                          settings.qa.min_fragment_px)
        results = with_thumbnails(results, thumbnails)
        failed = results.filter(~pl.col("passed"))
        context.add_output_metadata(readable({
            "entries_checked": entries.height,
            "thumbnails": gallery(stored_pictures(object_store, failure_pictures(results)),
                                  everything=object_store.url(keys.QA_THUMBNAILS_DIR)),
            "thumbnails_folder": store_location(object_store, keys.QA_THUMBNAILS_DIR),
            "legend": legend(qa_legend(taxonomy)),
            "failures_by_rule": dg.MetadataValue.json(dict(failed.group_by("check_id").len().sort("check_id").iter_rows())),
        }))
        return results
