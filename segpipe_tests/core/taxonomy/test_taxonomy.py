import re
from pathlib import Path

import polars as pl
import pytest

from segpipe.core.shared.errors import ConfigError
from segpipe.core.taxonomy.model import (
    DISPUTED_LABEL,
    load_taxonomy,
    map_labels,
    normalize_label,
    parse_taxonomy,
    unmapped_label_report,
    unmapped_segments,
)

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


def test_the_demo_taxonomy_loads_and_maps_every_demo_source():
    t = load_taxonomy(Path(__file__).parents[3] / "segpipe" / "demo" / "config" / "taxonomy.yaml")
    assert len(t.classes) == 9 and t.ignore_index == 255
    assert set(t.mappings) == {"vendor_a", "vendor_b", "vendor_c", "gold"}
    assert all(len(rules) == 9 for rules in t.mappings.values())


def test_the_packaged_taxonomy_maps_no_label_and_voids_none():
    """A placeholder: whatever a build without a taxonomy of its own meets is unmapped, an error."""
    t = load_taxonomy(Path(__file__).parents[3] / "segpipe" / "config" / "taxonomy.yaml")
    assert t.mappings == {} and t.unmapped == "error"
    assert t.resolve("coco_instances", "car", {}) == (None, "unmapped_error")


def test_version_names_the_content_and_ignores_comments():
    plain = taxonomy()
    commented = parse_taxonomy("# a comment\n" + BASE.format(policy="void"), "x.yaml")
    changed = parse_taxonomy(BASE.format(policy="void").replace("vehicle.car: car", "automobile: car"), "x.yaml")
    assert plain.taxonomy_version == commented.taxonomy_version
    assert plain.taxonomy_version != changed.taxonomy_version
    assert plain.taxonomy_version.startswith("t-v3-")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.replace("id: 7", "id: 0"), "bad.yaml:7: classes[1].id: duplicate class id 0, as classes[0] (line 6)"),
    (lambda s: s.replace("id: 7", "id: 255"),
     "bad.yaml:7: classes[1].id: must be an integer in 0..255 other than ignore_index 255, got 255"),
    (lambda s: s.replace("vehicle.car: car", "vehicle.car: truck"),
     "bad.yaml:11: mappings.src['vehicle.car']: target 'truck' is not a class of this taxonomy, nor one of "
     "['void', 'skip']"),
    (lambda s: s.replace("unmapped: void", "unmapped: drop"),
     "bad.yaml:4: unmapped: must be one of ('error', 'ignore', 'void'), got 'drop'"),
    (lambda s: s.replace("color: [4, 5, 6]", "color: [4, 5]"),
     "bad.yaml:7: classes[1].color: must be [r, g, b] with values in 0..255, got [4, 5]"),
    (lambda s: s + "extra: 1\n",
     "bad.yaml:12: extra: unknown key; known keys: classes, constraints, ignore_index, mappings, name, sources, unmapped, "
     "version"),
    (lambda s: s.replace("unmapped: void", "unmaped: void"), "bad.yaml:4: unmaped: unknown key; did you mean 'unmapped'?"),
    (lambda s: s.replace("    Road: road", "    Road: road\n    ' road ': car"),
     "bad.yaml:11: mappings.src[' road ']: label 'road' is already mapped to 'road' at line 10; the earlier rule "
     "would always win"),
])
def test_invalid_taxonomy_fails_with_a_message_naming_the_rule(edit, message):
    with pytest.raises(ConfigError) as info:
        parse_taxonomy(edit(BASE.format(policy="void")), "bad.yaml")
    assert str(info.value).splitlines() == [message]


MANY_PROBLEMS = """\
name: t
version: 1
unmapped: void
classes:
  - {id: 0, name: road, color: [1, 2, 3]}
  - {id: 1, name: car, color: [4, 5, 999]}
  - {id: 0, name: bus, color: [7, 8, 9]}
mappings:
  src:
    - {label: Road, to: road}
    - {label: Truck, to: truck}
constraints:
  - {class: road, touches: middle}
"""


def test_a_taxonomy_reports_every_problem_at_once_in_the_pipeline_settings_format():
    with pytest.raises(ConfigError) as info:
        parse_taxonomy(MANY_PROBLEMS, "taxonomy.yaml")
    assert str(info.value).splitlines() == [
        "taxonomy.yaml:6: classes[1].color: must be [r, g, b] with values in 0..255, got [4, 5, 999]",
        "taxonomy.yaml:7: classes[2].id: duplicate class id 0, as classes[0] (line 5)",
        "taxonomy.yaml:11: mappings.src[1]: target 'truck' is not a class of this taxonomy, nor one of ['void', 'skip']",
        "taxonomy.yaml:13: constraints[0]: touches must be one of ['bottom', 'top', 'left', 'right'], got 'middle'",
    ]
    assert [(p.file, p.line, p.key) for p in info.value.problems][:1] == [("taxonomy.yaml", 6, "classes[1].color")]


@pytest.mark.parametrize(("text", "expected"), [
    ("name: t\nversion: [1\n", ["t.yaml:3: not valid YAML (column 1): expected ',' or ']', but got '<stream end>'"]),
    ("- t\n", ["t.yaml: expected a mapping at the top level"]),
    ("name: t\nversion: one\nclasses: []\n", [
        "t.yaml:1: mappings: required key is missing", "t.yaml:2: version: must be an integer, got 'one'",
        "t.yaml:3: classes: must not be empty"]),
])
def test_a_taxonomy_that_is_no_taxonomy_at_all_is_named_too(text, expected):
    with pytest.raises(ConfigError) as info:
        parse_taxonomy(text, "t.yaml")
    assert str(info.value).splitlines() == expected


def test_a_rule_given_twice_is_refused_naming_both_lines_not_overridden_silently():
    text = BASE.format(policy="void") + "    Road: car\n" + "version: 4\n"
    with pytest.raises(ConfigError) as info:
        parse_taxonomy(text, "t.yaml")
    dropped = "YAML would keep only this one and drop the first without a word; keep one of them"
    assert str(info.value).splitlines() == [f"t.yaml:12: mappings.src.Road: given twice (first at line 10): {dropped}",
                                            f"t.yaml:13: version: given twice (first at line 3): {dropped}"]


def test_normalize_label_ignores_case_and_whitespace():
    assert normalize_label("  Traffic \t SIGN ") == normalize_label("traffic sign")


def shapes_frame(labels: list[str], attributes: list[str] | None = None, kinds: list[str] | None = None) -> pl.DataFrame:
    n = len(labels)
    return pl.DataFrame({
        "entry_id": [f"e{i}" for i in range(n)], "shape_index": [0] * n, "raw_label": labels,
        "kind": kinds or ["polygon"] * n, "z_order": [0] * n, "rings": [[[0.0, 0, 1, 0, 1, 1]]] * n,
        "attributes": attributes or ["{}"] * n,
    })


def sources_frame(n: int, source: str = "src") -> pl.DataFrame:
    return pl.DataFrame({"entry_id": [f"e{i}" for i in range(n)], "source": [source] * n})


@pytest.mark.parametrize("policy", ["void", "ignore", "error"])
def test_map_labels_maps_by_source_and_marks_unmapped_by_policy(policy):
    mapped = map_labels(shapes_frame(["ROAD", "fire hydrant", "vehicle.car"]), sources_frame(3), taxonomy(policy))
    assert mapped["class_id"].to_list() == [0, None, 7]
    assert mapped["mapping"].to_list() == ["mapped", f"unmapped_{policy}", "mapped"]


def test_labels_of_another_source_do_not_map():
    mapped = map_labels(shapes_frame(["Road"]), sources_frame(1, "other"), taxonomy())
    assert mapped["class_id"].to_list() == [None]


RULES = """
name: t
version: 1
unmapped: error
classes:
  - {id: 0, name: road, color: [1, 2, 3]}
  - {id: 7, name: car, color: [4, 5, 6], category: vehicle, has_instances: true}
mappings:
  src:
    - {label: car, when: {iscrowd: "1"}, to: void}
    - {labels: [Car, automobile], to: car}
    - {glob: "vehicle.*", to: car}
    - {regex: "^lane( marking)?$", to: skip}
    - {regex: '^road(_\\d+)?$', to: road}
"""


def test_rules_match_aliases_globs_regexes_and_attributes_first_match_wins():
    rules = parse_taxonomy(RULES, "rules.yaml")
    labels = ["CAR", "car", "automobile", "vehicle.truck", "Lane Marking", "road_12", "bicycle"]
    attributes = ['{"iscrowd":"1"}', '{"iscrowd":"0"}', "{}", "{}", "{}", "{}", "{}"]
    mapped = map_labels(shapes_frame(labels, attributes), sources_frame(len(labels)), rules)
    assert mapped["class_id"].to_list() == [None, 7, 7, 7, None, 0, None]
    assert mapped["mapping"].to_list() == ["void", "mapped", "mapped", "mapped", "skip", "mapped", "unmapped_error"]
    assert rules.class_by_name()["car"].has_instances and rules.class_by_name()["car"].category == "vehicle"


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.replace("{glob: \"vehicle.*\", to: car}", "{glob: \"vehicle.*\", to: truck}"),
     "rules.yaml:12: mappings.src[2]: target 'truck' is not a class"),
    (lambda s: s.replace("{labels: [Car, automobile], to: car}", "{labels: [Car], glob: x, to: car}"),
     "rules.yaml:11: mappings.src[1]: a rule needs exactly one of"),
    (lambda s: s.replace("^lane( marking)?$", "^lane(("), "rules.yaml:13: mappings.src[3]: regex '^lane((' does not compile"),
    (lambda s: s.replace("{iscrowd: \"1\"}", "[iscrowd]"), "rules.yaml:10: mappings.src[0]: when must map attribute names"),
    (lambda s: s.replace("name: road,", "name: void,"),
     "rules.yaml:6: classes[0].name: 'void' is reserved for mapping targets (void, skip)"),
    (lambda s: s.replace('{glob: "vehicle.*", to: car}', '{glob: "vehicle.*", to: car, crowd: "yes"}'),
     "rules.yaml:12: mappings.src[2]: crowd must be true or false, got 'yes'"),
    (lambda s: s.replace('{glob: "vehicle.*", to: car}', '{glob: "vehicle.*", to: car, crowded: true}'),
     "rules.yaml:12: mappings.src[2]: a rule needs exactly one of ['label', 'labels', 'glob', 'regex'], a `to`, and "
     "optionally `when` and `crowd`; got ['crowded', 'glob', 'to']"),
    (lambda s: s.replace("{labels: [Car, automobile], to: car}",
                         "{labels: [Car, automobile], to: car}\n    - {label: automobile, to: car, crowd: true}"),
     "rules.yaml:12: mappings.src[2]: label 'automobile' is already mapped to 'car', not as a crowd, at line 11"),
])
def test_rule_errors_name_the_file_the_rule_and_its_line(edit, message):
    with pytest.raises(ConfigError) as info:
        parse_taxonomy(edit(RULES), "rules.yaml")
    assert message in str(info.value)


def test_a_source_alias_uses_the_sources_rules_and_names_a_new_version():
    aliased = parse_taxonomy(BASE.format(policy="void") + "sources:\n  src: {aliases: [coco_instances, vendor_x]}\n", "a.yaml")
    mapped = map_labels(shapes_frame(["Road", "vehicle.car", "Road"]),
                        pl.DataFrame({"entry_id": ["e0", "e1", "e2"], "source": ["coco_instances", "vendor_x", "other"]}),
                        aliased)
    assert mapped["class_id"].to_list() == [0, 7, None]
    assert (aliased.rule_source("coco_instances"), aliased.rule_source("src"), aliased.rule_source("other")) == (
        "src", "src", "other")
    assert aliased.taxonomy_version != taxonomy().taxonomy_version


@pytest.mark.parametrize(("sources", "message"), [
    ("  elsewhere: {aliases: [x]}", "bad.yaml:13: sources.elsewhere: has no rules under mappings.elsewhere to share; "
                                    "sources with rules: src"),
    ("  src: {aliases: [src]}", "bad.yaml:13: sources.src.aliases: 'src' has rules of its own under mappings.src; a "
                                "batch uses the rules of one source, so drop the alias or those rules"),
    ("  src: {aliases: [x, x]}", "bad.yaml:13: sources.src.aliases: 'x' is already an alias of 'src'"),
    ("  src: {aliases: []}", "bad.yaml:13: sources.src.aliases: must be a non-empty list of source names, got []"),
    ("  src: {alias: [x]}", "bad.yaml:13: sources.src.alias: unknown key; did you mean 'aliases'?\n"
                            "bad.yaml:13: sources.src.aliases: required key is missing"),
    ("  src: [x]", "bad.yaml:13: sources.src: must be a mapping such as {aliases: [src_export]}, got ['x']"),
])
def test_invalid_source_aliases_name_the_file_line_and_key(sources, message):
    with pytest.raises(ConfigError) as info:
        parse_taxonomy(BASE.format(policy="void") + f"sources:\n{sources}\n", "bad.yaml")
    assert str(info.value) == message


def test_content_hash_ignores_layout_but_not_rule_order():
    rules = parse_taxonomy(RULES, "a.yaml")
    assert parse_taxonomy(RULES.replace("classes:", "# a comment\nclasses:"), "b.yaml").content_hash == rules.content_hash
    swapped = RULES.replace('    - {label: car, when: {iscrowd: "1"}, to: void}\n', "") + '    - {label: car, when: {iscrowd: "1"}, to: void}\n'
    assert parse_taxonomy(swapped, "c.yaml").content_hash != rules.content_hash


def test_crowd_rules_and_the_iscrowd_attribute_mark_crowds():
    rules = parse_taxonomy(RULES.replace("    - {glob:", "    - {label: cargroup, to: car, crowd: true}\n    - {glob:"), "r.yaml")
    assert [rule.crowd for rule in rules.mappings["src"]] == [False, False, True, False, False, False]
    labels = ["cargroup", "car", "car", "vehicle.bus", "car", "bicycle"]
    attributes = ["{}", '{"iscrowd":"0"}', "{}", '{"iscrowd":"1"}', '{"iscrowd":"1"}', '{"iscrowd":"1"}']
    mapped = map_labels(shapes_frame(labels, attributes), sources_frame(len(labels)), rules)
    assert mapped["class_id"].to_list() == [7, 7, 7, 7, None, None]
    assert mapped["mapping"].to_list() == ["mapped", "mapped", "mapped", "mapped", "void", "unmapped_error"]
    assert mapped["is_crowd"].to_list() == [True, False, False, True, True, True]


def test_crowd_changes_the_version_only_when_set():
    glob = '{glob: "vehicle.*", to: car}'
    plain = parse_taxonomy(RULES, "a.yaml")
    unset = parse_taxonomy(RULES.replace(glob, glob[:-1] + ", crowd: false}"), "b.yaml")
    crowd = parse_taxonomy(RULES.replace(glob, glob[:-1] + ", crowd: true}"), "c.yaml")
    assert unset.taxonomy_version == plain.taxonomy_version != crowd.taxonomy_version


def test_only_unmapped_segmentation_shapes_count_as_unmapped():
    mapped = pl.DataFrame({
        "entry_id": ["e1", "e1", "e1", "e2", "e3"], "raw_label": ["car", "lane", "sign", "blob", "crowd"],
        "kind": ["polygon", "polyline", "points", "mask", "polygon"], "class_id": [3, None, None, None, None],
        "mapping": ["mapped", "unmapped_void", "unmapped_void", "unmapped_void", "void"],
    })
    assert unmapped_segments(mapped).rows() == [("e2", "blob")]


def test_a_class_may_ask_for_its_boxes_to_be_painted_and_that_changes_the_version():
    car = "{{id: 7, name: car, color: [4, 5, 6]}}"
    boxed = parse_taxonomy(BASE.replace(car, car[:-2] + ", rasterize_boxes: true}}").format(policy="void"), "t.yaml")
    assert [c.rasterize_boxes for c in boxed.classes] == [False, True]
    assert boxed.taxonomy_version != taxonomy().taxonomy_version
    with pytest.raises(ConfigError, match=re.escape("t.yaml:7: classes[1].rasterize_boxes: must be true or false, got 1")):
        parse_taxonomy(BASE.replace(car, car[:-2] + ", rasterize_boxes: 1}}").format(policy="void"), "t.yaml")


def test_unmapped_label_report_lists_each_label_with_counts_and_examples():
    unmapped = pl.DataFrame({"entry_id": ["e1", "e1", "e2", "e3"], "raw_label": ["hydrant", "hydrant", "hydrant", "bollard"]})
    images = pl.DataFrame({"entry_id": ["e1", "e2", "e3"], "batch_id": ["b1", "b1", "b2"],
                           "file_name": ["images/a.jpg", "images/b.jpg", "images/c.jpg"], "source": ["s1", "s1", "s2"]})
    report = unmapped_label_report(unmapped, images, examples=1)
    assert report.rows() == [("s1", "hydrant", 3, 2, "b1/images/a.jpg"), ("s2", "bollard", 1, 1, "b2/images/c.jpg")]


def test_a_review_batch_maps_the_taxonomys_class_names_and_skips_the_disputed_marks():
    t = taxonomy("error")
    assert t.resolve("review", "Road", {}) == (0, "mapped") and t.resolve("review", "car", {}) == (7, "mapped")
    assert t.resolve("review", DISPUTED_LABEL, {}) == (None, "skip")
    assert t.resolve("review", "vehicle.car", {}) == (None, "unmapped_error")  # a source's raw label is not a class
    own = parse_taxonomy(BASE.format(policy="void") + "  review:\n    lane: road\n", "test.yaml")
    assert own.resolve("review", "lane", {}) == (0, "mapped") and own.resolve("review", "car", {})[1] == "unmapped_void"
