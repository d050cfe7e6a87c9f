"""Instance areas far from their class's usual size, in the spirit of Datumaro's FarFromLabelMean.

A car polygon covering half the frame, or one of four pixels, is usually a stray drag or a label
swap (a truck labelled car). Areas are taken as annotated (the shoelace area of each ring), so the
finding names the shape an annotator can fix. Object sizes are heavy-tailed (near and far cars
differ a hundredfold), so the statistic is on log area: a shape is flagged when its log area lies
more than `sigma` standard deviations from its class's mean. Only classes that number instances
(has_instances) are judged, crowds are left out, and a class needs `min_instances` shapes before
its mean means anything.
"""

import numpy as np
import polars as pl

from segpipe.core.qa.polygon_checks import FINDINGS_SCHEMA
from segpipe.core.taxonomy.model import Taxonomy

INSTANCE_AREA_OUTLIER = "instance_area_typical"
MIN_INSTANCES = 10  # fewer shapes of a class give no usable mean size


def instance_area_findings(shapes: pl.DataFrame, taxonomy: Taxonomy, sigma: float,
                           min_instances: int = MIN_INSTANCES) -> pl.DataFrame:
    """One finding per shape whose area is an outlier for its class (shapes: MappedShapeRecord rows)."""
    counted = {c.id: c.name for c in taxonomy.classes if c.has_instances}
    drawn = shapes.filter(
        pl.col("kind").is_in(["polygon", "box"]) & (pl.col("mapping") == "mapped") & ~pl.col("is_crowd")
        & pl.col("class_id").is_in(list(counted))
    ).select("entry_id", "shape_index", "raw_label", "class_id", "rings")
    if drawn.is_empty():
        return pl.DataFrame(schema=FINDINGS_SCHEMA)
    areas = drawn.with_columns(pl.Series("area", shape_areas(drawn["rings"]))).filter(pl.col("area") > 0)
    judged = areas.with_columns(pl.col("area").log().alias("log_area")).with_columns(
        pl.col("log_area").mean().over("class_id").alias("mean"), pl.col("log_area").std().over("class_id").alias("std"),
        pl.len().over("class_id").alias("instances"),
    ).filter((pl.col("instances") >= min_instances) & (pl.col("std") > 0))
    outliers = judged.filter(((pl.col("log_area") - pl.col("mean")).abs() / pl.col("std")) > sigma).sort("entry_id", "shape_index")
    rows = []
    for entry_id, shape_index, label, class_id, area, log_area, mean, std in outliers.select(
            "entry_id", "shape_index", "raw_label", "class_id", "area", "log_area", "mean", "std").iter_rows():
        deviations = (log_area - mean) / std
        rows.append({"entry_id": entry_id, "check_id": INSTANCE_AREA_OUTLIER, "shape_index": shape_index, "reason": (
            f"shape #{shape_index} ({label!r}) covers {area:,.0f} px, {abs(deviations):.1f} σ "
            f"{'above' if deviations > 0 else 'below'} the typical {counted[class_id]} ({np.exp(mean):,.0f} px)")})
    return pl.DataFrame(rows, schema=FINDINGS_SCHEMA)


def shape_areas(rings: pl.Series) -> np.ndarray:
    """Area of each shape: the sum of its rings' shoelace areas (rings: lists of flat x,y lists)."""
    per_shape = rings.list.len().to_numpy().astype(np.int64)
    flat = rings.explode()  # one element per ring (a shape without rings has none)
    points = flat.list.len().to_numpy().astype(np.int64) // 2
    coords = flat.explode().to_numpy().astype(np.float64).reshape(-1, 2)
    ring_areas = np.zeros(points.size)
    drawn = points >= 3  # fewer points enclose nothing
    if drawn.any():
        starts = np.concatenate(([0], np.cumsum(points)[:-1]))[points > 0]
        following = np.arange(coords.shape[0]) + 1  # each vertex's successor, the last wrapping to the first
        following[np.append(starts[1:], coords.shape[0]) - 1] = starts
        x, y = coords[:, 0], coords[:, 1]
        ring_areas[points > 0] = np.abs(np.add.reduceat(x * y[following] - x[following] * y, starts)) / 2
        ring_areas[~drawn] = 0.0
    return np.bincount(np.repeat(np.arange(per_shape.size), per_shape), weights=ring_areas, minlength=per_shape.size)
