"""What changed between two releases: items added, removed and changed, and the class mix.

A training team pins a release; before moving to the next one they want to know what moved under
them. Items are matched by image_id (the image's content hash), so a renamed file is the same item
and a re-encoded one a new item; an item whose mask or split differs is changed, with what changed.
The class mix compares each class's share of the labelled pixels.
"""

import io
from dataclasses import dataclass

import orjson
import polars as pl

ITEM_KEYS = ("image_id", "original_file_name", "split", "mask_sha256")


@dataclass(frozen=True)
class ReleaseDiff:
    items: pl.DataFrame  # image_id, file_name, change (added/removed/changed), what (split, mask), split_before, split_after
    classes: pl.DataFrame  # class, share_before, share_after, change (after - before)

    def counts(self) -> dict[str, int]:
        found = dict(self.items.group_by("change").len().iter_rows())
        return {change: found.get(change, 0) for change in ("added", "removed", "changed")}


def diff_releases(before: pl.DataFrame, after: pl.DataFrame, pixels_before: dict[str, int],
                  pixels_after: dict[str, int]) -> ReleaseDiff:
    """Diff two manifests (image_id, original_file_name, split, mask_sha256) and their labelled pixels per
    class name; an item is named by its file name in the newer release, else in the older one."""
    old = before.select(ITEM_KEYS).rename({"original_file_name": "name_before", "split": "split_before",
                                           "mask_sha256": "mask_before"})
    new = after.select(ITEM_KEYS).rename({"original_file_name": "name_after", "split": "split_after",
                                          "mask_sha256": "mask_after"})
    joined = old.join(new, on="image_id", how="full", coalesce=True)
    items = joined.with_columns(
        pl.when(pl.col("split_before").is_null()).then(pl.lit("added"))
        .when(pl.col("split_after").is_null()).then(pl.lit("removed"))
        .when((pl.col("split_before") != pl.col("split_after")) | (pl.col("mask_before") != pl.col("mask_after")))
        .then(pl.lit("changed")).alias("change"),
        pl.concat_str(
            pl.when(pl.col("split_before") != pl.col("split_after")).then(pl.lit("split")),
            pl.when(pl.col("mask_before") != pl.col("mask_after")).then(pl.lit("mask")),
            separator=", ", ignore_nulls=True).alias("what"),
    ).filter(pl.col("change").is_not_null()).with_columns(
        pl.when(pl.col("change") == "changed").then(pl.col("what")).alias("what"),
        pl.coalesce("name_after", "name_before").alias("file_name"),
    ).select("image_id", "file_name", "change", "what", "split_before", "split_after").sort("change", "image_id")
    total_before, total_after = sum(pixels_before.values()) or 1, sum(pixels_after.values()) or 1
    names = sorted(set(pixels_before) | set(pixels_after))
    classes = pl.DataFrame({
        "class": names,
        "share_before": [pixels_before.get(n, 0) / total_before for n in names],
        "share_after": [pixels_after.get(n, 0) / total_after for n in names],
    }, schema={"class": pl.String, "share_before": pl.Float64, "share_after": pl.Float64}).with_columns(
        (pl.col("share_after") - pl.col("share_before")).alias("change"))
    return ReleaseDiff(items, classes)


def class_pixel_totals(manifest: pl.DataFrame) -> dict[str, int]:
    """Labelled pixels per class name over a manifest (its class_pixels column: JSON per image)."""
    totals: dict[str, int] = {}
    for text in manifest["class_pixels"].to_list():
        for name, pixels in orjson.loads(text).items():
            totals[name] = totals.get(name, 0) + int(pixels)
    return totals


def diff_against(previous: pl.DataFrame | None, manifest: pl.DataFrame) -> ReleaseDiff:
    """The diff to the previous release's manifest; against none, every item is added."""
    before = previous if previous is not None else manifest.clear()
    return diff_releases(before, manifest, class_pixel_totals(before), class_pixel_totals(manifest))


def diff_files(diff: ReleaseDiff, previous_version: str | None) -> dict[str, bytes]:
    """What is stored with the release: diff.json (counts and class mix) and diff.parquet (items)."""
    items = io.BytesIO()
    diff.items.write_parquet(items)
    summary = {"previous_version": previous_version, "counts": diff.counts(), "classes": diff.classes.to_dicts()}
    return {"diff.json": orjson.dumps(summary, option=orjson.OPT_INDENT_2), "diff.parquet": items.getvalue()}
