import dagster as dg
import polars as pl

from segpipe.core.raster import rasterize_batch
from segpipe.defs.partitions import annotation_batches
from segpipe.io.object_store import ObjectStore
from segpipe.io.pipeline_config import PipelineConfig


@dg.asset(group_name="rasterize", partitions_def=annotation_batches, kinds={"polars", "png"})
def annotation_masks(
    context: dg.AssetExecutionContext,
    pipeline_config: PipelineConfig,
    object_store: ObjectStore,
    batch_images: pl.DataFrame,
    mapped_shapes: pl.DataFrame,
) -> pl.DataFrame:
    """One indexed PNG mask per accepted entry (painter's order by z_order, ignore index for unlabelled pixels)."""
    taxonomy, settings = pipeline_config.taxonomy(), pipeline_config.settings()
    masks = rasterize_batch(batch_images, mapped_shapes, taxonomy, settings.mask_encoding, object_store.write_bytes)
    context.add_output_metadata({
        "masks_written": masks.height,
        "mask_encoding": settings.mask_encoding,
        "location": object_store.url(f"masks/{taxonomy.taxonomy_version}/{context.partition_key}"),
    })
    return masks
