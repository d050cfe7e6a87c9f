"""`segpipe gc`'s collection of masks no table names and of their memos, on a local store."""

import datetime as dt
from pathlib import Path

import fsspec
import polars as pl
import pytest

from segpipe.store import keys
from segpipe.store.superseded_masks import delete_superseded_masks

HOUR = dt.timedelta(hours=1)
CURRENT, OLD = keys.class_mask("b1", "b1-e-1", "c0ffee"), keys.class_mask("b1", "b1-e-1", "01d")
CURRENT_INSTANCES, OLD_INSTANCES = keys.instance_mask("b1", "b1-e-1", "1a"), keys.instance_mask("b1", "b1-e-1", "0b")
FUSED = keys.fused_mask("img", "f00")  # named by no table, but by a consensus memo a build may recall


def memos(mask: str) -> list[str]:
    return [keys.coco_annotations_memo(mask), keys.coco_shapes_memo(mask, "5a"), keys.yolo_outlines_memo(mask, 255),
            keys.yolo_label_memo(mask, "d1")]


def store(root: Path) -> tuple[fsspec.AbstractFileSystem, set[str], set[str]]:
    """A store whose tables name CURRENT, CURRENT_INSTANCES and a fused mask of today; the keys that
    must stay and those no table names."""
    (root / keys.TABLES_DIR / "annotation_masks").mkdir(parents=True)
    pl.DataFrame({"entry_id": ["b1-e-1", "b1-e-2"], "mask_key": [CURRENT, None],
                  "instance_mask_key": [CURRENT_INSTANCES, None], "class_pixels": [[1], [2]]}).write_parquet(
        root / keys.TABLES_DIR / "annotation_masks" / "b1.parquet")
    pl.DataFrame({"image_id": ["img"], "mask_key": [keys.fused_mask("img", "today")], "split_key": [7]}).write_parquet(
        root / keys.TABLES_DIR / "consensus_masks.parquet")
    kept = {CURRENT, CURRENT_INSTANCES, *memos(CURRENT), FUSED, keys.fused_mask("img", "today"),
            keys.label_mask("b1", "b1-e-1", "aa"), keys.image("img", "", ".png"), keys.coco_fragment("fr")}
    stale = {OLD, OLD_INSTANCES, *memos(OLD), *memos(FUSED)}  # a fused mask's memos are made again when wanted
    for key in kept | stale:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(b"x" * 100)
    return fsspec.filesystem("file"), kept, stale


def stored(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
            and not p.relative_to(root).as_posix().startswith(keys.TABLES_DIR)}


def test_masks_no_table_names_go_with_their_memos_once_past_the_grace_period(tmp_path):
    fs, kept, stale = store(tmp_path)
    later = dt.datetime.now(dt.UTC) + 2 * HOUR

    counted = delete_superseded_masks(fs, str(tmp_path), HOUR, now=later, dry_run=True)
    assert (counted.tables, counted.files, counted.bytes, counted.spared) == (2, len(stale), 100 * len(stale), 0)
    assert stored(tmp_path) == kept | stale

    young = delete_superseded_masks(fs, str(tmp_path), HOUR)  # all written just now: none past the grace period
    assert (young.files, young.spared) == (0, len(stale)) and stored(tmp_path) == kept | stale

    assert delete_superseded_masks(fs, str(tmp_path), HOUR, now=later) == counted
    assert stored(tmp_path) == kept
    assert delete_superseded_masks(fs, str(tmp_path), HOUR, now=later).files == 0


def test_a_store_without_tables_keeps_every_mask(tmp_path):
    fs, kept, stale = store(tmp_path)
    fs.rm(str(tmp_path / keys.TABLES_DIR), recursive=True)
    done = delete_superseded_masks(fs, str(tmp_path), HOUR, now=dt.datetime.now(dt.UTC) + 2 * HOUR)
    assert (done.tables, done.files) == (0, 0) and stored(tmp_path) == kept | stale


@pytest.mark.parametrize("mask", [CURRENT, keys.class_mask("night-batch", "a-b-c", "9f"), FUSED])
def test_each_memo_names_the_mask_it_was_made_of(mask):
    assert [keys.mask_of_memo(memo) for memo in memos(mask)] == [mask] * 4
