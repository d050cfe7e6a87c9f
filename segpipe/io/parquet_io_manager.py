"""Stores the pipeline's Polars tables as Parquet under a fsspec base path (local or S3).

A small UPathIOManager subclass instead of dagster-polars, which breaks under polars 2
(shared/reference/dagster.md, section 3).

One file per partition. A batch stage that runs many batches in one step (a backfill run over several)
declares its inputs and output as `dict[str, pl.DataFrame]`, one table per batch. A reader of every
batch that declares its input as BatchTables (core/shared/batch_tables.py) reads the batches one at
a time, in the columns it asks for, when it asks: its memory does not grow with the batches. Every
other reader of several partitions gets them as one frame.

Dagster hands an error of load_input or handle_output to the step's RetryPolicy whatever its kind,
so both apply the steps' own rule (segpipe/io/transient_errors.py): a transient error is retried,
any other fails the step at once with what was read or written and the error.
"""

import hashlib
import io
from collections.abc import Mapping, Sequence

import dagster as dg
import polars as pl
from upath import UPath

from segpipe.core.shared.artefacts import DamagedArtefact
from segpipe.core.shared.batch_tables import BatchTables
from segpipe.io.locations import (
    CONNECT_TIMEOUT_S, READ_TIMEOUT_S, REQUEST_ATTEMPTS, RequestLimits, s3_options, without_s3fs_retries,
)
from segpipe.io.transient_errors import only_transient_retried
from segpipe.store.atomic import sync_deferred_writes, write_atomically


class PolarsParquetIOManager(dg.ConfigurableIOManagerFactory):
    base_path: str
    endpoint_url: str | None = None
    # When set, a reader of every partition as one frame reads only the partitions this asset has
    # materialized: a batch that failed or never ran is left out instead of failing the reader.
    partitions_done_by: str | None = None
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    read_timeout_s: float = READ_TIMEOUT_S
    request_attempts: int = REQUEST_ATTEMPTS

    def create_io_manager(self, context: dg.InitResourceContext) -> dg.UPathIOManager:
        limits = RequestLimits(self.connect_timeout_s, self.read_timeout_s, self.request_attempts)
        is_s3 = self.base_path.startswith(("s3://", "s3a://"))
        base_path = UPath(self.base_path, **s3_options(self.endpoint_url, limits)) if is_s3 else UPath(self.base_path)
        if is_s3:
            without_s3fs_retries(base_path.fs)
        return _PolarsParquetUPathIOManager(base_path=base_path, done_by=self.partitions_done_by)


class _PolarsParquetUPathIOManager(dg.UPathIOManager):
    extension = ".parquet"

    def __init__(self, base_path: UPath, done_by: str | None) -> None:
        super().__init__(base_path=base_path)
        self._done_by = done_by

    def dump_to_path(self, context: dg.OutputContext, obj: pl.DataFrame, path: UPath) -> None:
        _write_parquet(obj, path)
        context.add_output_metadata({"dagster/row_count": obj.height})

    def load_input(self, context: dg.InputContext) -> pl.DataFrame | dict[str, pl.DataFrame]:
        with only_transient_retried(f"reading table {_table_name(context)} under {self._base_path}"):
            return super().load_input(context)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pl.DataFrame:
        return _read_parquet(path, _table_name(context))

    def load_partitions(self, context: dg.InputContext) -> pl.DataFrame | dict[str, pl.DataFrame] | BatchTables:
        """The partitions as one table per batch for a reader that asks for a dict, as BatchTables read
        on demand for one that asks for those, else as one frame: a batch table read across batches."""
        paths = self._get_paths_for_partitions(context)
        per_partition = _wants_tables_per_partition(context.dagster_type.typing_type)
        if not per_partition and self._done_by is not None:
            done = context.instance.get_materialized_partitions(dg.AssetKey(self._done_by))
            paths = {key: path for key, path in paths.items() if key in done}
            if not paths:
                raise FileNotFoundError(f"{context.asset_key.to_user_string()}: no batch has {self._done_by} "
                                        "materialized yet; `segpipe batches` lists each batch and its last run")
        missing = sorted(key for key, path in paths.items() if not path.exists())
        if missing:
            raise FileNotFoundError(
                f"{context.asset_key.to_user_string()}: partitions {missing} are not materialized "
                f"(no {', '.join(str(paths[key]) for key in missing)}); retry them (`segpipe batch retry ID`) "
                "or remove them (`segpipe batch remove ID`) before building downstream assets")
        if per_partition:
            return {key: self.load_from_path(context, paths[key]) for key in sorted(paths)}
        if _wants_batch_tables(context.dagster_type.typing_type):
            return ParquetBatchTables(paths, _table_name(context))
        # diagonal: a batch's table written before a nullable column was added lacks it (schemas.with_later_columns)
        return pl.concat([self.load_from_path(context, paths[key]) for key in sorted(paths)], how="diagonal")

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame | Mapping[str, pl.DataFrame]) -> None:
        """The step's durability barrier first (store/atomic.py): the artefacts its tables name are on
        disk before the tables, and before Dagster records the materialization."""
        with only_transient_retried(f"writing table {_table_name(context)} under {self._base_path}"):
            sync_deferred_writes()
            self._write(context, obj)

    def _write(self, context: dg.OutputContext, obj: pl.DataFrame | Mapping[str, pl.DataFrame]) -> None:
        """A table per partition (a dict) is written to each partition's file, and its row count is
        that partition's metadata."""
        if not isinstance(obj, Mapping):
            return super().handle_output(context, obj)
        paths = self._get_paths_for_partitions(context)
        if set(obj) != set(paths):
            raise ValueError(f"{context.asset_key.to_user_string()}: the step returned tables for {sorted(obj)}, "
                             f"but it materializes partitions {sorted(paths)}")
        for key, path in paths.items():
            _write_parquet(obj[key], path)
            # each partition's own row count, not the step's total
            context.step_context.add_asset_metadata({"dagster/row_count": obj[key].height},
                                                    asset_key=context.asset_key, partition_key=key)


class ParquetBatchTables(BatchTables):
    """Each batch's Parquet file, read when asked for, in the columns asked for. The last file's bytes
    are kept, so a digest and then a read of the same batch fetch it once."""

    def __init__(self, paths: Mapping[str, UPath], table: str) -> None:
        self._paths, self._table = dict(paths), table
        self._last: tuple[str, bytes] | None = None

    @property
    def batches(self) -> Sequence[str]:
        return sorted(self._paths)

    def _bytes(self, batch: str) -> bytes:
        if self._last is None or self._last[0] != batch:
            with self._paths[batch].open("rb") as f:
                self._last = (batch, f.read())
        return self._last[1]

    def read(self, batch: str, columns: Sequence[str] | None = None) -> pl.DataFrame:
        with only_transient_retried(f"reading table {self._table} under {self._paths[batch]}"):
            data = self._bytes(batch)
        if columns is not None:
            present = set(pl.read_parquet_schema(io.BytesIO(data)))
            columns = [c for c in columns if c in present]
        return _parse_parquet(data, self._paths[batch], self._table, columns)

    def digest(self, batch: str) -> str:
        with only_transient_retried(f"reading table {self._table} under {self._paths[batch]}"):
            return hashlib.sha256(self._bytes(batch)).hexdigest()


def _read_parquet(path: UPath, table: str) -> pl.DataFrame:
    with path.open("rb") as f:
        data = f.read()  # a store error here is the store's, not the table's
    return _parse_parquet(data, path, table)


def _parse_parquet(data: bytes, path: UPath, table: str, columns: Sequence[str] | None = None) -> pl.DataFrame:
    try:
        return pl.read_parquet(io.BytesIO(data), columns=None if columns is None else list(columns))
    except pl.exceptions.PolarsError as exc:  # its message names no file: this one does, and says what to do
        raise DamagedArtefact(
            f"{path}: not a Parquet table ({exc}); materialize {table} again (for a batch's "
            "table, `segpipe batch retry ID`)") from None


def _write_parquet(frame: pl.DataFrame, path: UPath) -> None:
    """Whole or not at all: a reader never finds a partly written table (segpipe/store/atomic.py)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path.fs, path.path, frame.write_parquet)


def _wants_tables_per_partition(annotation: object) -> bool:
    return getattr(annotation, "__origin__", annotation) in (dict, Mapping)


def _wants_batch_tables(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BatchTables)


def _table_name(context: dg.InputContext | dg.OutputContext) -> str:
    """The asset a table belongs to (or the op output's name), as messages name it."""
    return context.asset_key.to_user_string() if context.has_asset_key else context.name
