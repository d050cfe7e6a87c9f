"""Instance areas far from their class's usual size, in the spirit of Datumaro's FarFromLabelMean.

A car polygon covering half the frame, or one of four pixels, is usually a stray drag or a label
swap (a truck labelled car). Areas are taken as annotated (the shoelace area of each ring), so the
finding names the shape an annotator can fix. Object sizes are heavy-tailed (near and far cars
differ a hundredfold), so the statistic is on log area: a shape is flagged when its log area lies
more than `sigma` standard deviations from its class's mean. Only classes that number instances
(has_instances) are judged, crowds are left out, and a class needs `min_instances` shapes before
its mean means anything.
"""

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from segpipe.core.qa.polygon_checks import FINDINGS_SCHEMA
from segpipe.core.taxonomy.model import Taxonomy

INSTANCE_AREA_OUTLIER = "instance_area_typical"
MIN_INSTANCES = 10  # fewer shapes of a class give no usable mean size


AREA_SCHEMA = {"entry_id": pl.String, "shape_index": pl.Int64, "raw_label": pl.String, "class_id": pl.Int64,
               "area": pl.Float64}


@dataclass(frozen=True)
class ClassAreas:
    """Per class, the count, mean and sum of squared deviations of log area: what the outlier test
    needs, combined batch by batch (Chan et al.'s update), so no batch's shapes wait in memory."""

    count: dict[int, int] = field(default_factory=dict)
    mean: dict[int, float] = field(default_factory=dict)
    m2: dict[int, float] = field(default_factory=dict)

    @classmethod
    def of(cls, areas: pl.DataFrame) -> "ClassAreas":
        """The statistics of one table of drawn_shape_areas."""
        stats = areas.with_columns(pl.col("area").log().alias("log_area")).group_by("class_id").agg(
            pl.len().alias("n"), pl.col("log_area").mean().alias("mean"),
            ((pl.col("log_area") - pl.col("log_area").mean()) ** 2).sum().alias("m2"))
        return cls(*(dict(zip(stats["class_id"].to_list(), stats[name].to_list())) for name in ("n", "mean", "m2")))

    def rows(self) -> list[list]:
        """[class_id, count, mean, m2] per class, as JSON holds them (floats round-trip exactly)."""
        return [[class_id, self.count[class_id], self.mean[class_id], self.m2[class_id]] for class_id in sorted(self.count)]

    @classmethod
    def of_rows(cls, rows: list[list]) -> "ClassAreas":
        return cls({row[0]: row[1] for row in rows}, {row[0]: row[2] for row in rows}, {row[0]: row[3] for row in rows})

    def combined(self, other: "ClassAreas") -> "ClassAreas":
        count, mean, m2 = dict(self.count), dict(self.mean), dict(self.m2)
        for class_id, n in other.count.items():
            if class_id not in count:
                count[class_id], mean[class_id], m2[class_id] = n, other.mean[class_id], other.m2[class_id]
                continue
            total = count[class_id] + n
            delta = other.mean[class_id] - mean[class_id]
            mean[class_id] += delta * n / total
            m2[class_id] += other.m2[class_id] + delta**2 * count[class_id] * n / total
            count[class_id] = total
        return ClassAreas(count, mean, m2)

    def table(self) -> pl.DataFrame:
        """class_id, instances, mean and (sample) std of log area."""
        ids = sorted(self.count)
        return pl.DataFrame({
            "class_id": ids, "instances": [self.count[i] for i in ids], "mean": [self.mean[i] for i in ids],
            "std": [float(np.sqrt(self.m2[i] / (self.count[i] - 1))) if self.count[i] > 1 else None for i in ids],
        }, schema={"class_id": pl.Int64, "instances": pl.Int64, "mean": pl.Float64, "std": pl.Float64})


def instance_area_findings(shapes: pl.DataFrame, taxonomy: Taxonomy, sigma: float,
                           min_instances: int = MIN_INSTANCES) -> pl.DataFrame:
    """One finding per shape whose area is an outlier for its class (shapes: MappedShapeRecord rows)."""
    areas = drawn_shape_areas(shapes, taxonomy)
    return area_outliers(areas, ClassAreas.of(areas), taxonomy, sigma, min_instances)


def drawn_shape_areas(shapes: pl.DataFrame, taxonomy: Taxonomy) -> pl.DataFrame:
    """The judged shapes (polygons and boxes of a class that numbers instances, mapped, not crowds,
    of some area) with their area: AREA_SCHEMA rows."""
    counted = [c.id for c in taxonomy.classes if c.has_instances]
    drawn = shapes.filter(
        pl.col("kind").is_in(["polygon", "box"]) & (pl.col("mapping") == "mapped") & ~pl.col("is_crowd")
        & pl.col("class_id").is_in(counted)
    ).select("entry_id", "shape_index", "raw_label", "class_id", "rings")
    if drawn.is_empty():
        return pl.DataFrame(schema=AREA_SCHEMA)
    areas = drawn.with_columns(pl.Series("area", shape_areas(drawn["rings"]))).filter(pl.col("area") > 0)
    return areas.drop("rings").cast(AREA_SCHEMA)


def area_outliers(areas: pl.DataFrame, stats: ClassAreas, taxonomy: Taxonomy, sigma: float,
                  min_instances: int = MIN_INSTANCES) -> pl.DataFrame:
    """One finding per shape of `areas` (drawn_shape_areas) whose log area lies more than `sigma`
    standard deviations from its class's mean in `stats` (of these areas, or of every batch's)."""
    if areas.is_empty():
        return pl.DataFrame(schema=FINDINGS_SCHEMA)
    counted = {c.id: c.name for c in taxonomy.classes if c.has_instances}
    judged = areas.with_columns(pl.col("area").log().alias("log_area")).join(stats.table(), on="class_id").filter(
        (pl.col("instances") >= min_instances) & (pl.col("std") > 0))
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
