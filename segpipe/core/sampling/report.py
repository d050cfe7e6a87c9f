"""What sampling achieved against what the spec asked: per strata value, per split, per class.

Two tables, shown in the Dagster UI and shipped in the release (sampling/):
- distribution: one row per (dimension, value), shares of images: the target (null where the
  spec sets none), the natural share of all candidates, the selection's, and each split's.
  Dimension "split" holds the split sizes against their ratios. Distances (total variation,
  half the sum of absolute share differences) say per dimension how far the result is off.
- classes: per trainable class and split, images holding it and its share of labelled pixels,
  and whether the rare-class floors hold there.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from segpipe.core.sampling.chart import render_distribution_chart
from segpipe.core.sampling.spec import SPLITS, DistributionSpec
from segpipe.core.sampling.sample import Sample
from segpipe.core.sampling.splits import UNASSIGNED
from segpipe.core.shared.schemas import DistributionRecord, polars_schema


@dataclass(frozen=True)
class DistributionReport:
    distribution: pl.DataFrame  # DistributionRecord
    classes: pl.DataFrame  # class_id, name, then images_<split>, pixel_share_<split>, floor_met_<split>
    distances: pl.DataFrame  # dimension, achieved_distance (to target), worst_split, worst_split_distance, within_tolerance


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros_like(counts, dtype=np.float64)


def distribution_report(sample: Sample, spec: DistributionSpec, class_names: dict[int, str]) -> DistributionReport:
    units, split_of = sample.units, sample.unit_split
    selected = split_of != UNASSIGNED
    in_split = [split_of == s for s in range(len(SPLITS))]
    rows = []
    sizes = np.array([units.size[mask].sum() for mask in in_split], dtype=np.float64)
    for s, split in enumerate(SPLITS):
        rows.append({"dimension": "split", "value": split, "target": spec.splits[split], "natural": None,
                     "achieved": float(_shares(sizes)[s]), **dict.fromkeys(SPLITS, None)})
    for column in dict.fromkeys(c for c, _ in units.strata_labels):
        index = [i for i, (c, _) in enumerate(units.strata_labels) if c == column]
        counts = units.strata_counts[:, index]
        natural, achieved = _shares(counts.sum(axis=0)), _shares(counts[selected].sum(axis=0))
        per_split = [_shares(counts[mask].sum(axis=0)) for mask in in_split]
        for k, i in enumerate(index):
            value = units.strata_labels[i][1]
            rows.append({"dimension": column, "value": value, "target": spec.strata[column].get(value, 0.0),
                         "natural": float(natural[k]), "achieved": float(achieved[k]),
                         **{split: float(per_split[s][k]) for s, split in enumerate(SPLITS)}})
    distribution = DistributionRecord.validate(pl.DataFrame(rows, schema=polars_schema(DistributionRecord)))
    return DistributionReport(distribution, _class_table(sample, spec, class_names, in_split),
                              _distances(distribution, spec.tolerance))


def _class_table(sample: Sample, spec: DistributionSpec, class_names: dict[int, str], in_split: list[np.ndarray]) -> pl.DataFrame:
    units = sample.units
    columns: dict[str, list] = {"class_id": units.class_ids, "name": [class_names.get(c, str(c)) for c in units.class_ids]}
    floors = spec.rare_classes
    for s, split in enumerate(SPLITS):
        images = units.class_images[in_split[s]].sum(axis=0)
        share = _shares(units.class_pixels[in_split[s]].sum(axis=0).astype(np.float64))
        columns[f"images_{split}"] = images.tolist()
        columns[f"pixel_share_{split}"] = share.tolist()
        columns[f"floor_met_{split}"] = ((images >= floors.min_images) & (share >= floors.min_pixel_share)).tolist()
    return pl.DataFrame(columns)


def unmet_floors(classes: pl.DataFrame) -> pl.DataFrame:
    """Classes present in the selection that miss a floor in some split, with their counts there."""
    met = pl.all_horizontal(pl.col(f"floor_met_{split}") for split in SPLITS)
    present = pl.sum_horizontal(pl.col(f"images_{split}") for split in SPLITS) > 0
    return classes.filter(present & ~met)


def _distances(distribution: pl.DataFrame, tolerance: float) -> pl.DataFrame:
    """Per dimension: total variation distance of the selection and of the worst split to the target,
    and whether every share lies within tolerance of its target."""
    rows = []
    for (dimension,), group in distribution.filter(pl.col("target").is_not_null()).group_by("dimension", maintain_order=True):
        target = group["target"].to_numpy()
        achieved = group["achieved"].to_numpy()
        row = {"dimension": dimension, "achieved_distance": float(np.abs(achieved - target).sum() / 2),
               "worst_split": None, "worst_split_distance": None,
               "within_tolerance": bool((np.abs(achieved - target) <= tolerance + 1e-9).all())}
        if dimension != "split":
            by_split = {split: float(np.abs(group[split].to_numpy() - target).sum() / 2) for split in SPLITS}
            worst = max(by_split, key=by_split.get)
            row.update(worst_split=worst, worst_split_distance=by_split[worst])
        rows.append(row)
    return pl.DataFrame(rows, schema={"dimension": pl.String, "achieved_distance": pl.Float64, "worst_split": pl.String,
                                      "worst_split_distance": pl.Float64, "within_tolerance": pl.Boolean})


def report_files(distribution: pl.DataFrame, classes: pl.DataFrame, leaks: pl.DataFrame,
                 class_colours: Mapping[int, Sequence[int]]) -> dict[str, bytes]:
    """The report as the release ships it, under sampling/: the tables as CSV (leakage.csv: the
    near-duplicate pairs in different splits, normally none) and the chart (in the classes' colours)."""
    return {"sampling/distribution.csv": distribution.write_csv().encode(),
            "sampling/classes.csv": classes.write_csv().encode(),
            "sampling/leakage.csv": leaks.write_csv().encode(),
            "sampling/distribution.png": render_distribution_chart(distribution, classes, class_colours)}
