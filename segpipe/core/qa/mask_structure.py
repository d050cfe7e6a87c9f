"""What a mask's structure breaks: fragments it holds and the taxonomy's class-combination rules.

Both need the mask's connected regions, so each mask is decoded once and its regions found once
(mask_regions) for the fragment rule and every constraint that needs pixels. The findings are
remembered under a digest of the mask's content key, the rules and the fragment size, so a rerun
decodes only new masks, or all of them after an edit of the rules.

A fragment is what rasterization leaves of a class: the sliver of an occluded polygon showing
between the shapes drawn over it, a polygon too small to matter. It is a class region smaller than
qa.min_fragment_px; the ignore index is never a fragment.
"""

from dataclasses import dataclass

import numpy as np
import orjson
import polars as pl

from segpipe.core.shared.artefacts import ArtefactStore, content_digest
from segpipe.core.qa.constraint_checks import violations
from segpipe.core.qa.mask_regions import MaskRegions, mask_regions
from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.core.taxonomy.model import Taxonomy
from segpipe.store import keys as store_keys


@dataclass(frozen=True)
class Fragment:
    class_id: int
    pixels: int
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1, inclusive


@dataclass(frozen=True)
class MaskStructure:
    constraint_violations: tuple[str, ...] = ()  # the taxonomy's class-combination rules the mask breaks
    fragments: tuple[Fragment, ...] = ()  # smallest first


def fragment_regions(regions: MaskRegions, min_fragment_px: int, ignore_index: int) -> np.ndarray:
    """Per region: a class region smaller than min_fragment_px."""
    return (regions.pixels < min_fragment_px) & (regions.value != ignore_index)


def fragments(regions: MaskRegions, min_fragment_px: int, ignore_index: int) -> list[Fragment]:
    """The mask's fragments, smallest first, then top to bottom and left to right."""
    chosen = np.flatnonzero(fragment_regions(regions, min_fragment_px, ignore_index))
    order = np.lexsort((regions.bbox[chosen, 0], regions.bbox[chosen, 1], regions.pixels[chosen]))
    return [Fragment(int(regions.value[i]), int(regions.pixels[i]), tuple(regions.bbox[i].tolist()))
            for i in chosen[order]]


def mask_structure(masks: pl.DataFrame, taxonomy: Taxonomy, min_fragment_px: int,
                   store: ArtefactStore) -> dict[str, MaskStructure]:
    """entry_id -> what its mask's structure breaks, for masks (entry_id, mask_key, class_pixels) with
    a finding. A remembered mask is not read."""
    constraints = taxonomy.constraints
    decode = min_fragment_px > 1 or any(rule.needs_pixels for rule in constraints)
    if not decode and not constraints:
        return {}
    class_ids = {c.name: c.id for c in taxonomy.classes}
    rules = orjson.dumps([[rule.fingerprint() for rule in constraints], [rule.line for rule in constraints],
                          taxonomy.ignore_index, min_fragment_px])
    found = {}
    for entry_id, mask_key, class_pixels in masks.select("entry_id", "mask_key", "class_pixels").iter_rows():
        memo = store_keys.mask_structure_memo(content_digest(mask_key.encode(), rules))
        remembered = store.recall(memo)
        if remembered is None:
            regions = mask_regions(decode_mask_png(store.read_png(mask_key))) if decode else None
            pixels = np.asarray(class_pixels, dtype=np.int64)
            remembered = {
                "constraints": violations(constraints, class_ids, pixels, taxonomy.ignore_index, regions),
                "fragments": [] if regions is None else [
                    [f.class_id, f.pixels, *f.bbox] for f in fragments(regions, min_fragment_px, taxonomy.ignore_index)],
            }
            store.remember(memo, remembered)
        if remembered["constraints"] or remembered["fragments"]:
            found[entry_id] = MaskStructure(
                tuple(remembered["constraints"]),
                tuple(Fragment(class_id, pixels, (x0, y0, x1, y1))
                      for class_id, pixels, x0, y0, x1, y1 in remembered["fragments"]))
    return found
