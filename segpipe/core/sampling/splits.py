"""Splitting selected units into train/val/test: iterative stratification over groups.

Sechidis et al.'s iterative stratification (2011), the usual answer for multi-label data, run
over units instead of images and over three kinds of label at once: each strata value, and each
class counted both in images and in pixels. In order:
1. previous: a unit holding images an earlier build with the same spec assigned keeps their split
   (the most common one, should a near copy now join two units of different splits);
2. floors: the classes few units hold are placed all at once, exactly (floors); for
   the others, rarest first, each split short of its floor of images with the class gets the
   smallest unassigned unit holding it, in turns, while such units remain; a split still short
   then takes a floor-placed unit another split can spare without falling below a floor. A
   class's floor is min_images, or, for a class in fewer than min_images images per split, the
   images per split it has (none below one per split): a floor no split can be denied, so
   floors never heap a tiny export's few images into one split and leave the others, train
   among them, empty;
3. the rest: the label with the fewest unassigned images first (rare labels have the fewest ways
   to be balanced), each of its units to the split whose share of the unit's labels is least
   filled (strata values, class images and class pixels, each as a fraction of what the split
   should get); ties go to the split furthest below its size, then the first.
A split with room for less than half the unit is passed over while another has room, so the
split sizes hold too;
4. sizes: while moving a unit (not one an earlier build placed) from the fullest split to the
   emptiest brings both nearer their sizes without breaking a floor, it is moved.
"""

import numpy as np

from segpipe.core.sampling.floors import RARE_HOLDERS, floor_placement
from segpipe.core.sampling.units import SamplingUnits

UNASSIGNED = -1


def assign_splits(units: SamplingUnits, selected: np.ndarray, ratios: np.ndarray, previous: np.ndarray,
                  min_images: int) -> np.ndarray:
    """Per unit, the index of its split in `ratios`, or UNASSIGNED for unselected units.

    previous: per unit, the split index an earlier build gave it, or UNASSIGNED."""
    split_of = np.full(len(units), UNASSIGNED, dtype=np.int64)
    active = np.flatnonzero(ratios > 0)
    labels = np.hstack([units.strata_counts, units.class_images]).astype(np.float64)
    pixels = units.class_pixels.astype(np.float64)
    strata = units.strata_counts.shape[1]
    chosen = np.flatnonzero(selected)
    label_total, pixel_total = labels[chosen].sum(axis=0), pixels[chosen].sum(axis=0)
    image_total = float(units.size[chosen].sum())
    have_labels = np.zeros((len(ratios), labels.shape[1]))
    have_pixels = np.zeros((len(ratios), pixels.shape[1]))
    have_images = np.zeros(len(ratios))
    floor = np.minimum(min_images, label_total[strata:].astype(np.int64) // max(1, active.size))

    def place(u: int, split: int) -> None:
        split_of[u] = split
        have_labels[split] += labels[u]
        have_pixels[split] += pixels[u]
        have_images[split] += units.size[u]

    for u in chosen[previous[chosen] != UNASSIGNED]:
        place(int(u), int(previous[u]))
    by_size = chosen[np.lexsort((units.rank[chosen], units.size[chosen]))]
    if min_images:
        holder_units = (units.class_images[chosen] > 0).sum(axis=0)
        rare = np.flatnonzero((holder_units > 0) & (holder_units <= RARE_HOLDERS))
        free = chosen[split_of[chosen] == UNASSIGNED]
        candidates = free[(units.class_images[np.ix_(free, rare)] > 0).any(axis=1)] if rare.size else free[:0]
        need = np.maximum(0, floor[rare] - have_labels[np.ix_(active, strata + rare)])
        placement = floor_placement(units.class_images[np.ix_(candidates, rare)], units.size[candidates], need)
        for u, slot in zip(candidates.tolist(), placement.tolist(), strict=True):
            if slot >= 0:
                place(u, int(active[slot]))
        for c in np.argsort(label_total[strata:], kind="stable"):
            holders = [int(u) for u in by_size if units.class_images[u, c] > 0]
            while True:
                short = [s for s in active if have_labels[s, strata + c] < floor[c]]
                free = [u for u in holders if split_of[u] == UNASSIGNED]
                if not short or not free:
                    break
                place(free[0], min(short, key=lambda s: (have_labels[s, strata + c], -ratios[s])))
        movable = [int(u) for u in by_size if split_of[u] != UNASSIGNED and previous[u] == UNASSIGNED]
        for c in np.argsort(label_total[strata:], kind="stable"):
            for short in active:
                while have_labels[short, strata + c] < floor[c]:
                    donor = _spare_holder(movable, c, short, split_of, have_labels, labels, strata, floor)
                    if donor is None:
                        break
                    have_labels[split_of[donor]] -= labels[donor]
                    have_pixels[split_of[donor]] -= pixels[donor]
                    have_images[split_of[donor]] -= units.size[donor]
                    place(donor, int(short))

    def best_split(u: int) -> int:
        """The split whose share of the unit's labels is least filled, each as a fraction of what
        the split should get: every split starts at 1, so the small ones are served from the start."""
        wanted_labels = np.maximum(ratios[active, None] * label_total, 1e-9)
        score = ((wanted_labels - have_labels[active]) / wanted_labels * (labels[u] > 0)).sum(axis=1)
        wanted_pixels = np.maximum(ratios[active, None] * pixel_total, 1e-9)
        score = score + ((wanted_pixels - have_pixels[active]) / wanted_pixels * (pixels[u] > 0)).sum(axis=1)
        room = ratios[active] * image_total - have_images[active]
        allowed = room >= units.size[u] / 2  # at least half of the unit still fits
        candidates = np.flatnonzero(allowed) if allowed.any() else np.arange(len(active))
        best = candidates[np.lexsort((candidates, -room[candidates], -score[candidates]))[0]]
        return int(active[best])

    remaining = labels[chosen[split_of[chosen] == UNASSIGNED]].sum(axis=0)
    ordered = chosen[np.argsort(units.rank[chosen])]
    while True:
        open_labels = np.flatnonzero(remaining > 0)
        if not open_labels.size:
            break
        label = int(open_labels[np.argmin(remaining[open_labels])])
        for u in ordered:
            if split_of[u] == UNASSIGNED and labels[u, label] > 0:
                place(int(u), best_split(int(u)))
                remaining -= labels[u]
    for u in ordered:  # units with no label at all (no strata, no class): only their size counts
        if split_of[u] == UNASSIGNED:
            room = ratios[active] * image_total - have_images[active]
            place(int(u), int(active[np.lexsort((np.arange(len(active)), -room))[0]]))
    movable = ordered[previous[ordered] == UNASSIGNED]
    while (u_split := _size_repair(movable, split_of, units.size, have_images, have_labels[:, strata:],
                                   labels[:, strata:], ratios * image_total, active, floor)) is not None:
        u, split = u_split
        have_labels[split_of[u]] -= labels[u]
        have_pixels[split_of[u]] -= pixels[u]
        have_images[split_of[u]] -= units.size[u]
        place(u, split)
    return split_of


def _size_repair(movable: np.ndarray, split_of: np.ndarray, size: np.ndarray, have_images: np.ndarray,
                 have_classes: np.ndarray, classes: np.ndarray, wanted: np.ndarray, active: np.ndarray,
                 floor: np.ndarray) -> tuple[int, int] | None:
    """A unit to move from the fullest split (over its share) to the emptiest, and where to: the one
    that brings the two nearest their sizes, if any does, without taking the giver below a class
    floor it meets. Placing by labels, whole groups at a time, can leave a split a whole group
    short (58 of 90 images where 63 are wanted); each move strictly shrinks the two gaps' sum."""
    excess = have_images[active] - wanted[active]
    over, under = int(active[np.argmax(excess)]), int(active[np.argmin(excess)])
    gap_over, gap_under = float(excess.max()), float(-excess.min())
    worst = max(gap_over, gap_under)
    best, best_worst = None, worst - 1e-9
    for u in movable.tolist():
        if split_of[u] != over:
            continue
        moved = float(size[u])
        after_worst = max(abs(gap_over - moved), abs(gap_under - moved))
        after = have_classes[over] - classes[u]
        breaks_floor = ((after < floor) & (have_classes[over] >= floor)).any()
        if after_worst < best_worst and not breaks_floor:
            best, best_worst = u, after_worst
    return None if best is None else (best, under)


def _spare_holder(movable: list[int], c: int, short: int, split_of: np.ndarray, have_labels: np.ndarray,
                  labels: np.ndarray, strata: int, floor: np.ndarray) -> int | None:
    """A floor-placed unit holding class c that another split can give up without itself falling
    below a floor it meets (smallest first): placing floors one class at a time can use up the
    holders one split needs, and moving a spare one repairs that."""
    for u in movable:
        giver = split_of[u]
        if giver == short or labels[u, strata + c] == 0:
            continue
        after = have_labels[giver, strata:] - labels[u, strata:]
        if (after[c] >= floor[c]) and not ((after < floor) & (have_labels[giver, strata:] >= floor)).any():
            return u
    return None
