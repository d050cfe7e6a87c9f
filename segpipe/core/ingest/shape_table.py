"""The shapes table built column by column, in chunks, so coordinates never exist as millions of
Python floats and per-shape Python objects never outlive a chunk.

A COCO file of 5,000 images with 100 polygons each holds tens of millions of coordinates; as
Python lists they would cost several times the size of the finished Arrow table.
"""

import numpy as np
import orjson
import polars as pl
import pyarrow as pa

from segpipe.core.ingest.formats.annotation import Shape
from segpipe.core.shared.schemas import ShapeRecord, polars_schema

CHUNK_SHAPES = 20_000


def _offsets(lengths: list[int]) -> pa.Array:
    return pa.array(np.concatenate(([0], np.cumsum(lengths, dtype=np.int64))), pa.int64())


def _concat(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.empty(0, dtype=dtype)


class ShapeTableBuilder:
    def __init__(self) -> None:
        self._chunks: list[pl.DataFrame] = []
        self._attribute_text: dict[tuple[tuple[str, str], ...], str] = {}
        self._reset()

    def _reset(self) -> None:
        self._scalars: dict[str, list] = {column: [] for column in SCALAR_SCHEMA}
        self._rings: list[np.ndarray] = []
        self._rings_per_shape: list[int] = []
        self._boxes: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []
        self._has_mask: list[bool] = []

    def add(self, entry_id: str, shapes: list[Shape]) -> None:
        for index, shape in enumerate(shapes):
            for column, value in (
                ("entry_id", entry_id), ("shape_index", index), ("raw_label", shape.raw_label), ("kind", shape.kind),
                ("z_order", shape.z_order), ("occluded", shape.occluded), ("group_id", shape.group_id),
                ("attributes", self._attributes(shape)),
            ):
                self._scalars[column].append(value)
            self._rings.extend(shape.rings)
            self._rings_per_shape.append(len(shape.rings))
            mask = shape.mask
            self._has_mask.append(mask is not None)
            if mask is not None:
                self._boxes.append(np.array([mask.left, mask.top, mask.width, mask.height], dtype=np.int64))
                self._counts.append(mask.counts)
        if len(self._has_mask) >= CHUNK_SHAPES:
            self._flush()

    def _attributes(self, shape: Shape) -> str:
        """One JSON string per distinct attribute set: most shapes share a handful of them."""
        key = tuple(sorted(shape.attributes.items()))
        text = self._attribute_text.get(key)
        if text is None:
            text = self._attribute_text[key] = orjson.dumps(dict(key), option=orjson.OPT_SORT_KEYS).decode()
        return text

    def _flush(self) -> None:
        ring_lengths = [len(ring) for ring in self._rings]
        rings = pa.LargeListArray.from_arrays(
            _offsets(self._rings_per_shape),
            pa.LargeListArray.from_arrays(_offsets(ring_lengths), pa.array(_concat(self._rings, np.float64))),
        )
        no_mask = pa.array([not has for has in self._has_mask], pa.bool_())
        count_lengths = iter(len(c) for c in self._counts)
        boxes = pa.LargeListArray.from_arrays(
            _offsets([4 if has else 0 for has in self._has_mask]), pa.array(_concat(self._boxes, np.int64)), mask=no_mask)
        counts = pa.LargeListArray.from_arrays(
            _offsets([next(count_lengths) if has else 0 for has in self._has_mask]),
            pa.array(_concat(self._counts, np.uint32)), mask=no_mask)
        chunk = pl.DataFrame(self._scalars, schema=SCALAR_SCHEMA).with_columns(
            pl.from_arrow(rings).alias("rings"),
            pl.from_arrow(boxes).alias("mask_box"),
            pl.from_arrow(counts).alias("mask_counts"),
        )
        self._chunks.append(chunk.select(SHAPE_COLUMNS))
        self._reset()

    def frame(self) -> pl.DataFrame:
        self._flush()
        return ShapeRecord.validate(pl.concat(self._chunks, rechunk=False))


LIST_COLUMNS = ("rings", "mask_box", "mask_counts")  # built as Arrow arrays in _flush
SHAPE_COLUMNS = list(polars_schema(ShapeRecord))
SCALAR_SCHEMA = {column: dtype for column, dtype in polars_schema(ShapeRecord).items() if column not in LIST_COLUMNS}
