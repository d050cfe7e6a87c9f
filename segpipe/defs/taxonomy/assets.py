import hashlib

import dagster as dg
import polars as pl

from segpipe.core.shared.errors import ConfigError
from segpipe.core.shared.pictures import colour_swatch
from segpipe.core.shared.schemas import MappedShapeRecord
from segpipe.core.taxonomy.coverage import no_label_mapped, unmapped_labels_with_rules
from segpipe.core.taxonomy.model import map_labels
from segpipe.defs.metadata import markdown_table, metadata_table
from segpipe.defs.partitions import BATCH_BACKFILL_POLICY, annotation_batches
from segpipe.defs.retries import OBJECT_STORE_RETRY, only_transient_retried
from segpipe.environment import current_environment
from segpipe.io.pipeline_config import PipelineConfig

# The file's hash is the code version, so editing the taxonomy marks this asset Unsynced.
TAXONOMY_CODE_VERSION = "v1:" + hashlib.sha256(current_environment().taxonomy_path.read_bytes()).hexdigest()[:12]


@dg.asset(group_name="taxonomy", code_version=TAXONOMY_CODE_VERSION, kinds={"yaml"})
def taxonomy_spec(pipeline_config: PipelineConfig) -> dg.MaterializeResult:
    """The validated taxonomy; its data version is the normalized content hash, so
    comment-only edits leave downstream assets up to date."""
    taxonomy = pipeline_config.taxonomy()
    classes = pl.DataFrame([{"id": c.id, "name": c.name, "colour": colour_swatch(c.color)} for c in taxonomy.classes])
    return dg.MaterializeResult(
        data_version=dg.DataVersion(taxonomy.content_hash),
        metadata={
            "taxonomy_version": taxonomy.taxonomy_version,
            "unmapped_policy": taxonomy.unmapped,
            "classes": dg.MetadataValue.md(markdown_table(classes, max_rows=256)),
            "sources": sorted(taxonomy.mappings),
        },
    )


@dg.asset(
    group_name="taxonomy",
    partitions_def=annotation_batches,
    backfill_policy=BATCH_BACKFILL_POLICY,
    deps=[taxonomy_spec],
    kinds={"polars"},
    retry_policy=OBJECT_STORE_RETRY,  # its tables are read from and written to the store
)
def mapped_shapes(
    context: dg.AssetExecutionContext,
    pipeline_config: PipelineConfig,
    batch_shapes: dict[str, pl.DataFrame],
    batch_images: dict[str, pl.DataFrame],
) -> dict[str, pl.DataFrame]:
    """Shapes with their taxonomy class; unmapped labels follow the taxonomy's policy. A batch of
    which no label maps fails here, naming its labels, rather than as empty masks stages later. A
    backfill maps the batches of its run in one step; each partition lists its own unmapped labels,
    with the rule to add for each."""
    with only_transient_retried():
        taxonomy = pipeline_config.taxonomy()
        tables = {
            batch: MappedShapeRecord.validate(
                map_labels(batch_shapes[batch], batch_images[batch].select("entry_id", "source"), taxonomy))
            for batch in context.partition_keys
        }
        problems = [no_label_mapped(batch, table, batch_images[batch].select("entry_id", "source"), taxonomy,
                                    pipeline_config.taxonomy_path) for batch, table in tables.items()]
        if any(problems):
            raise ConfigError([problem for problem in problems if problem is not None])
        for batch, table in tables.items():
            unmapped = unmapped_labels_with_rules(table, batch_images[batch], taxonomy)
            context.add_asset_metadata({
                "taxonomy_version": taxonomy.taxonomy_version,
                "unmapped_policy": taxonomy.unmapped,
                "shapes": table.height,
                "by_outcome": dg.MetadataValue.json(dict(table.group_by("mapping").len().sort("mapping").iter_rows())),
                "unmapped_labels": metadata_table(unmapped),
            }, partition_key=batch)
        return tables
