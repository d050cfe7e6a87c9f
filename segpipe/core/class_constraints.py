"""Class-combination rules declared in the taxonomy: what a plausible mask of this domain looks like.

A street scene's road touches the image bottom; sky never borders road directly; a car does not
cover most of the frame. A mask that breaks such a rule usually holds a label swap or a runaway
polygon that per-pixel checks cannot see. Rules are data in the taxonomy's `constraints` list:

    constraints:
      - {class: car, max_area_share: 0.6}      # at most this share of the labelled pixels
      - {class: road, touches: bottom}          # when present, reaches that image edge
      - {classes: [sky, road], adjacent: false} # never 4-neighbours

Area shares come from class_pixels; the other rules need the mask, so each mask's findings are
remembered under its content-derived key and a rerun decodes only new masks.
"""

from dataclasses import dataclass

import numpy as np
import orjson
import polars as pl

from segpipe.core.artefact_keys import ArtefactStore, content_digest
from segpipe.core.errors import ConfigError
from segpipe.core.raster import decode_mask_png

EDGES = ("bottom", "top", "left", "right")
KINDS = ("max_area_share", "touches", "adjacent")


@dataclass(frozen=True)
class ClassConstraint:
    kind: str  # one of KINDS
    classes: tuple[str, ...]
    value: float | str | bool
    line: int | None = None

    def fingerprint(self) -> list:
        return [self.kind, list(self.classes), self.value]

    @property
    def needs_pixels(self) -> bool:
        return self.kind != "max_area_share"


def parse_constraint(entry: object, class_names: set[str], where: str, line: int | None) -> ClassConstraint:
    """One rule of the taxonomy's `constraints` list (its fields, without the loader's line markers),
    validated; `where` names the file and line in errors."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: a constraint must be a mapping, got {entry!r}")
    kinds = [kind for kind in KINDS if kind in entry]
    if len(kinds) != 1 or set(entry) - {*KINDS, "class", "classes"}:
        raise ConfigError(f"{where}: a constraint has one of {list(KINDS)} and `class` or `classes`, got "
                          f"{sorted(entry)}")
    kind = kinds[0]
    classes = (entry["class"],) if "class" in entry else tuple(entry.get("classes") or ())
    expected = 2 if kind == "adjacent" else 1
    if len(classes) != expected or not all(isinstance(c, str) for c in classes):
        raise ConfigError(f"{where}: `{kind}` takes {expected} class name{'s' if expected > 1 else ''}")
    unknown = sorted(set(classes) - class_names)
    if unknown:
        raise ConfigError(f"{where}: constraint names unknown classes {unknown}")
    value = entry[kind]
    if kind == "max_area_share" and (isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1):
        raise ConfigError(f"{where}: max_area_share must be a number in (0, 1], got {value!r}")
    if kind == "touches" and value not in EDGES:
        raise ConfigError(f"{where}: touches must be one of {list(EDGES)}, got {value!r}")
    if kind == "adjacent" and value is not False:
        raise ConfigError(f"{where}: adjacent can only be false (a forbidden neighbourhood), got {value!r}")
    return ClassConstraint(kind, classes, value, line)


def _edge(mask: np.ndarray, edge: str) -> np.ndarray:
    return {"bottom": mask[-1], "top": mask[0], "left": mask[:, 0], "right": mask[:, -1]}[edge]


def _adjacent(mask: np.ndarray, a: int, b: int) -> bool:
    for first, second in ((mask[:, :-1], mask[:, 1:]), (mask[:-1], mask[1:])):
        if (((first == a) & (second == b)) | ((first == b) & (second == a))).any():
            return True
    return False


def violations(constraints: tuple[ClassConstraint, ...], class_ids: dict[str, int], pixels: np.ndarray,
               ignore_index: int, mask: np.ndarray | None) -> list[str]:
    """What one mask breaks (mask may be None when no constraint needs pixels)."""
    labelled = int(pixels.sum()) - int(pixels[ignore_index])
    found = []
    for rule in constraints:
        ids = [class_ids[name] for name in rule.classes]
        where = f" (taxonomy line {rule.line})" if rule.line else ""
        if rule.kind == "max_area_share":
            share = pixels[ids[0]] / labelled if labelled else 0.0
            if share > rule.value:
                found.append(f"{rule.classes[0]} covers {share:.0%} of the labelled pixels, over {rule.value:.0%}{where}")
        elif rule.kind == "touches":
            if pixels[ids[0]] and not (_edge(mask, rule.value) == ids[0]).any():
                found.append(f"{rule.classes[0]} does not touch the image {rule.value}{where}")
        elif pixels[ids[0]] and pixels[ids[1]] and _adjacent(mask, ids[0], ids[1]):
            found.append(f"{rule.classes[0]} borders {rule.classes[1]}{where}")
    return found


def constraint_findings(masks: pl.DataFrame, constraints: tuple[ClassConstraint, ...], class_ids: dict[str, int],
                        ignore_index: int, store: ArtefactStore) -> dict[str, tuple[str, ...]]:
    """entry_id -> what its mask breaks, for masks (entry_id, mask_key, class_pixels) that break any rule."""
    if not constraints:
        return {}
    rules = orjson.dumps([rule.fingerprint() for rule in constraints] + [rule.line for rule in constraints])
    decode = any(rule.needs_pixels for rule in constraints)
    found = {}
    for entry_id, mask_key, class_pixels in masks.select("entry_id", "mask_key", "class_pixels").iter_rows():
        memo = f"qa-constraints/{content_digest(mask_key.encode(), rules, str(ignore_index).encode())}.json"
        broken = store.recall(memo)
        if broken is None:
            mask = decode_mask_png(store.read(mask_key)) if decode else None
            broken = violations(constraints, class_ids, np.asarray(class_pixels, dtype=np.int64), ignore_index, mask)
            store.remember(memo, broken)
        if broken:
            found[entry_id] = tuple(broken)
    return found
