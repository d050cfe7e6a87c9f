import numpy as np
import polars as pl
import pytest

from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.shared.errors import ConfigError
from segpipe.core.qa.mask_structure import mask_structure
from segpipe.core.shared.png import encode_mask_png
from segpipe.core.taxonomy.model import parse_taxonomy

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
  - {classes: [car, sky], enclosed: false}
"""


def street(rows: list[list[int]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.uint8)


def findings(masks: dict[str, np.ndarray], store: dict | None = None) -> dict[str, tuple[str, ...]]:
    taxonomy = parse_taxonomy(BASE + RULES, "t.yaml")
    objects = store if store is not None else {}
    objects.update({f"m-{k}": encode_mask_png(m) for k, m in masks.items()})
    frame = pl.DataFrame({"entry_id": list(masks), "mask_key": [f"m-{k}" for k in masks],
                          "class_pixels": [np.bincount(m.ravel(), minlength=256).tolist() for m in masks.values()]})
    found = mask_structure(frame, taxonomy, 0, ArtefactStore.in_memory(objects))
    return {entry_id: structure.constraint_violations for entry_id, structure in found.items()}


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


def test_a_car_inside_the_sky_is_flagged_but_not_one_at_the_border_or_beside_a_road():
    floating = street([[1, 1, 1, 1], [1, 2, 2, 1], [1, 1, 1, 1], [255, 255, 255, 255]])
    at_border = street([[1, 1, 1, 1], [2, 2, 1, 1], [1, 1, 1, 1], [255, 255, 255, 255]])
    on_road = street([[1, 1, 1, 1], [1, 1, 1, 1], [1, 2, 1, 1], [255, 0, 255, 255]])
    two = street([[1, 1, 1, 1, 1], [1, 2, 1, 2, 1], [1, 1, 1, 1, 1], [255, 255, 255, 255, 255]])
    found = findings({"floating": floating, "at_border": at_border, "on_road": on_road, "two": two})
    assert found == {
        "floating": ("car lies inside sky (1 region at x 1-2, y 1-1) (taxonomy line 13)",),
        "two": ("car lies inside sky (2 regions, the first at x 1-1, y 1-1) (taxonomy line 13)",),
    }


def test_findings_are_remembered_per_mask_and_a_remembered_mask_is_not_read():
    store: dict = {}
    first = findings({"touching": street([[1, 1], [0, 0]])}, store)
    [memo] = [k for k in store if k.startswith("qa-mask-structure/")]
    assert first == {"touching": ("sky borders road (taxonomy line 12)",)}
    del store["m-touching"]
    store[memo] = b'{"constraints": ["remembered"], "fragments": []}'
    frame = pl.DataFrame({"entry_id": ["touching"], "mask_key": ["m-touching"], "class_pixels": [[2, 2] + [0] * 254]})
    taxonomy = parse_taxonomy(BASE + RULES, "t.yaml")
    [(entry_id, structure)] = mask_structure(frame, taxonomy, 0, ArtefactStore.in_memory(store)).items()
    assert (entry_id, structure.constraint_violations) == ("touching", ("remembered",))


@pytest.mark.parametrize(("rule", "message"), [
    ("  - {class: truck, max_area_share: 0.5}\n", "t.yaml:10: constraints[0]: constraint names unknown classes ['truck']"),
    ("  - {class: car, max_area_share: 2}\n", "t.yaml:10: constraints[0]: max_area_share must be a number in (0, 1]"),
    ("  - {class: road, touches: middle}\n", "t.yaml:10: constraints[0]: touches must be one of"),
    ("  - {classes: [sky], adjacent: false}\n", "t.yaml:10: constraints[0]: `adjacent` takes 2 class names"),
    ("  - {classes: [sky, road], adjacent: true}\n", "t.yaml:10: constraints[0]: adjacent can only be false"),
    ("  - {class: car}\n", "t.yaml:10: constraints[0]: a constraint has one of"),
    ("  - {classes: [car, sky], enclosed: true}\n", "t.yaml:10: constraints[0]: enclosed can only be false"),
    ("  - {class: car, enclosed: false}\n", "t.yaml:10: constraints[0]: `enclosed` takes 2 class names"),
    ("  - {classes: [car, car], enclosed: false}\n", "t.yaml:10: constraints[0]: `enclosed` takes two different classes"),
    ("  - {classes: [car, bus], enclosed: false}\n", "t.yaml:10: constraints[0]: constraint names unknown classes ['bus']"),
])
def test_a_bad_constraint_is_refused_naming_the_line(rule, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        parse_taxonomy(BASE + "constraints:\n" + rule, "t.yaml")


def test_constraints_are_part_of_the_version_only_when_used():
    plain, constrained = parse_taxonomy(BASE, "t.yaml"), parse_taxonomy(BASE + RULES, "t.yaml")
    assert plain.taxonomy_version != constrained.taxonomy_version
    assert plain.taxonomy_version == parse_taxonomy(BASE + "\n# a comment\n", "t.yaml").taxonomy_version
