import orjson
import polars as pl

from segpipe.core.taxonomy.coverage import no_label_mapped, rule_to_add, unmapped_labels_with_rules
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
        "no label was mapped to a class in batch 'parts', whose 2 labels are 'dent' (2 shapes), 'rust' (1 shape); "
        "the taxonomy has no rules for source 'labelme' (it has rules for: 'vendor_a')")
    assert "segpipe init" in problem.message


def test_rules_of_the_source_that_match_nothing_or_only_void_are_named_as_such():
    mapped, sources = batch([("Lane", "polygon"), ("kerb", "polygon")], "vendor_a")
    problem = no_label_mapped("b1", mapped, sources, TAXONOMY, "taxonomy.yaml")
    assert "none of the 2 rules for source 'vendor_a' matches them" in problem.message
    assert "'Lane' (1 shape), 'kerb' (1 shape)" in problem.message


def test_one_mapped_label_or_nothing_to_draw_is_no_problem():
    assert no_label_mapped("b1", *batch([("road", "polygon"), ("kerb", "polygon")], "vendor_a"), TAXONOMY, "t") is None
    assert no_label_mapped("b1", *batch([("kerb", "polyline"), ("x", "points")], "vendor_a"), TAXONOMY, "t") is None
    assert no_label_mapped("b1", *batch([], "vendor_a"), TAXONOMY, "t") is None


def test_each_unmapped_label_comes_with_the_rule_to_add_under_its_sources_key():
    mapped, sources = batch([("Curb: high", "polygon"), ("Curb: high", "polygon"), ("Road", "polygon"),
                             ("Lane", "polygon"), ("pole", "polyline")], "vendor_a")
    images = sources.with_columns(batch_id=pl.lit("b1"), file_name=pl.lit("a.jpg"))
    report = unmapped_labels_with_rules(mapped, images, TAXONOMY)
    assert report.select("source", "raw_label", "shapes", "examples", "rule_to_add").rows() == [
        ("vendor_a", "Curb: high", 2, "b1/a.jpg",
         'mappings.vendor_a: - {label: "Curb: high", to: <class, void or skip>}')]  # polylines are never drawn
    assert rule_to_add(TAXONOMY, "vendor_a", "traffic sign") == (
        "mappings.vendor_a: - {label: traffic sign, to: <class, void or skip>}")


def test_the_rule_for_a_source_known_by_an_alias_goes_under_the_key_whose_rules_it_uses():
    aliased = parse_taxonomy(
        "name: t\nversion: 1\nclasses:\n  - {id: 0, name: road, color: [1, 2, 3]}\n"
        "mappings:\n  vendor_a: {Road: road}\nsources:\n  vendor_a: {aliases: [vendor_a_v2]}\n", "taxonomy.yaml")
    assert rule_to_add(aliased, "vendor_a_v2", "Lane").startswith("mappings.vendor_a: - {label: Lane, ")
