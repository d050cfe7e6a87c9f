"""Polygon validity, judged on the outlines as annotated, before rasterization hides the problem.

A self-intersecting outline (a bow tie, where an annotator dragged a vertex across an edge) paints
by the even-odd rule as two pieces, not the object it meant; a ring of fewer than three distinct
points or of no area paints a line or nothing; a vertex far outside the frame is a stray click.
Rings are built and tested with shapely (GEOS), vectorized over the whole table. Each finding
names the entry, the shape's position in its file and its label.
"""

import numpy as np
import polars as pl
import shapely

SELF_INTERSECTION = "polygon_self_intersection"
TOO_FEW_POINTS = "polygon_too_few_points"
ZERO_AREA = "polygon_zero_area"
OUTSIDE_IMAGE = "vertices_outside_image"
FINDINGS_SCHEMA = {"entry_id": pl.String, "check_id": pl.String, "shape_index": pl.Int64, "reason": pl.String}


def polygon_findings(shapes: pl.DataFrame, frames: pl.DataFrame, tolerance_px: float) -> pl.DataFrame:
    """One row per problem of a polygon ring (shapes: ShapeRecord columns; frames: entry_id, width,
    height). A vertex counts as outside when it lies more than tolerance_px beyond the image edge."""
    rings = (
        shapes.filter(pl.col("kind") == "polygon")
        .select("entry_id", "shape_index", "raw_label", "rings")
        .explode("rings")
        .drop_nulls("rings")
        .join(frames.select("entry_id", "width", "height"), on="entry_id", how="left")
    )
    if rings.is_empty():
        return pl.DataFrame(schema=FINDINGS_SCHEMA)
    points = rings["rings"].list.len().to_numpy().astype(np.int64) // 2
    coords = rings["rings"].explode().to_numpy().astype(np.float64).reshape(-1, 2)
    ring_of_point = np.repeat(np.arange(rings.height), points)
    distinct = _distinct_points(ring_of_point, coords, rings.height)
    problems: list[tuple[int, str, str]] = []
    for ring in np.flatnonzero(distinct < 3):
        problems.append((ring, TOO_FEW_POINTS, f"has {distinct[ring]} distinct points"))
    drawable = distinct >= 3
    selected = drawable[ring_of_point]
    linear = shapely.linearrings(coords[selected], indices=np.searchsorted(
        np.flatnonzero(drawable), ring_of_point[selected]))
    starts = np.concatenate(([0], np.cumsum(points)[:-1]))
    flat = _collinear(coords, starts, points)
    ring_ids, simple = np.flatnonzero(drawable), shapely.is_simple(linear)
    # GEOS calls a ring folded onto one line not simple; it is the no-area case, not a crossing.
    for ring in ring_ids[~simple & ~flat[ring_ids]]:
        problems.append((ring, SELF_INTERSECTION, "crosses itself"))
    for ring in np.flatnonzero(drawable & flat):
        problems.append((ring, ZERO_AREA, "encloses no area (its points lie on one line)"))
    low, high = np.minimum.reduceat(coords, starts, axis=0), np.maximum.reduceat(coords, starts, axis=0)
    width, height = rings["width"].to_numpy(), rings["height"].to_numpy()
    beyond = np.maximum.reduce([-low[:, 0], -low[:, 1], high[:, 0] - width, high[:, 1] - height]) - tolerance_px
    for ring in np.flatnonzero(beyond > 0):
        problems.append((ring, OUTSIDE_IMAGE, f"has a vertex {beyond[ring] + tolerance_px:.1f} px outside the image "
                                              f"(tolerance {tolerance_px:g} px)"))
    entry, shape_index, label = rings["entry_id"], rings["shape_index"], rings["raw_label"]
    rows = [{"entry_id": entry[int(ring)], "check_id": check, "shape_index": int(shape_index[int(ring)]),
             "reason": f"shape #{shape_index[int(ring)]} ({label[int(ring)]!r}) {what}"}
            for ring, check, what in sorted(problems)]
    return pl.DataFrame(rows, schema=FINDINGS_SCHEMA)


def _distinct_points(ring_of_point: np.ndarray, coords: np.ndarray, ring_count: int) -> np.ndarray:
    """Distinct points per ring (as np.unique's rows of (ring, x, y) count them): points sorted by
    ring, x and y, a point counted where it differs from the one before. A third of the time of
    np.unique(axis=0), which sorts the rows as records."""
    order = np.lexsort((coords[:, 1], coords[:, 0], ring_of_point))
    ring, x, y = ring_of_point[order], coords[order, 0], coords[order, 1]
    first = np.r_[True, (ring[1:] != ring[:-1]) | (x[1:] != x[:-1]) | (y[1:] != y[:-1])]
    return np.bincount(ring[first], minlength=ring_count)


def _collinear(coords: np.ndarray, starts: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Rings whose points lie on one line: their scatter matrix is singular."""
    centred = coords - (np.add.reduceat(coords, starts, axis=0) / points[:, None]).repeat(points, axis=0)
    sxx, syy = np.add.reduceat(centred[:, 0] ** 2, starts), np.add.reduceat(centred[:, 1] ** 2, starts)
    sxy = np.add.reduceat(centred[:, 0] * centred[:, 1], starts)
    return sxx * syy - sxy**2 <= 1e-9 * (sxx + syy) ** 2
