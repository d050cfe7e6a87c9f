import polars as pl
import pytest

from segpipe.core.release.diff import diff_releases


def manifest(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    """A manifest of (image_id, split, mask_sha256) rows, each image's file named after its id."""
    return pl.DataFrame(rows, schema=["image_id", "split", "mask_sha256"], orient="row").with_columns(
        pl.format("{}.jpg", "image_id").alias("original_file_name"))


def test_items_are_added_removed_or_changed_with_what_changed_and_the_class_mix_moves():
    before = manifest([("a", "train", "m1"), ("b", "train", "m2"), ("c", "val", "m3"), ("d", "test", "m4")])
    after = manifest([("a", "train", "m1"), ("b", "val", "m2"), ("c", "val", "m9"), ("e", "train", "m5")])
    found = diff_releases(before, after, {"road": 300, "car": 100}, {"road": 200, "car": 100, "person": 100})
    assert found.items.rows() == [
        ("e", "e.jpg", "added", None, None, "train"),
        ("b", "b.jpg", "changed", "split", "train", "val"),
        ("c", "c.jpg", "changed", "mask", "val", "val"),
        ("d", "d.jpg", "removed", None, "test", None),  # named as the older release named it
    ]
    assert found.counts() == {"added": 1, "removed": 1, "changed": 2}
    shares = {row["class"]: row for row in found.classes.iter_rows(named=True)}
    assert shares["road"]["change"] == pytest.approx(0.5 - 0.75)
    assert (shares["person"]["share_before"], shares["person"]["share_after"]) == (0.0, 0.25)


def test_identical_releases_differ_in_nothing():
    same = manifest([("a", "train", "m1")])
    found = diff_releases(same, same, {"road": 1}, {"road": 1})
    assert found.items.is_empty() and found.counts() == {"added": 0, "removed": 0, "changed": 0}
    assert found.classes["change"].to_list() == [0.0]
