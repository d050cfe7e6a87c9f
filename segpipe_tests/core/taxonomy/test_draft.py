"""The starting taxonomy init writes: a draft of an export's labels, or a preset re-keyed to its source."""

from pathlib import Path

import orjson
import polars as pl
import pytest

from segpipe.core.taxonomy.draft import DraftError, covers, draft_taxonomy, rekeyed_preset
from segpipe.core.taxonomy.model import load_taxonomy, map_labels, parse_taxonomy

PRESETS = Path(__file__).parents[3] / "segpipe" / "config" / "presets"


def shapes(*labels: tuple[str, str]) -> pl.DataFrame:
    """One shape per (label, kind), on entries e0, e1, ... in turn of two."""
    return pl.DataFrame({
        "entry_id": [f"e{i // 2}" for i in range(len(labels))], "shape_index": list(range(len(labels))),
        "raw_label": [label for label, _ in labels], "kind": [kind for _, kind in labels],
        "attributes": [orjson.dumps({}).decode()] * len(labels)})


def mapped(text: str, source: str, found: pl.DataFrame) -> dict[str, tuple[str | None, str]]:
    """raw label -> (class name, mapping outcome) under the taxonomy `text` for `source`."""
    taxonomy = parse_taxonomy(text, "t.yaml")
    names = {c.id: c.name for c in taxonomy.classes}
    entries = found.select("entry_id").unique().with_columns(pl.lit(source).alias("source"))
    result = map_labels(found, entries, taxonomy)
    return {label: (names.get(class_id), outcome)
            for label, class_id, outcome in result.select("raw_label", "class_id", "mapping").unique().iter_rows()}


def test_a_draft_has_a_class_per_label_with_its_shapes_and_maps_every_spelling_of_it():
    found = shapes(("dent", "polygon"), ("Dent ", "polygon"), ("dent", "mask"), ("rust", "box"), ("crack", "polyline"))
    text = draft_taxonomy("parts", "labelme", found, "exports/parts")
    taxonomy = parse_taxonomy(text, "t.yaml")
    assert [(c.id, c.name) for c in taxonomy.classes] == [(0, "dent"), (1, "crack"), (2, "rust")]
    assert len({c.color for c in taxonomy.classes}) == 3 and (0, 0, 0) not in {c.color for c in taxonomy.classes}
    assert taxonomy.unmapped == "error" and set(taxonomy.mappings) == {"labelme"}
    assert mapped(text, "labelme", found) == {"dent": ("dent", "mapped"), "Dent ": ("dent", "mapped"),
                                              "rust": ("rust", "mapped"), "crack": ("crack", "mapped")}
    assert '"dent", color: [128, 0, 0]}  # 2 polygons, 1 mask\n' in text
    assert "# 1 box; boxes are drawn only with rasterize_boxes: true\n" in text
    assert "# 1 polyline; lines and points are never drawn\n" in text


def test_labels_that_are_mask_values_keep_them_as_ids_and_reserved_names_are_targets():
    text = draft_taxonomy("masks", "image_mask_folders", shapes(("12", "mask"), ("0", "mask"), ("3", "mask"),
                                                                 ("void", "mask")), "m")
    taxonomy = parse_taxonomy(text, "t.yaml")
    assert [(c.id, c.name) for c in taxonomy.classes] == [(0, "0"), (3, "3"), (12, "12")]
    assert taxonomy.resolve("image_mask_folders", "void", {}) == (None, "void")


def test_shapes_without_a_label_are_drawn_as_ignore_and_the_draft_says_so():
    """Datumaro's CVAT sample holds shapes whose label is empty: a class needs a name."""
    found = shapes(("", "polygon"), ("label1", "box"), (" ", "polyline"))
    text = draft_taxonomy("task", "cvat_images_1.1", found, "exports/task")
    assert [c.name for c in parse_taxonomy(text, "t.yaml").classes] == ["label1"]
    assert mapped(text, "cvat_images_1.1", found) == {"": (None, "void"), " ": (None, "void"),
                                                      "label1": ("label1", "mapped")}
    assert '    "": "void"  # 1 polygon, 1 polyline without a label: drawn as ignore_index; map them to a class if ' \
           'they show one\n' in text


def test_labels_that_need_quoting_read_back_as_written():
    odd = ("a: b", "#hash", "yes", "x|y", "ünïcode \"quoted\"")
    text = draft_taxonomy("odd", "src: 1", shapes(*((label, "polygon") for label in odd)), "o")
    assert {name for name, _ in mapped(text, "src: 1", shapes(*((label, "polygon") for label in odd))).values()} == set(odd)


def test_no_label_or_more_than_a_mask_holds_cannot_be_drafted():
    with pytest.raises(DraftError, match="no shape with a label"):
        draft_taxonomy("x", "s", shapes(), "empty")
    with pytest.raises(DraftError, match="256 labels, but a mask holds at most 255 classes"):
        draft_taxonomy("x", "s", shapes(*((f"l{i}", "polygon") for i in range(256))), "many")


def test_a_preset_covers_an_export_whose_every_label_its_rules_match():
    voc = load_taxonomy(PRESETS / "pascal_voc.yaml")
    assert covers(voc, "voc", shapes(("cat", "mask"), ("void", "mask"), ("background", "mask")))
    assert not covers(voc, "voc", shapes(("cat", "mask"), ("dent", "mask")))  # one label it does not know
    assert not covers(voc, "voc", shapes(("void", "mask")))  # nothing mapped to a class
    assert covers(voc, "voc_segmentation", shapes(("cat", "mask")))  # the format's name is an alias of voc
    assert not covers(voc, "my_batch", shapes(("cat", "mask")))  # no rules for that source


@pytest.mark.parametrize("preset", sorted(p.stem for p in PRESETS.glob("*.yaml")))
def test_every_preset_re_keyed_to_a_batchs_source_maps_as_it_did_and_keeps_its_comments(preset):
    text = (PRESETS / f"{preset}.yaml").read_text()
    original = parse_taxonomy(text, preset)
    [source] = original.mappings
    rekeyed = rekeyed_preset(text, source, "my_batch", f"presets/{preset}.yaml", "exports/x")
    taxonomy = parse_taxonomy(rekeyed, "t.yaml")
    assert set(taxonomy.mappings) == {"my_batch"} and taxonomy.classes == original.classes
    assert [r.fingerprint() for r in taxonomy.mappings["my_batch"]] == [r.fingerprint() for r in original.mappings[source]]
    assert rekeyed.endswith(text[text.index("\nmappings:") + 40:]) and text.splitlines()[0] in rekeyed
    assert rekeyed_preset(text, source, source, "p", "x").endswith(text)  # already the batch's source


@pytest.mark.parametrize("preset", sorted(p.stem for p in PRESETS.glob("*.yaml")))
def test_a_preset_re_keyed_to_its_own_alias_drops_that_alias(preset):
    """init keys a preset to the batch's source, by default the format's name, which the preset declares
    as an alias of its source: the re-keyed source has the rules, so it is no alias of itself."""
    text = (PRESETS / f"{preset}.yaml").read_text()
    original = parse_taxonomy(text, preset)
    [source] = original.mappings
    for alias in [name for name, target in original.aliases.items() if target == source]:
        taxonomy = parse_taxonomy(rekeyed_preset(text, source, alias, f"presets/{preset}.yaml", "exports/x"), "t.yaml")
        assert set(taxonomy.mappings) == {alias} and alias not in taxonomy.aliases
        assert set(taxonomy.aliases) == set(original.aliases) - {alias}
