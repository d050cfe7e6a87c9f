"""Which units a release holds when the spec asks for fewer images than passed QA and consensus.

In order, each step counting what the earlier ones took:
1. previous: units a build with the same spec selected stay selected (stable under growth);
2. foundation: foundation_share of the target drawn in the data's natural proportions (each
   joint strata cell gets its share, units in seeded order);
3. rare_class: for each class, rarest first, units holding it until they surely split into
   min_images images per split (whole units cannot be split: see _splittable), each the unit that
   best serves the strata targets per image, then the smallest;
4. targeted: the rest, one unit at a time, the unit that most reduces the distance between the
   selection's strata shares and the spec's targets per image it adds; then targeted units are
   swapped for unselected ones while a swap brings the selection closer.
A unit is taken whole, and only while it fits, so a selection may end a few images short of the
target rather than over it.
"""

import math

import numpy as np

from segpipe.core.sampling.spec import DistributionSpec
from segpipe.core.shared.errors import ConfigError
from segpipe.core.sampling.units import SamplingUnits

SELECTED_BY: tuple[str, ...] = ("all", "previous", "rare_class", "foundation", "targeted")
ALL, PREVIOUS, RARE_CLASS, FOUNDATION, TARGETED = range(len(SELECTED_BY))
UNSELECTED = -1


class InfeasibleSpec(ConfigError):
    """The spec asks for what the data cannot give; the message names each constraint and the offer."""


def infeasibilities(units: SamplingUnits, spec: DistributionSpec) -> list[str]:
    """Every constraint of the spec the data cannot meet within spec.tolerance, as sentences. Fewer
    groups than splits is not one: the groups fill the largest splits (assign_splits), the others
    stay empty, and the split sizes' check warns, so a tiny export still releases."""
    total = int(units.size.sum())
    problems = []
    if spec.target_size is not None and spec.target_size > total:
        problems.append(f"sampling.target_size: {spec.target_size} images asked for, the data offers {total} "
                        "that passed QA and consensus")
    wanted = min(spec.target_size or total, total)
    offered_all = units.strata_counts.sum(axis=0)
    for column, targets in spec.strata.items():
        offered = {value: int(offered_all[i]) for i, (c, value) in enumerate(units.strata_labels) if c == column}
        offer = ", ".join(f"{value} {n}" for value, n in sorted(offered.items()))
        for value in sorted(set(targets) | set(offered)):
            share, have = targets.get(value, 0.0), offered.get(value, 0)
            most, least = min(have, wanted) / wanted, max(0, wanted - (total - have)) / wanted
            place = f"sampling.strata.{column}.{value}"
            if share > 0 and have == 0:
                problems.append(f"{place}: target {share:.0%}, but no image has {column} = {value} (the data offers {offer})")
            elif share > most + spec.tolerance:
                problems.append(f"{place}: target {share:.0%} of {wanted} images needs {math.ceil(share * wanted)}, "
                                f"the data offers {have} ({most:.0%}; all values: {offer})")
            elif share < least - spec.tolerance:
                problems.append(f"{place}: target {share:.0%}, but at least {least:.0%} of {wanted} images have "
                                f"{column} = {value}, because the other values offer only {total - have} "
                                f"(set a smaller target_size, or a larger target)")
    return problems


def strata_targets(units: SamplingUnits, spec: DistributionSpec, size: int) -> np.ndarray:
    """Target image count per strata label (0 for values the spec does not list)."""
    return np.array([spec.strata.get(column, {}).get(value, 0.0) * size for column, value in units.strata_labels])


def select_units(units: SamplingUnits, spec: DistributionSpec, kept: np.ndarray, active_splits: int) -> np.ndarray:
    """Per unit, the SELECTED_BY step that took it, or UNSELECTED (kept: units selected before)."""
    total = int(units.size.sum())
    if spec.target_size is None or spec.target_size >= total:
        return np.full(len(units), ALL, dtype=np.int64)
    wanted = spec.target_size
    choice = np.where(kept, PREVIOUS, UNSELECTED).astype(np.int64)
    taken = int(units.size[kept].sum())
    foundation = round(spec.foundation_share * wanted)
    cells = int(units.cell.max()) + 1
    quota = foundation * np.bincount(units.cell, weights=units.size, minlength=cells) / total
    filled = np.zeros(cells)
    for u in np.argsort(units.rank):
        if choice[u] == UNSELECTED and filled[units.cell[u]] + units.size[u] / 2 <= quota[units.cell[u]] \
                and taken + units.size[u] <= wanted and filled.sum() + units.size[u] <= foundation:
            choice[u], taken = FOUNDATION, taken + int(units.size[u])
            filled[units.cell[u]] += units.size[u]
    target = strata_targets(units, spec, wanted)
    counts = units.strata_counts[choice != UNSELECTED].sum(axis=0).astype(np.float64)
    floor = spec.rare_classes.min_images * active_splits
    for c in np.argsort(units.class_images.sum(axis=0), kind="stable") if floor else ():
        holders = np.flatnonzero(units.class_images[:, c] > 0)
        while not _splittable(units.class_images[holders[choice[holders] != UNSELECTED], c],
                              spec.rare_classes.min_images, active_splits) and taken < wanted:
            free = holders[(choice[holders] == UNSELECTED) & (units.size[holders] <= wanted - taken)]
            if not free.size:
                break
            best = free[np.lexsort((units.rank[free], units.size[free], -_gain(units, free, counts, target)))[0]]
            choice[best], taken = RARE_CLASS, taken + int(units.size[best])
            counts += units.strata_counts[best]
    while taken < wanted:
        free = np.flatnonzero((choice == UNSELECTED) & (units.size <= wanted - taken))
        if not free.size:
            break
        best = free[np.lexsort((units.rank[free], -_gain(units, free, counts, target)))[0]]
        choice[best], taken = TARGETED, taken + int(units.size[best])
        counts += units.strata_counts[best]
    return _improve_by_swaps(units, choice, counts, target, wanted)


def _splittable(held: np.ndarray, min_images: int, splits: int) -> bool:
    """Whether units holding a class this many images each surely split into `splits` parts of at
    least min_images: with min_images * splits units (one each), or with enough images that
    filling the splits one after another, each overshooting by less than the largest unit, works."""
    if held.size >= min_images * splits:
        return True
    largest = int(held.max()) if held.size else 0
    return held.size >= splits and int(held.sum()) >= min_images * splits + (splits - 1) * (largest - 1)


def _gain(units: SamplingUnits, candidates: np.ndarray, counts: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per candidate unit: how much nearer its images bring the strata counts to the targets, per image."""
    after = np.abs(counts + units.strata_counts[candidates] - target).sum(axis=1)
    return (np.abs(counts - target).sum() - after) / units.size[candidates]


MAX_SWAPS = 500


def _improve_by_swaps(units: SamplingUnits, choice: np.ndarray, counts: np.ndarray, target: np.ndarray,
                      wanted: int) -> np.ndarray:
    """Greedy picks overshoot early (a unit is several images); swap a targeted unit for an
    unselected one while that lowers the distance to the targets plus the images short of the
    target size. Each swap: the targeted unit whose leaving helps most (or hurts least), then the
    free unit that fits best in its place."""
    taken = int(units.size[choice != UNSELECTED].sum())
    for _ in range(MAX_SWAPS):
        current = np.abs(counts - target).sum() + (wanted - taken)
        out = np.flatnonzero(choice == TARGETED)
        if not out.size:
            break
        leaving = out[np.lexsort((units.rank[out], np.abs(counts - units.strata_counts[out] - target).sum(axis=1)))[0]]
        rest, room = counts - units.strata_counts[leaving], wanted - taken + int(units.size[leaving])
        free = np.flatnonzero((choice == UNSELECTED) & (units.size <= room))
        if not free.size:
            break
        after = np.abs(rest + units.strata_counts[free] - target).sum(axis=1) + (room - units.size[free])
        best = np.lexsort((units.rank[free], after))[0]
        if after[best] >= current - 1e-9:
            break
        joining = free[best]
        choice[leaving], choice[joining] = UNSELECTED, TARGETED
        counts = rest + units.strata_counts[joining]
        taken += int(units.size[joining]) - int(units.size[leaving])
    return choice
