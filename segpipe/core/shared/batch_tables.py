"""A table stored one part per batch, read a batch at a time and only in the columns asked for.

The stages after rasterize (QA, consensus, sampling, release) see every batch. Loading every batch's
table at once, shape outlines included, makes their memory grow with the dataset; reading one batch
at a time, in the columns a step needs, keeps it flat, and a batch's content digest lets a step
remember its per-batch work and redo only the batches whose tables changed.

The pipeline's tables come from the Parquet IO manager (segpipe/io/parquet_io_manager.py); tests
and callers holding frames use FrameBatches.
"""

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

import polars as pl


class BatchTables(ABC):
    """One table per batch, in batch order."""

    @property
    @abstractmethod
    def batches(self) -> Sequence[str]:
        """The batches, sorted."""

    @abstractmethod
    def read(self, batch: str, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """One batch's table, in `columns` only when given (a column the table lacks, written before
        it was added, is left out rather than failing)."""

    @abstractmethod
    def digest(self, batch: str) -> str:
        """A digest of the batch's stored table: equal digests, equal tables."""

    def each(self, columns: Sequence[str] | None = None) -> Iterator[tuple[str, pl.DataFrame]]:
        """(batch, table) for every batch, one read at a time."""
        for batch in self.batches:
            yield batch, self.read(batch, columns)

    def concat(self, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """Every batch's table in `columns`, as one frame: for the narrow columns a step needs across
        batches. A batch's table written before a nullable column was added lacks it (diagonal)."""
        frames = [frame for _, frame in self.each(columns)]
        return pl.concat(frames, how="diagonal") if frames else pl.DataFrame()


class FrameBatches(BatchTables):
    """Batch tables held as frames: for tests, and for callers that have them in memory."""

    def __init__(self, frames: dict[str, pl.DataFrame]) -> None:
        self._frames = frames

    @property
    def batches(self) -> Sequence[str]:
        return sorted(self._frames)

    def read(self, batch: str, columns: Sequence[str] | None = None) -> pl.DataFrame:
        frame = self._frames[batch]
        return frame if columns is None else frame.select([c for c in columns if c in frame.columns])

    def digest(self, batch: str) -> str:
        frame = self._frames[batch]
        digest = hashlib.sha256(str(frame.schema).encode())
        digest.update(frame.hash_rows(seed=0).to_numpy().tobytes())
        return digest.hexdigest()
