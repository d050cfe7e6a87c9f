import dagster as dg
import polars as pl

from segpipe.core.artefact_keys import ArtefactStore
from segpipe.core.instance_masks import render_instance_masks
from segpipe.core.label_masks import rasterize_label_masks, render_class_masks
from segpipe.defs.metadata import markdown_table
from segpipe.defs.partitions import annotation_batches
from segpipe.io.object_store import ObjectStore
from segpipe.io.pipeline_config import PipelineConfig


@dg.asset(group_name="rasterize", partitions_def=annotation_batches, kinds={"polars", "png"})
def label_masks(
    context: dg.AssetExecutionContext,
    object_store: ObjectStore,
    batch_images: pl.DataFrame,
    batch_shapes: pl.DataFrame,
) -> pl.DataFrame:
    """Each entry drawn once in source-label space. It does not depend on the taxonomy, so a taxonomy
    change leaves it fresh and a backfill only remaps it (see annotation_masks)."""
    masks = rasterize_label_masks(batch_images, batch_shapes, object_store.artefacts())
    context.add_output_metadata({
        "masks_written": masks["label_mask_key"].drop_nulls().len(),
        "location": object_store.url(f"label-masks/{context.partition_key}"),
    })
    return masks


@dg.asset(group_name="rasterize", partitions_def=annotation_batches, kinds={"polars", "png"})
def annotation_masks(
    context: dg.AssetExecutionContext,
    pipeline_config: PipelineConfig,
    object_store: ObjectStore,
    batch_images: pl.DataFrame,
    label_masks: pl.DataFrame,
    mapped_shapes: pl.DataFrame,
) -> pl.DataFrame:
    """One indexed PNG mask per accepted entry in taxonomy classes: the label mask through the
    taxonomy's lookup table, or redrawn from the shapes where a lookup cannot be exact. Masks a
    taxonomy edit leaves as they were are found in the store and not written again. With
    `instance_masks: true`, each entry's 16-bit instance-id mask too."""
    taxonomy, settings = pipeline_config.taxonomy(), pipeline_config.settings()
    written: list[str] = []

    def write(key: str, data: bytes) -> None:
        written.append(object_store.write_bytes(key, data))

    store = ArtefactStore(object_store.read_bytes, write, object_store.exists)
    masks = render_class_masks(label_masks, mapped_shapes, batch_images, taxonomy, settings.mask_encoding, store)
    if settings.instance_masks:
        masks = render_instance_masks(context.partition_key, masks, mapped_shapes, taxonomy, store)
    counts = dict(masks.group_by("rendered_by").len().iter_rows())
    context.add_output_metadata({
        "masks": masks.height,
        "masks_written": len(written),
        "masks_unchanged": masks.height - len(written),
        "by_lookup": counts.get("lookup", 0),
        "redrawn": counts.get("redraw", 0),
        "mask_encoding": settings.mask_encoding,
        "instance_masks": masks["instance_mask_key"].drop_nulls().len(),
        "instance_errors": dg.MetadataValue.md(markdown_table(
            masks.filter(pl.col("instance_error").is_not_null()).select("entry_id", "instance_error"))),
        "location": object_store.url(f"masks/{context.partition_key}"),
    })
    return masks
