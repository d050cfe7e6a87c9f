import dagster as dg
import polars as pl

from segpipe.core.qa.by_batch import qa_by_batch
from segpipe.core.qa.pictures import failure_pictures, qa_legend
from segpipe.core.shared.batch_tables import BatchTables
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
    annotation_masks: BatchTables,
    batch_images: BatchTables,
    mapped_shapes: BatchTables,
) -> pl.DataFrame:
    """Every QA rule on every entry of every batch: masks judged by their pixels per class (counted
    when the mask was made) and by their structure (fragments, class constraints: each mask decoded
    once, remembered per mask content), polygons by their outlines. The first failures of each rule
    get a thumbnail: the image beside its mask in class colours, the problem in a colour no class
    uses (the legend says which); the first few are shown here, each rule's in its check. Batches
    are read and judged one at a time, and a batch's shape work is remembered (core/qa/by_batch.py)."""
    with only_transient_retried():
        taxonomy, settings = pipeline_config.taxonomy(), pipeline_config.settings()
        store, used = object_store.artefacts().recording()
        outcome = qa_by_batch(annotation_masks, batch_images, mapped_shapes, taxonomy, settings.qa, store)
        if pruned := object_store.prune_unused_memos(keys.QA_MEMO_DIRS, used):
            context.log.info(f"deleted {len(pruned)} QA memos of earlier settings or taxonomies, unused for an hour")
        results = outcome.results
        failed = results.filter(~pl.col("passed"))
        context.add_output_metadata(readable({
            "entries_checked": outcome.entries_checked,
            "thumbnails": gallery(stored_pictures(object_store, failure_pictures(results)),
                                  everything=object_store.url(keys.QA_THUMBNAILS_DIR)),
            "thumbnails_folder": store_location(object_store, keys.QA_THUMBNAILS_DIR),
            "legend": legend(qa_legend(taxonomy)),
            "failures_by_rule": dg.MetadataValue.json(dict(failed.group_by("check_id").len().sort("check_id").iter_rows())),
        }))
        return results
