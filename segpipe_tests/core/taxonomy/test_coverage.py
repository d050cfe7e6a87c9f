import orjson
import polars as pl

from segpipe.core.taxonomy.coverage import no_label_mapped
from segpipe.core.taxonomy.model import map_labels, parse_taxonomy

TAXONOMY = parse_taxonomy("""
name: t
version: 1
unmapped: void
classes:
  - {id: 0, name: road, color: [1, 2, 3]}
mappings:
  vendor_a: {Road: road, Lane: void}
""", "taxonomy.yaml")


def batch(labels: list[tuple[str, str]], source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """map_labels of one entry with (label, kind) shapes, and its entry_id -> source table."""
    shapes = pl.DataFrame({
        "entry_id": ["e1"] * len(labels), "shape_index": list(range(len(labels))),
        "raw_label": [label for label, _ in labels], "kind": [kind for _, kind in labels],
        "attributes": [orjson.dumps({}).decode()] * len(labels)},
        schema={"entry_id": pl.String, "shape_index": pl.Int64, "raw_label": pl.String, "kind": pl.String,
                "attributes": pl.String})
    sources = pl.DataFrame({"entry_id": ["e1"], "source": [source]})
    return map_labels(shapes, sources, TAXONOMY), sources


def test_a_batch_whose_source_has_no_rules_is_a_problem_naming_its_labels_and_the_sources_there_are():
    mapped, sources = batch([("dent", "polygon"), ("dent", "polygon"), ("rust", "mask")], "labelme")
    problem = no_label_mapped("parts", mapped, sources, TAXONOMY, "taxonomy.yaml")
    assert (problem.file, problem.key) == ("taxonomy.yaml", "mappings.labelme")
    assert problem.message.startswith(
        "no label was mapped to a class in batch 'parts', whose 2 labels are 'dent' (2 shapes), 'rust' (1 shapes); "
        "the taxonomy has no rules for source 'labelme' (it has rules for: 'vendor_a')")
    assert "segpipe init" in problem.message


def test_rules_of_the_source_that_match_nothing_or_only_void_are_named_as_such():
    mapped, sources = batch([("Lane", "polygon"), ("kerb", "polygon")], "vendor_a")
    problem = no_label_mapped("b1", mapped, sources, TAXONOMY, "taxonomy.yaml")
    assert "none of the 2 rules for source 'vendor_a' matches them" in problem.message
    assert "'Lane' (1 shapes), 'kerb' (1 shapes)" in problem.message


def test_one_mapped_label_or_nothing_to_draw_is_no_problem():
    assert no_label_mapped("b1", *batch([("road", "polygon"), ("kerb", "polygon")], "vendor_a"), TAXONOMY, "t") is None
    assert no_label_mapped("b1", *batch([("kerb", "polyline"), ("x", "points")], "vendor_a"), TAXONOMY, "t") is None
    assert no_label_mapped("b1", *batch([], "vendor_a"), TAXONOMY, "t") is None
