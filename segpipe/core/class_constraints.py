"""Class-combination rules declared in the taxonomy: what a plausible mask of this domain looks like.

A street scene's road touches the image bottom; sky never borders road directly; a car does not
cover most of the frame, nor float inside the sky. A mask that breaks such a rule usually holds a
label swap or a runaway polygon that per-pixel checks cannot see. Rules are data in the taxonomy's
`constraints` list:

    constraints:
      - {class: car, max_area_share: 0.6}      # at most this share of the labelled pixels
      - {class: road, touches: bottom}          # when present, reaches that image edge
      - {classes: [sky, road], adjacent: false} # never 4-neighbours
      - {classes: [car, sky], enclosed: false}  # no car region wholly surrounded by sky

A region is enclosed when all its outside 4-neighbours are the second class and it does not reach
the image border. Area shares come from class_pixels; the other rules are read off the mask's
regions (mask_regions), which mask_structure computes once per mask with the fragment rule.
"""

from dataclasses import dataclass

import numpy as np

from segpipe.core.errors import ConfigError
from segpipe.core.mask_regions import MaskRegions

EDGES = ("bottom", "top", "left", "right")
KINDS = ("max_area_share", "touches", "adjacent", "enclosed")
PAIR_KINDS = ("adjacent", "enclosed")  # rules about two classes; they can only forbid


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
    expected = 2 if kind in PAIR_KINDS else 1
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
    if kind == "enclosed" and value is not False:
        raise ConfigError(f"{where}: enclosed can only be false (a forbidden surrounding), got {value!r}")
    if kind in PAIR_KINDS and classes[0] == classes[1]:
        raise ConfigError(f"{where}: `{kind}` takes two different classes, got {list(classes)}")
    return ClassConstraint(kind, classes, value, line)


def _reaches(regions: MaskRegions, edge: str) -> np.ndarray:
    height, width = regions.shape
    x0, y0, x1, y1 = regions.bbox.T
    return {"bottom": y1 == height - 1, "top": y0 == 0, "left": x0 == 0, "right": x1 == width - 1}[edge]


def enclosed_regions(rule: ClassConstraint, class_ids: dict[str, int], regions: MaskRegions) -> np.ndarray:
    """Per region: a region of the rule's first class wholly surrounded by its second."""
    inner, outer = (class_ids[name] for name in rule.classes)
    return (regions.value == inner) & regions.enclosed_by(outer)


def violations(constraints: tuple[ClassConstraint, ...], class_ids: dict[str, int], pixels: np.ndarray,
               ignore_index: int, regions: MaskRegions | None) -> list[str]:
    """What one mask breaks (regions may be None when no constraint needs pixels)."""
    labelled = int(pixels.sum()) - int(pixels[ignore_index])
    found = []
    for rule in constraints:
        ids = [class_ids[name] for name in rule.classes]
        where = f" (taxonomy line {rule.line})" if rule.line else ""
        if rule.kind == "max_area_share":
            share = pixels[ids[0]] / labelled if labelled else 0.0
            if share > rule.value:
                found.append(f"{rule.classes[0]} covers {share:.0%} of the labelled pixels, over {rule.value:.0%}{where}")
        elif not all(pixels[i] for i in ids):
            continue
        elif rule.kind == "touches":
            if not ((regions.value == ids[0]) & _reaches(regions, rule.value)).any():
                found.append(f"{rule.classes[0]} does not touch the image {rule.value}{where}")
        elif rule.kind == "adjacent":
            if (regions.value[regions.neighbour_region] == ids[0])[regions.neighbour_value == ids[1]].any():
                found.append(f"{rule.classes[0]} borders {rule.classes[1]}{where}")
        else:
            inside = np.flatnonzero(enclosed_regions(rule, class_ids, regions))
            if len(inside):
                x0, y0, x1, y1 = regions.bbox[inside[0]].tolist()
                count = f"{len(inside)} regions, the first" if len(inside) > 1 else "1 region"
                found.append(f"{rule.classes[0]} lies inside {rule.classes[1]} ({count} at x {x0}-{x1}, y {y0}-{y1})"
                             f"{where}")
    return found
