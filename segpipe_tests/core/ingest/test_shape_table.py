import numpy as np

from segpipe.core.ingest import shape_table
from segpipe.core.ingest.formats.annotation import BoxMask, Shape
from segpipe.core.ingest.shape_table import ShapeTableBuilder


def test_shapes_of_every_kind_round_trip_through_the_table_across_chunks(monkeypatch):
    monkeypatch.setattr(shape_table, "CHUNK_SHAPES", 3)
    hole = np.ones((3, 4), dtype=bool)
    hole[1, 1] = False
    mask = BoxMask.from_array(hole, left=5, top=2)
    shapes = [
        Shape("car", "polygon", z_order=-2, rings=(np.array([0, 0, 4, 0, 4, 4.0]), np.array([6, 6, 8, 6, 8, 8.0]))),
        Shape("person", "mask", mask=mask, occluded=True, group_id=7, attributes={"iscrowd": "1"}),
        Shape("lane", "polyline", rings=(np.array([0, 0, 9, 9.0]),)),
        Shape("sign", "box", rings=(np.array([1, 1, 3, 1, 3, 3, 1, 3.0]),), attributes={"b": "2", "a": "1"}),
    ]
    builder = ShapeTableBuilder()
    builder.add("e1", shapes)
    builder.add("e2", shapes[:2])
    table = builder.frame()
    assert table["entry_id"].to_list() == ["e1"] * 4 + ["e2"] * 2
    assert table["shape_index"].to_list() == [0, 1, 2, 3, 0, 1]
    assert table["kind"].to_list() == ["polygon", "mask", "polyline", "box", "polygon", "mask"]
    assert table["rings"][0].to_list() == [[0, 0, 4, 0, 4, 4], [6, 6, 8, 6, 8, 8]]
    assert table["rings"][1].to_list() == [] and table["mask_box"][0] is None
    row = table.row(1, named=True)
    decoded = BoxMask(*row["mask_box"], np.array(row["mask_counts"], dtype=np.uint32))
    assert row["mask_box"] == [5, 2, 4, 3] and np.array_equal(decoded.to_array(), hole)
    assert (row["occluded"], row["group_id"], row["attributes"]) == (True, 7, '{"iscrowd":"1"}')
    assert table["attributes"][3] == '{"a":"1","b":"2"}' and table["z_order"][0] == -2


def test_no_shapes_give_an_empty_table_with_the_schema():
    table = ShapeTableBuilder().frame()
    assert table.height == 0 and table.columns == shape_table.SHAPE_COLUMNS
