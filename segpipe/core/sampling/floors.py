"""Rare-class floors as a small integer program, so they are met whenever the data allows.

Placing floor units one class at a time can use up the holders another class needs in some split
(a unit holds several classes); whether all floors fit at once is an assignment problem, small
for rare classes: one binary x[u, s] per candidate unit and split, each unit in at most one
split, and for each rare class and split, the images holding it plus a shortfall variable at
least the floor. The objective minimizes the shortfall first (weighted above any image count),
then the images the floors take, leaving the most freedom to the stratification that follows.
HiGHS (scipy.optimize.milp) solves it exactly; the problem is only built for the classes few
enough units hold (RARE_HOLDERS), where a greedy pass can fail.
"""

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array

RARE_HOLDERS = 60  # a class held by more units than this meets its floors without help
# HiGHS finds a good placement fast and can take long proving it best: stop within 5 % of the
# fewest images, or after NODE_LIMIT branch-and-bound nodes (a count, not a time, so the result is
# the same on a slow machine).
RELATIVE_GAP = 0.05
NODE_LIMIT = 200


def floor_placement(holds: np.ndarray, sizes: np.ndarray, need: np.ndarray) -> np.ndarray:
    """Per candidate unit, the index of the split its floors want it in, or -1.

    holds: (units, classes) images of each class in each candidate unit; sizes: (units,) images;
    need: (splits, classes) images each split still needs of each class."""
    units, classes = holds.shape
    splits = need.shape[0]
    if not units or not need.any():
        return np.full(units, -1, dtype=np.int64)
    n_x, n_z = units * splits, splits * classes
    cost = np.concatenate([np.tile(sizes.astype(np.float64), splits), np.full(n_z, float(sizes.sum() + 1))])
    rows, cols, values = [], [], []
    for u in range(units):  # each unit in at most one split: rows 0..units-1
        rows += [u] * splits
        cols += [s * units + u for s in range(splits)]
        values += [1.0] * splits
    row = units
    lower = [-np.inf] * units
    upper = [1.0] * units
    for s in range(splits):
        for c in range(classes):
            if need[s, c] <= 0:
                continue
            holders = np.flatnonzero(holds[:, c])
            rows += [row] * (holders.size + 1)
            cols += [s * units + int(u) for u in holders] + [n_x + s * classes + c]
            values += [float(holds[u, c]) for u in holders] + [1.0]
            lower.append(float(need[s, c]))
            upper.append(np.inf)
            row += 1
    matrix = coo_array((values, (rows, cols)), shape=(row, n_x + n_z)).tocsr()
    result = milp(cost, integrality=np.concatenate([np.ones(n_x), np.zeros(n_z)]),
                  bounds=Bounds(np.zeros(n_x + n_z), np.concatenate([np.ones(n_x), np.full(n_z, np.inf)])),
                  constraints=LinearConstraint(matrix, lower, upper), options={"mip_rel_gap": RELATIVE_GAP, "node_limit": NODE_LIMIT})
    placement = np.full(units, -1, dtype=np.int64)
    if result.x is None:
        return placement
    chosen = np.round(result.x[:n_x]).reshape(splits, units) > 0.5
    for s in range(splits):
        placement[chosen[s]] = s
    return placement
