"""The taxonomy and pipeline settings files, as a resource that validates them when an asset loads them."""

from pathlib import Path

import dagster as dg

from segpipe.core.config.pipeline import PipelineSettings, load_pipeline_settings
from segpipe.core.taxonomy.model import Taxonomy, load_taxonomy


class PipelineConfig(dg.ConfigurableResource):
    taxonomy_path: str
    pipeline_path: str

    def taxonomy(self) -> Taxonomy:
        return load_taxonomy(Path(self.taxonomy_path))

    def settings(self) -> PipelineSettings:
        return load_pipeline_settings(Path(self.pipeline_path))
