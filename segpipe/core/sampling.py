"""A seeded train/val/test split, stratified by one metadata column, grouped so no group spans splits.

Groups (e.g. a sequence of frames) are the unit of assignment, because near-identical
frames in train and test inflate every metric. Within each stratum, groups are visited
in a seeded order and each goes to the split furthest below its target, counting both the
stratum's deficit and the whole dataset's, so small strata still fill every split overall.
"""

import hashlib

import polars as pl

from segpipe.core.schemas import SplitRecord
from segpipe.core.settings import SamplingSettings

MISSING = "(missing)"


def assign_splits(images: pl.DataFrame, settings: SamplingSettings) -> pl.DataFrame:
    """`images` has image_id plus the stratify and group columns; returns one split per image."""
    frame = images.select(
        "image_id",
        pl.col(settings.group_by).cast(pl.String).fill_null(pl.col("image_id")).alias("group_key"),
        pl.col(settings.stratify_by).cast(pl.String).fill_null(MISSING).alias("stratum"),
    )
    groups = (
        frame.group_by("group_key")
        .agg(pl.len().alias("size"), pl.col("stratum").mode().sort().first().alias("group_stratum"))
        .with_columns(pl.col("group_key").map_elements(lambda k: _seeded_rank(settings.seed, k), return_dtype=pl.String).alias("rank"))
        .sort("group_stratum", "rank")
    )
    assignment: dict[str, str] = {}
    overall = dict.fromkeys(settings.splits, 0)
    for _, stratum_groups in groups.group_by("group_stratum", maintain_order=True):
        assigned = dict.fromkeys(settings.splits, 0)
        for group_key, size in stratum_groups.select("group_key", "size").iter_rows():
            stratum_total, overall_total = sum(assigned.values()) + size, sum(overall.values()) + size

            def deficit(split: str) -> tuple[float, float]:
                share = settings.splits[split]
                return share * stratum_total - assigned[split] + share * overall_total - overall[split], share

            split = max(settings.splits, key=deficit)
            assignment[group_key] = split
            assigned[split] += size
            overall[split] += size
    result = frame.with_columns(pl.col("group_key").replace_strict(assignment, return_dtype=pl.String).alias("split"))
    return SplitRecord.validate(result.select("image_id", "split", "group_key", "stratum").sort("image_id"))


def _seeded_rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\0{key}".encode()).hexdigest()


def split_proportions(splits: pl.DataFrame) -> dict[str, float]:
    counts = dict(splits.group_by("split").len().iter_rows())
    total = sum(counts.values()) or 1
    return {split: counts.get(split, 0) / total for split in ("train", "val", "test")}
