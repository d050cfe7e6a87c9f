"""Stores the pipeline's Polars tables as Parquet under a fsspec base path (local or S3).

A small UPathIOManager subclass instead of dagster-polars, which breaks under polars 2
(shared/reference/dagster.md, section 3).
"""

import dagster as dg
import polars as pl
from upath import UPath


class PolarsParquetIOManager(dg.ConfigurableIOManagerFactory):
    base_path: str
    endpoint_url: str | None = None

    def create_io_manager(self, context: dg.InitResourceContext) -> dg.UPathIOManager:
        options = {"client_kwargs": {"endpoint_url": self.endpoint_url}} if self.endpoint_url else {}
        return _PolarsParquetUPathIOManager(base_path=UPath(self.base_path, **options))


class _PolarsParquetUPathIOManager(dg.UPathIOManager):
    extension = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: pl.DataFrame, path: UPath) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            obj.write_parquet(f)
        context.add_output_metadata({"dagster/row_count": obj.height})

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pl.DataFrame:
        with path.open("rb") as f:
            return pl.read_parquet(f)

    def load_partitions(self, context: dg.InputContext) -> pl.DataFrame:
        """All partitions of a table load as one frame: a batch table read across batches."""
        paths = self._get_paths_for_partitions(context)
        missing = sorted(key for key, path in paths.items() if not path.exists())
        if missing:
            raise FileNotFoundError(
                f"{context.asset_key.to_user_string()}: partitions {missing} are not materialized; "
                "materialize them (or remove the batches) before building downstream assets")
        return pl.concat([self.load_from_path(context, paths[key]) for key in sorted(paths)], how="vertical")
