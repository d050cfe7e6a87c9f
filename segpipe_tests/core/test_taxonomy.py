from pathlib import Path

import polars as pl
import pytest

from segpipe.core.errors import ConfigError
from segpipe.core.taxonomy import load_taxonomy, map_labels, normalize_label, parse_taxonomy, unmapped_segments

BASE = """
name: t
version: 3
unmapped: {policy}
classes:
  - {{id: 0, name: road, color: [1, 2, 3]}}
  - {{id: 7, name: car, color: [4, 5, 6]}}
mappings:
  src:
    Road: road
    vehicle.car: car
"""


def taxonomy(policy: str = "void"):
    return parse_taxonomy(BASE.format(policy=policy), "test.yaml")


def test_packaged_taxonomy_loads_and_maps_every_demo_source():
    t = load_taxonomy(Path(__file__).parents[2] / "segpipe" / "config" / "taxonomy.yaml")
    assert len(t.classes) == 9 and t.ignore_index == 255
    assert set(t.mappings) == {"vendor_a", "vendor_b", "vendor_c", "gold"}
    assert all(len(rules) == 9 for rules in t.mappings.values())


def test_version_names_the_content_and_ignores_comments():
    plain = taxonomy()
    commented = parse_taxonomy("# a comment\n" + BASE.format(policy="void"), "x.yaml")
    changed = parse_taxonomy(BASE.format(policy="void").replace("vehicle.car: car", "automobile: car"), "x.yaml")
    assert plain.taxonomy_version == commented.taxonomy_version
    assert plain.taxonomy_version != changed.taxonomy_version
    assert plain.taxonomy_version.startswith("t-v3-")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.replace("id: 7", "id: 0"), "duplicate class id 0"),
    (lambda s: s.replace("id: 7", "id: 255"), "other than ignore_index"),
    (lambda s: s.replace("vehicle.car: car", "vehicle.car: truck"), "'truck' is not a class"),
    (lambda s: s.replace("unmapped: void", "unmapped: drop"), "unmapped must be one of"),
    (lambda s: s.replace("color: [4, 5, 6]", "color: [4, 5]"), "color must be [r, g, b]"),
    (lambda s: s + "extra: 1\n", "unknown keys ['extra']"),
    (lambda s: s.replace("    Road: road", "    Road: road\n    ' road ': car"), "clashes"),
])
def test_invalid_taxonomy_fails_with_a_message_naming_the_rule(edit, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        parse_taxonomy(edit(BASE.format(policy="void")), "bad.yaml")
    assert str(info.value).startswith("bad.yaml")


def test_normalize_label_ignores_case_and_whitespace():
    assert normalize_label("  Traffic \t SIGN ") == normalize_label("traffic sign")


@pytest.mark.parametrize("policy", ["void", "ignore", "error"])
def test_map_labels_maps_by_source_and_marks_unmapped_by_policy(policy):
    shapes = pl.DataFrame({"entry_id": ["e1", "e1", "e2"], "shape_index": [0, 1, 0],
                           "raw_label": ["ROAD", "fire hydrant", "vehicle.car"], "z_order": [0, 0, 0],
                           "rings": [[[0.0, 0, 1, 0, 1, 1]]] * 3})
    sources = pl.DataFrame({"entry_id": ["e1", "e2"], "source": ["src", "src"]})
    mapped = map_labels(shapes, sources, taxonomy(policy))
    assert mapped["class_id"].to_list() == [0, None, 7]
    assert mapped["mapping"].to_list() == ["mapped", f"unmapped_{policy}", "mapped"]


def test_labels_of_another_source_do_not_map():
    shapes = pl.DataFrame({"entry_id": ["e1"], "shape_index": [0], "raw_label": ["Road"], "z_order": [0],
                           "rings": [[[0.0, 0, 1, 0, 1, 1]]]})
    mapped = map_labels(shapes, pl.DataFrame({"entry_id": ["e1"], "source": ["other"]}), taxonomy())
    assert mapped["class_id"].to_list() == [None]


def test_only_unmapped_segmentation_shapes_count_as_unmapped():
    mapped = pl.DataFrame({
        "entry_id": ["e1", "e1", "e1", "e2"], "raw_label": ["car", "lane", "sign", "blob"],
        "kind": ["polygon", "polyline", "points", "mask"], "class_id": [3, None, None, None],
    })
    assert unmapped_segments(mapped).rows() == [("e2", "blob")]


def test_a_class_may_ask_for_its_boxes_to_be_painted_and_that_changes_the_version():
    car = "{{id: 7, name: car, color: [4, 5, 6]}}"
    boxed = parse_taxonomy(BASE.replace(car, car[:-2] + ", rasterize_boxes: true}}").format(policy="void"), "t.yaml")
    assert [c.rasterize_boxes for c in boxed.classes] == [False, True]
    assert boxed.taxonomy_version != taxonomy().taxonomy_version
    with pytest.raises(ConfigError, match="rasterize_boxes must be true or false"):
        parse_taxonomy(BASE.replace(car, car[:-2] + ", rasterize_boxes: 1}}").format(policy="void"), "t.yaml")
