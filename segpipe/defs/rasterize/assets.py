import dagster as dg
import polars as pl

from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.rasterize.instance_masks import render_instance_masks
from segpipe.core.rasterize.label_masks import rasterize_label_masks, render_class_masks
from segpipe.core.release.item_annotations import render_class_masks_ahead
from segpipe.defs.metadata import markdown_table
from segpipe.defs.partitions import BATCH_BACKFILL_POLICY, PARALLEL_RUN_TAG, annotation_batches
from segpipe.defs.retries import OBJECT_STORE_RETRY, only_transient_retried
from segpipe.io.object_store import ObjectStore
from segpipe.io.pipeline_config import PipelineConfig


@dg.asset(group_name="rasterize", partitions_def=annotation_batches, kinds={"polars", "png"},
          backfill_policy=BATCH_BACKFILL_POLICY, pool="rasterize",
          retry_policy=OBJECT_STORE_RETRY)
def label_masks(
    context: dg.AssetExecutionContext,
    object_store: ObjectStore,
    batch_images: dict[str, pl.DataFrame],
    batch_shapes: dict[str, pl.DataFrame],
) -> dict[str, pl.DataFrame]:
    """Each entry drawn once in source-label space. It does not depend on the taxonomy, so a taxonomy
    change leaves it fresh and a backfill only remaps it (see annotation_masks)."""
    with only_transient_retried():
        tables = {batch: rasterize_label_masks(batch_images[batch], batch_shapes[batch], object_store.artefacts())
                  for batch in context.partition_keys}
        for batch, frame in tables.items():
            context.add_asset_metadata({"masks_written": frame["label_mask_key"].drop_nulls().len()},
                                       partition_key=batch)
        return tables


@dg.asset(group_name="rasterize", partitions_def=annotation_batches, kinds={"polars", "png"},
          backfill_policy=BATCH_BACKFILL_POLICY, pool="rasterize",
          retry_policy=OBJECT_STORE_RETRY)
def annotation_masks(
    context: dg.AssetExecutionContext,
    pipeline_config: PipelineConfig,
    object_store: ObjectStore,
    batch_images: dict[str, pl.DataFrame],
    label_masks: dict[str, pl.DataFrame],
    mapped_shapes: dict[str, pl.DataFrame],
) -> dict[str, pl.DataFrame]:
    """One indexed PNG mask per accepted entry in taxonomy classes: the label mask through the
    taxonomy's lookup table, or redrawn from the shapes where a lookup cannot be exact. Masks a
    taxonomy edit leaves as they were are found in the store and not written again. With
    `instance_masks: true`, each entry's 16-bit instance-id mask too. A batch's own run also
    computes what the release will ship of each mask it made (YOLO outlines, COCO shapes:
    item_annotations.render_class_masks_ahead), as batch runs share a build's processes; so does a
    run over several batches tagged PARALLEL_RUN_TAG (`segpipe backfill --workers N`). Another run
    over several batches leaves that to the release, which spreads it over release.workers."""
    with only_transient_retried():
        taxonomy, settings = pipeline_config.taxonomy(), pipeline_config.settings()
        written: list[str] = []

        def write(key: str, data: bytes) -> None:
            written.append(object_store.write_bytes(key, data))

        store = ArtefactStore(object_store.read_bytes, write, object_store.exists)
        tables = {}
        one_of_parallel_runs = len(context.partition_keys) == 1 or PARALLEL_RUN_TAG in context.run.tags
        for batch in context.partition_keys:
            written_before = len(written)
            inputs = (label_masks[batch], mapped_shapes[batch], batch_images[batch], taxonomy, settings.mask_encoding,
                      store)
            masks, ahead = (render_class_masks_ahead(*inputs) if one_of_parallel_runs
                            else (render_class_masks(*inputs), 0))
            if settings.instance_masks:
                masks = render_instance_masks(batch, masks, mapped_shapes[batch], taxonomy, store)
            tables[batch] = masks
            # instance masks are written too; only class masks count here
            class_masks_written = sum(key.startswith("masks/") for key in written[written_before:])
            context.add_asset_metadata({**_masks_metadata(masks, class_masks_written, settings.mask_encoding),
                                        "release_annotations_computed": ahead}, partition_key=batch)
        return tables


def _masks_metadata(masks: pl.DataFrame, class_masks_written: int, mask_encoding: str) -> dict:
    """One batch's masks: how many were written or found unchanged, and how each was made."""
    counts = dict(masks.group_by("rendered_by").len().iter_rows())
    return {
        "masks": masks.height,
        "masks_written": class_masks_written,
        "masks_unchanged": masks.height - class_masks_written,
        "by_lookup": counts.get("lookup", 0),
        "redrawn": counts.get("redraw", 0),
        "mask_encoding": mask_encoding,
        "instance_masks": masks["instance_mask_key"].drop_nulls().len(),
        "instance_errors": dg.MetadataValue.md(markdown_table(
            masks.filter(pl.col("instance_error").is_not_null()).select("entry_id", "instance_error"))),
    }
