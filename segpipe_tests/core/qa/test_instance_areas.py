import numpy as np
import orjson
import polars as pl
import pytest

from segpipe.core.ingest.formats.annotation import Shape
from segpipe.core.qa.instance_areas import (
    AREA_SCHEMA,
    INSTANCE_AREA_OUTLIER,
    ClassAreas,
    instance_area_findings,
    shape_areas,
)
from segpipe.core.ingest.shape_table import ShapeTableBuilder
from segpipe.core.taxonomy.model import parse_taxonomy

TAXONOMY = parse_taxonomy(
    "name: t\nversion: 1\nunmapped: void\nclasses:\n"
    "  - {id: 0, name: road, color: [1, 1, 1]}\n"
    "  - {id: 1, name: car, color: [2, 2, 2], has_instances: true}\n"
    "mappings: {}\n", "t.yaml")


def square(side: float) -> list[float]:
    return [0, 0, side, 0, side, side, 0, side]


def mapped(shapes: list[tuple[str, int, list[float]]], crowd: frozenset[int] = frozenset()) -> pl.DataFrame:
    """(entry_id, class_id, ring) per shape, mapped; shapes listed in `crowd` are crowds."""
    builder = ShapeTableBuilder()
    for entry_id, _, ring in shapes:
        builder.add(entry_id, [Shape("x", "polygon", rings=(np.asarray(ring, dtype=np.float64),))])
    return builder.frame().with_columns(
        pl.Series("class_id", [class_id for _, class_id, _ in shapes]), pl.lit("mapped").alias("mapping"),
        pl.Series("is_crowd", [i in crowd for i in range(len(shapes))]))


def test_shape_area_is_the_sum_of_its_rings_and_degenerate_rings_have_none():
    rings = pl.Series([[square(10)], [], [[0.0, 0.0, 1.0, 1.0]], [[0, 0, 4, 0, 4, 4], [9, 9, 11, 9, 9, 11]]],
                      dtype=pl.List(pl.List(pl.Float64)))
    assert shape_areas(rings).tolist() == [100.0, 0.0, 0.0, 10.0]


def test_a_shape_far_from_its_class_size_is_flagged_with_its_size_and_the_typical_one():
    sides = [10, 11, 9, 10, 12, 8, 10, 11, 9, 10, 10, 200]  # twelve cars, the last covering 400 times the usual
    shapes = [(f"e{i}", 1, square(s)) for i, s in enumerate(sides)]
    found = instance_area_findings(mapped(shapes), TAXONOMY, sigma=3.0)
    assert found["entry_id"].to_list() == ["e11"]
    assert found["check_id"].to_list() == [INSTANCE_AREA_OUTLIER]
    typical = float(np.exp(np.mean(np.log([s * s for s in sides]))))
    reason = found["reason"].item()
    assert reason.startswith("shape #0 ('x') covers 40,000 px, ") and reason.endswith(f"above the typical car ({typical:,.0f} px)")
    deviations = float(reason.split(", ")[1].split(" σ")[0])
    log_areas = np.log([s * s for s in sides])
    assert deviations == pytest.approx((log_areas[-1] - log_areas.mean()) / log_areas.std(ddof=1), abs=0.05)


def test_stuff_classes_crowds_and_classes_with_few_shapes_are_not_judged():
    sides = [10] * 6 + [11] * 5 + [200]
    stuff = [(f"e{i}", 0, square(s)) for i, s in enumerate(sides)]
    assert instance_area_findings(mapped(stuff), TAXONOMY, sigma=3.0).is_empty()
    cars = [(f"e{i}", 1, square(s)) for i, s in enumerate(sides)]
    assert instance_area_findings(mapped(cars, crowd=frozenset({11})), TAXONOMY, sigma=3.0).is_empty()
    assert instance_area_findings(mapped(cars[-9:]), TAXONOMY, sigma=2.0).is_empty()  # 9 < MIN_INSTANCES
    assert instance_area_findings(mapped(cars), TAXONOMY, sigma=3.0)["entry_id"].to_list() == ["e11"]


def test_class_area_statistics_come_back_from_json_exactly():
    areas = pl.DataFrame({"entry_id": ["e"] * 5, "shape_index": range(5), "raw_label": ["car"] * 5,
                          "class_id": [1, 1, 1, 2, 2], "area": [10.0, 31.7, 1e5 / 3, 7.0, 700.1]}, schema=AREA_SCHEMA)
    stats = ClassAreas.of(areas)
    again = ClassAreas.of_rows(orjson.loads(orjson.dumps(stats.rows())))
    assert again == stats and again.table().equals(stats.table())
