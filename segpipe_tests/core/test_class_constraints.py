import numpy as np
import polars as pl
import pytest

from segpipe.core.artefact_keys import ArtefactStore
from segpipe.core.class_constraints import constraint_findings
from segpipe.core.errors import ConfigError
from segpipe.core.png import encode_mask_png
from segpipe.core.taxonomy import parse_taxonomy

BASE = """name: street
version: 1
unmapped: void
classes:
  - {id: 0, name: road, color: [1, 1, 1]}
  - {id: 1, name: sky, color: [2, 2, 2]}
  - {id: 2, name: car, color: [3, 3, 3]}
mappings: {}
"""
RULES = """constraints:
  - {class: car, max_area_share: 0.5}
  - {class: road, touches: bottom}
  - {classes: [sky, road], adjacent: false}
"""


def street(rows: list[list[int]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.uint8)


def findings(masks: dict[str, np.ndarray], store: dict | None = None) -> dict[str, tuple[str, ...]]:
    taxonomy = parse_taxonomy(BASE + RULES, "t.yaml")
    objects = store if store is not None else {}
    objects.update({f"m-{k}": encode_mask_png(m) for k, m in masks.items()})
    frame = pl.DataFrame({"entry_id": list(masks), "mask_key": [f"m-{k}" for k in masks],
                          "class_pixels": [np.bincount(m.ravel(), minlength=256).tolist() for m in masks.values()]})
    return constraint_findings(frame, taxonomy.constraints, {c.name: c.id for c in taxonomy.classes},
                               taxonomy.ignore_index, ArtefactStore.in_memory(objects))


def test_each_rule_flags_the_mask_that_breaks_it_with_the_taxonomy_line():
    sky_over_road = street([[1, 1, 1], [255, 255, 255], [0, 0, 0]])  # sky and road kept apart
    touching = street([[1, 1, 1], [0, 0, 0], [0, 0, 0]])  # sky right above road
    floating = street([[1, 1, 1], [0, 0, 0], [2, 2, 2]])  # road does not reach the bottom
    big_car = street([[2, 2, 2], [2, 2, 2], [0, 0, 0]])
    found = findings({"ok": sky_over_road, "touching": touching, "floating": floating, "car": big_car})
    assert "ok" not in found
    assert found["touching"] == ("sky borders road (taxonomy line 12)",)
    assert "road does not touch the image bottom (taxonomy line 11)" in found["floating"]
    assert found["car"] == ("car covers 67% of the labelled pixels, over 50% (taxonomy line 10)",)


def test_findings_are_remembered_per_mask_and_not_recomputed():
    store: dict = {}
    first = findings({"touching": street([[1, 1], [0, 0]])}, store)
    memos = {k for k in store if k.startswith("qa-constraints/")}
    store[next(iter(memos))] = b'["remembered"]'  # a rerun reads the memo instead of the mask
    assert first == {"touching": ("sky borders road (taxonomy line 12)",)}
    assert findings({"touching": street([[1, 1], [0, 0]])}, store) == {"touching": ("remembered",)}


@pytest.mark.parametrize(("rule", "message"), [
    ("  - {class: truck, max_area_share: 0.5}\n", "t.yaml:10: constraint names unknown classes ['truck']"),
    ("  - {class: car, max_area_share: 2}\n", "t.yaml:10: max_area_share must be a number in (0, 1]"),
    ("  - {class: road, touches: middle}\n", "t.yaml:10: touches must be one of"),
    ("  - {classes: [sky], adjacent: false}\n", "t.yaml:10: `adjacent` takes 2 class names"),
    ("  - {classes: [sky, road], adjacent: true}\n", "t.yaml:10: adjacent can only be false"),
    ("  - {class: car}\n", "t.yaml:10: a constraint has one of"),
])
def test_a_bad_constraint_is_refused_naming_the_line(rule, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        parse_taxonomy(BASE + "constraints:\n" + rule, "t.yaml")


def test_constraints_are_part_of_the_version_only_when_used():
    plain, constrained = parse_taxonomy(BASE, "t.yaml"), parse_taxonomy(BASE + RULES, "t.yaml")
    assert plain.taxonomy_version != constrained.taxonomy_version
    assert plain.taxonomy_version == parse_taxonomy(BASE + "\n# a comment\n", "t.yaml").taxonomy_version
