import dagster as dg

from segpipe.defs.batches import BATCH_DONE_ASSET
from segpipe.environment import current_environment
from segpipe.io.annotator_pseudonyms import AnnotatorPseudonyms
from segpipe.io.object_store import LandingZone, ObjectStore
from segpipe.io.parquet_io_manager import PolarsParquetIOManager
from segpipe.io.pipeline_config import PipelineConfig
from segpipe.store import keys


@dg.definitions
def resources() -> dg.Definitions:
    env = current_environment()
    return dg.Definitions(
        resources={
            "landing_zone": LandingZone(root=env.landing_root, endpoint_url=env.s3_endpoint_url),
            "object_store": ObjectStore(root=env.storage_root, endpoint_url=env.s3_endpoint_url),
            "pipeline_config": PipelineConfig(taxonomy_path=str(env.taxonomy_path), pipeline_path=str(env.pipeline_path)),
            "annotator_pseudonyms": AnnotatorPseudonyms(key_file=str(env.pseudonym_key_path), key_hex=env.pseudonym_key),
            "io_manager": PolarsParquetIOManager(base_path=f"{env.storage_root}/{keys.TABLES_DIR}",
                                                 endpoint_url=env.s3_endpoint_url, partitions_done_by=BATCH_DONE_ASSET),
        }
    )
