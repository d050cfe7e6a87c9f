"""Cityscapes' two encodings of a class mask: labelTrainIds (the 19 evaluation classes as 0..18, 255
elsewhere; what trainers read) and labelIds (labels.py's ids, 0 `unlabeled`; what cityscapesScripts'
evaluation reads), as lookup tables from a release mask's values.

The ids come from the packaged presets (config/presets/cityscapes.yaml for trainIds,
cityscapes_label_ids.yaml for labelIds), which test_presets checks against labels.py: one
declaration. A taxonomy with exactly one preset's classes (ids and names) and ignore index is "the
Cityscapes preset": its masks convert into both encodings. Any other taxonomy has only labelTrainIds:
its own class ids, with its ignore index as 255.
"""

import functools
from pathlib import Path

import numpy as np

from segpipe.core.taxonomy.model import Taxonomy, load_taxonomy

PRESETS = Path(__file__).parents[2] / "config" / "presets"
CITYSCAPES_IGNORE = 255  # labelTrainIds' ignore value
UNLABELED = 0  # labelIds' `unlabeled`


@functools.cache
def _preset(name: str) -> Taxonomy:
    return load_taxonomy(PRESETS / f"{name}.yaml")


def _classes(taxonomy: Taxonomy) -> tuple[int, frozenset[tuple[int, str]]]:
    return taxonomy.ignore_index, frozenset((c.id, c.name) for c in taxonomy.classes)


def cityscapes_tables(taxonomy: Taxonomy) -> tuple[np.ndarray, np.ndarray | None]:
    """(train-id table, label-id table or None) for masks of `taxonomy`: `table[mask]` is the
    mask in that encoding. The label-id table only for a Cityscapes preset."""
    train_ids = {c.name: c.id for c in _preset("cityscapes").classes}
    label_ids = {c.name: c.id for c in _preset("cityscapes_label_ids").classes}
    if _classes(taxonomy) == _classes(_preset("cityscapes")):
        to_label = np.full(256, UNLABELED, np.uint8)
        for c in taxonomy.classes:
            to_label[c.id] = label_ids[c.name]
        return np.arange(256, dtype=np.uint8), to_label
    if _classes(taxonomy) == _classes(_preset("cityscapes_label_ids")):
        to_train = np.full(256, CITYSCAPES_IGNORE, np.uint8)
        for c in taxonomy.classes:
            to_train[c.id] = train_ids.get(c.name, CITYSCAPES_IGNORE)
        return to_train, np.arange(256, dtype=np.uint8)
    if taxonomy.ignore_index != CITYSCAPES_IGNORE and any(c.id == CITYSCAPES_IGNORE for c in taxonomy.classes):
        raise ValueError(f"taxonomy {taxonomy.name}: class id {CITYSCAPES_IGNORE} is labelTrainIds' ignore value; "
                         "give the class another id, or leave `cityscapes` out of release.exports")
    to_train = np.arange(256, dtype=np.uint8)
    to_train[taxonomy.ignore_index] = CITYSCAPES_IGNORE
    return to_train, None
