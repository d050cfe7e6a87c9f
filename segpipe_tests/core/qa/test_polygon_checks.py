from datetime import UTC, datetime

import numpy as np
import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from segpipe.core.ingest.formats.annotation import Shape
from segpipe.core.qa.polygon_checks import _distinct_points, polygon_findings
from segpipe.core.qa.rules import evaluate_entries
from segpipe.core.qa.settings import QaSettings
from segpipe.core.ingest.shape_table import ShapeTableBuilder
from segpipe.core.taxonomy.model import parse_taxonomy

SQUARE = [2, 2, 8, 2, 8, 8, 2, 8]
BOW_TIE = [2, 2, 8, 8, 8, 2, 2, 8]  # two vertices swapped: the outline crosses itself
TWO_POINTS = [1, 1, 1, 1, 6, 6, 6, 6]
STRAY = [2, 2, 26, 2, 8, 8]  # 6 px beyond the right edge of a 20-px-wide image


def table(entries: dict[str, list[list[float]]]) -> pl.DataFrame:
    builder = ShapeTableBuilder()
    for entry_id, rings in entries.items():
        builder.add(entry_id, [Shape(f"label{i}", "polygon", rings=(np.asarray(r, dtype=np.float64),))
                               for i, r in enumerate(rings)])
    return builder.frame()


def findings(entries: dict[str, list[list[float]]], tolerance: float = 4.0) -> set[tuple[str, str, int]]:
    frames = pl.DataFrame({"entry_id": list(entries), "width": 20, "height": 10})
    found = polygon_findings(table(entries), frames, tolerance)
    return {(e, c, i) for e, c, i in found.select("entry_id", "check_id", "shape_index").iter_rows()}


def test_each_problem_is_found_on_the_ring_that_has_it_and_nowhere_else():
    assert findings({"clean": [SQUARE, SQUARE], "bad": [SQUARE, BOW_TIE, TWO_POINTS, STRAY]}) == {
        ("bad", "polygon_self_intersection", 1),
        ("bad", "polygon_too_few_points", 2),
        ("bad", "vertices_outside_image", 3),
    }


def test_a_ring_with_no_area_is_found_and_the_tolerance_is_honoured():
    assert findings({"e": [[1, 1, 5, 1, 9, 1, 5, 1.5]]}) == set()  # a thin sliver still has area
    assert findings({"e": [[1, 1, 5, 1, 9, 1], [1, 1, 5, 5, 9, 9]]}) == {
        ("e", "polygon_zero_area", 0), ("e", "polygon_zero_area", 1)}
    assert findings({"e": [STRAY]}, tolerance=6.0) == set()
    assert findings({"e": [STRAY]}, tolerance=5.9) == {("e", "vertices_outside_image", 0)}


def test_findings_become_warnings_that_name_the_shape():
    taxonomy = parse_taxonomy("name: t\nversion: 1\nunmapped: void\nclasses: [{id: 0, name: a, color: [1, 1, 1]}]\n"
                              "mappings: {}\n", "t.yaml")
    shapes = table({"bad": [SQUARE, BOW_TIE]})
    entries = pl.DataFrame({"entry_id": ["bad"], "batch_id": ["b"], "file_name": ["bad.jpg"],
                            "landed_at": [datetime(2026, 3, 1, tzinfo=UTC)], "image_id": ["i"],
                            "annotator": ["a"], "mask_key": ["k"], "width": [20], "height": [10],
                            "class_pixels": [[200] + [0] * 255], "perceptual_hash": ["0123456789abcdef"]})
    polygons = polygon_findings(shapes, entries, 4.0)
    results = evaluate_entries(entries, pl.DataFrame(schema={"entry_id": pl.String, "raw_label": pl.String}),
                               taxonomy, QaSettings(0.5, 0), polygons)
    row = results.filter(pl.col("check_id") == "polygon_self_intersection").row(0, named=True)
    assert (row["passed"], row["severity"], row["excludes_entry"]) == (False, "WARN", False)
    assert row["reason"] == "shape #1 ('label1') crosses itself"
    assert results.filter(~pl.col("passed"))["check_id"].to_list() == ["polygon_self_intersection"]


@given(st.lists(st.lists(st.tuples(st.sampled_from([0.0, -0.0, 1.0, 2.5, float("nan")]),
                                   st.sampled_from([0.0, -0.0, 3.0, float("nan")])), min_size=1, max_size=8),
                min_size=1, max_size=6))
def test_distinct_points_per_ring_are_counted_as_np_unique_counts_the_rows(rings):
    ring_of_point = np.repeat(np.arange(len(rings)), [len(ring) for ring in rings])
    coords = np.array([point for ring in rings for point in ring], np.float64)
    by_rows = np.bincount(np.unique(np.column_stack([ring_of_point, coords]), axis=0)[:, 0].astype(np.int64),
                          minlength=len(rings))
    assert _distinct_points(ring_of_point, coords, len(rings)).tolist() == by_rows.tolist()
