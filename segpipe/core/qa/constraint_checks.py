"""A mask judged by the taxonomy's class-combination rules (taxonomy.class_constraints).

A region is enclosed when all its outside 4-neighbours are the second class and it does not reach
the image border. Area shares come from class_pixels; the other rules are read off the mask's
regions (mask_regions), which mask_structure computes once per mask with the fragment rule.
"""

import numpy as np

from segpipe.core.qa.mask_regions import MaskRegions
from segpipe.core.taxonomy.class_constraints import ClassConstraint


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
