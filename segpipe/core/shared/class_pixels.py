"""Pixels per class of a released mask, held sparse: the classes present and their pixels.

A mask's dense count (256 integers, one per pixel value: MaskRecord.class_pixels) costs 2 KiB in a
table and more as Python lists; the stages that see every image at once (consensus's table, which
sampling and the release read) would grow by that per image. A mask holds a few classes, so the
consensus table keeps only those (ConsensusRecord.class_pixels). A table written by an earlier
segpipe, or built by a caller, with dense counts is read the same (as_sparse).
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
import polars as pl
from PIL import Image

from segpipe.core.shared.batch_tables import BatchTables
from segpipe.core.shared.schemas import ConsensusRecord, polars_schema

VALUES = 256  # pixel values of an 8-bit mask
PIXELS_BY_CLASS = polars_schema(ConsensusRecord)["class_pixels"]


def value_counts(mask: np.ndarray) -> list[int]:
    """Pixels of each value 0..255 of a 2-D uint8 mask (np.bincount(mask.ravel(), minlength=256)),
    counted by Pillow's histogram: a quarter of bincount's time, which widens every pixel to intp."""
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"mask must be a 2-D uint8 array, got {mask.dtype} with shape {mask.shape}")
    return Image.fromarray(mask).histogram()


def sparse(counts: Sequence[int]) -> list[dict[str, int]]:
    """The non-zero entries of a dense count (pixels of each value), in value order."""
    return [{"class_id": value, "pixels": int(n)} for value, n in enumerate(counts) if n]


def dense(pairs: Iterable[Mapping[str, int]]) -> list[int]:
    """The dense count (VALUES entries) of sparse pairs."""
    counts = [0] * VALUES
    for pair in pairs:
        counts[pair["class_id"]] = pair["pixels"]
    return counts


def as_sparse(column: pl.Series) -> pl.Series:
    """A class_pixels column in the sparse form, whichever form it holds (dense: VALUES counts a row)."""
    if column.dtype == PIXELS_BY_CLASS:
        return column
    counts = column.explode().to_numpy().astype(np.int64).reshape(len(column), VALUES)
    rows, values = np.nonzero(counts)
    present = pl.DataFrame({"row": rows, "class_id": values, "pixels": counts[rows, values]}, schema={
        "row": pl.Int64, "class_id": pl.Int64, "pixels": pl.Int64})
    per_row = present.group_by("row").agg(pl.struct("class_id", "pixels").alias("pairs"))
    every_row = pl.DataFrame({"row": np.arange(len(column), dtype=np.int64)})
    pairs = every_row.join(per_row, on="row", how="left")["pairs"]
    return pairs.fill_null(pl.lit([], dtype=PIXELS_BY_CLASS)).cast(PIXELS_BY_CLASS).alias(column.name)


class DenseCounts(Mapping[str, list[int]]):
    """mask key -> its dense count, held sparse: for code that reads a few masks' counts at a time
    while every mask's are known."""

    def __init__(self) -> None:
        self._present: dict[str, tuple[tuple[int, int], ...]] = {}

    def add(self, key: str, pairs: Iterable[Mapping[str, int]]) -> None:
        self._present[key] = tuple((pair["class_id"], pair["pixels"]) for pair in pairs)

    def __getitem__(self, key: str) -> list[int]:
        counts = [0] * VALUES
        for value, pixels in self._present[key]:
            counts[value] = pixels
        return counts

    def pairs(self, key: str) -> list[dict[str, int]]:
        """The mask's count sparse, as `sparse` gives it, without the dense one between."""
        return [{"class_id": value, "pixels": pixels} for value, pixels in sorted(self._present[key]) if pixels]

    def __iter__(self) -> Iterator[str]:
        return iter(self._present)

    def __len__(self) -> int:
        return len(self._present)


def present_pairs(column: pl.Series) -> pl.DataFrame:
    """(row, class_id, pixels) of every class present in a sparse class_pixels column."""
    return (pl.DataFrame({"row": np.arange(len(column), dtype=np.int64), "pairs": column}).explode("pairs")
            .drop_nulls("pairs").unnest("pairs"))


def pixel_matrix(column: pl.Series, class_ids: Sequence[int]) -> np.ndarray:
    """(rows, len(class_ids)): each row's pixels of each of class_ids, from a class_pixels column."""
    column = as_sparse(column)
    matrix = np.zeros((len(column), len(class_ids)), dtype=np.int64)
    pairs = present_pairs(column)
    position = np.full(VALUES, -1, dtype=np.int64)
    position[np.asarray(class_ids, dtype=np.int64)] = np.arange(len(class_ids))
    at = position[pairs["class_id"].to_numpy()]
    kept = at >= 0
    matrix[pairs["row"].to_numpy()[kept], at[kept]] = pairs["pixels"].to_numpy()[kept]
    return matrix


def concat_sparse(tables: BatchTables, columns: Sequence[str]) -> pl.DataFrame:
    """Every batch's table in `columns` (class_pixels among them) as one frame, each batch's counts
    made sparse as it is read, so the dense ones of only one batch are ever held."""
    frames = [frame.with_columns(as_sparse(frame["class_pixels"])) for _, frame in tables.each(columns)]
    return pl.concat(frames, how="diagonal") if frames else pl.DataFrame()
