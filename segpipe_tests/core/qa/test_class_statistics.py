import polars as pl
import pytest

from segpipe.core.qa.class_statistics import class_statistics
from segpipe.core.shared.class_pixels import as_sparse
from segpipe.core.taxonomy.model import parse_taxonomy

TAXONOMY = parse_taxonomy("""
name: t
version: 1
unmapped: void
classes:
  - {id: 0, name: road, color: [1, 1, 1]}
  - {id: 1, name: car, color: [2, 2, 2]}
  - {id: 2, name: bus, color: [3, 3, 3]}
  - {id: 3, name: ego, color: [4, 4, 4], trainable: false}
mappings: {}
""", "t.yaml")


def pixels(**by_class: int) -> list[int]:
    counts = [0] * 256
    for name, n in by_class.items():
        counts[{"road": 0, "car": 1, "bus": 2, "ego": 3, "ignore": 255}[name]] = n
    return counts


def test_pixels_shares_and_mask_counts_per_class_and_what_is_missing():
    masks = pl.DataFrame({"class_pixels": [pixels(road=900, car=10, ignore=90), pixels(road=500, car=30, ego=60)]})
    stats = class_statistics(masks, TAXONOMY)
    rows = {r["name"]: r for r in stats.table.iter_rows(named=True)}
    assert (rows["road"]["pixels"], rows["road"]["masks"]) == (1400, 2)
    assert rows["car"]["pixel_share"] == pytest.approx(40 / 1500)  # of labelled pixels, ignore left out
    assert stats.never_present == ["bus"]  # only trainable classes count: ego is never reported
    assert stats.imbalance == pytest.approx(1400 / 40)


def test_an_untrainable_class_never_counts_as_missing_or_rare():
    stats = class_statistics(pl.DataFrame({"class_pixels": [pixels(road=100, car=1, bus=1)]}), TAXONOMY)
    assert stats.never_present == [] and stats.imbalance == pytest.approx(100)


def test_sparse_counts_give_the_statistics_of_the_dense_ones():
    dense = pl.DataFrame({"class_pixels": [pixels(road=900, car=10, ignore=90), pixels(road=500, car=30, ego=60),
                                           pixels()]})
    sparse = dense.with_columns(as_sparse(dense["class_pixels"]))
    assert sparse["class_pixels"].dtype != dense["class_pixels"].dtype
    by_dense, by_sparse = class_statistics(dense, TAXONOMY), class_statistics(sparse, TAXONOMY)
    assert by_sparse.table.equals(by_dense.table) and by_sparse.table["masks"].to_list() == [2, 2, 0, 1]
    assert (by_sparse.never_present, by_sparse.imbalance) == (by_dense.never_present, by_dense.imbalance)
