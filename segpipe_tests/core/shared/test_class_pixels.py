import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from segpipe.core.shared.batch_tables import FrameBatches
from segpipe.core.shared.class_pixels import (
    PIXELS_BY_CLASS, VALUES, DenseCounts, as_sparse, concat_sparse, dense, pixel_matrix, sparse, value_counts,
)

dense_counts = st.lists(st.dictionaries(st.integers(0, VALUES - 1), st.integers(1, 2**40), max_size=12),
                        max_size=6).map(lambda rows: [dense({"class_id": v, "pixels": n} for v, n in r.items())
                                                      for r in rows])


@settings(max_examples=60, deadline=None)
@given(dense_counts)
def test_a_dense_column_made_sparse_keeps_every_count_and_only_the_present_classes(rows):
    column = as_sparse(pl.Series("class_pixels", rows, dtype=pl.List(pl.Int64)))
    assert column.dtype == PIXELS_BY_CLASS and column.name == "class_pixels"
    assert [dense(pairs) for pairs in column.to_list()] == rows
    assert [[p["class_id"] for p in pairs] for pairs in column.to_list()] == [
        [v for v, n in enumerate(r) if n] for r in rows]
    assert column.to_list() == [sparse(r) for r in rows]
    assert as_sparse(column) is column  # already sparse: as it is
    class_ids = [0, 7, 255]
    expected = np.asarray(rows, dtype=np.int64).reshape(len(rows), VALUES)[:, class_ids]
    assert np.array_equal(pixel_matrix(column, class_ids), expected)
    assert np.array_equal(pixel_matrix(pl.Series(rows, dtype=pl.List(pl.Int64)), class_ids), expected)


def test_dense_counts_give_back_each_masks_dense_count_from_its_present_classes():
    counts = DenseCounts()
    counts.add("m1", [{"class_id": 3, "pixels": 10}, {"class_id": 255, "pixels": 2}])
    counts.add("m2", [])
    assert counts["m1"][3] == 10 and counts["m1"][255] == 2 and sum(counts["m1"]) == 12
    assert counts["m2"] == [0] * VALUES and sorted(counts) == ["m1", "m2"] and len(counts) == 2


def test_batches_read_with_dense_counts_come_together_sparse():
    batch = {"entry_id": ["e1"], "class_pixels": [[0] * 5 + [40] + [0] * 250]}
    tables = FrameBatches({"b1": pl.DataFrame(batch), "b2": pl.DataFrame({**batch, "entry_id": ["e2"]})})
    masks = concat_sparse(tables, ("entry_id", "class_pixels"))
    assert masks.rows() == [("e1", [{"class_id": 5, "pixels": 40}]), ("e2", [{"class_id": 5, "pixels": 40}])]
    assert concat_sparse(FrameBatches({}), ("entry_id", "class_pixels")).is_empty()


@given(arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40))))
def test_value_counts_are_np_bincounts_of_the_pixels(mask):
    assert value_counts(mask) == np.bincount(mask.ravel(), minlength=256).tolist()


def test_value_counts_refuse_what_is_not_an_8_bit_mask():
    with pytest.raises(ValueError, match="2-D uint8"):
        value_counts(np.zeros((4, 4), np.uint16))
