"""A store planted with masks some tables name and some they do not, and `segpipe gc`'s collection of it,
for any filesystem (local in test_superseded_masks, SeaweedFS in segpipe_tests/io/test_release_parts_s3)."""

import datetime as dt
import io

import fsspec
import polars as pl

from segpipe.store import keys
from segpipe.store.superseded_masks import delete_superseded_masks

HOUR = dt.timedelta(hours=1)
CURRENT, OLD = keys.class_mask("b1", "b1-e-1", "c0ffee"), keys.class_mask("b1", "b1-e-1", "01d")
CURRENT_INSTANCES, OLD_INSTANCES = keys.instance_mask("b1", "b1-e-1", "1a"), keys.instance_mask("b1", "b1-e-1", "0b")
FUSED = keys.fused_mask("img", "f00")  # named by no table, but by a consensus memo a build may recall
THUMBNAIL, OLD_THUMBNAIL = (keys.qa_thumbnail("mask_not_empty", "b1-e-1", digest) for digest in ("7e", "0d"))


def memos(mask: str) -> list[str]:
    return [keys.coco_annotations_memo(mask), keys.coco_shapes_memo(mask, "5a"), keys.yolo_outlines_memo(mask, 255),
            keys.yolo_label_memo(mask, "d1")]


def _parquet(frame: pl.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.write_parquet(out)
    return out.getvalue()


def planted_store(fs: fsspec.AbstractFileSystem, root: str) -> tuple[set[str], set[str]]:
    """A store whose tables name CURRENT, CURRENT_INSTANCES, a fused mask of today and THUMBNAIL; the
    keys that must stay and those no table names."""
    fs.pipe_file(f"{root}/{keys.TABLES_DIR}/annotation_masks/b1.parquet", _parquet(pl.DataFrame({
        "entry_id": ["b1-e-1", "b1-e-2"], "mask_key": [CURRENT, None], "instance_mask_key": [CURRENT_INSTANCES, None],
        "class_pixels": [[1], [2]]})))
    fs.pipe_file(f"{root}/{keys.TABLES_DIR}/consensus_masks.parquet", _parquet(pl.DataFrame({
        "image_id": ["img"], "mask_key": [keys.fused_mask("img", "today")], "split_key": [7]})))
    fs.pipe_file(f"{root}/{keys.TABLES_DIR}/qa_report.parquet", _parquet(pl.DataFrame({
        "entry_id": ["b1-e-1", "b1-e-1"], "check_id": ["mask_not_empty", "labels_mapped"],
        "thumbnail_key": [THUMBNAIL, None]})))
    kept = {CURRENT, CURRENT_INSTANCES, *memos(CURRENT), FUSED, keys.fused_mask("img", "today"),
            keys.label_mask("b1", "b1-e-1", "aa"), keys.image("img", "", ".png"), keys.coco_fragment("fr"), THUMBNAIL}
    # a fused mask's memos are made again when wanted, and so is a QA thumbnail
    stale = {OLD, OLD_INSTANCES, *memos(OLD), *memos(FUSED), OLD_THUMBNAIL}
    for key in kept | stale:
        fs.pipe_file(f"{root}/{key}", b"x" * 100)
    return kept, stale


def stored(fs: fsspec.AbstractFileSystem, root: str) -> set[str]:
    """Every key under `root` but the tables'."""
    fs.invalidate_cache()
    prefix = fs._strip_protocol(root).rstrip("/") + "/"
    return {key for key in (path.removeprefix(prefix) for path in fs.find(root))
            if not key.startswith(f"{keys.TABLES_DIR}/")}


def collects_what_no_table_names(fs: fsspec.AbstractFileSystem, root: str) -> None:
    """The whole scenario, on any store: counted, spared while young, deleted once past the grace period."""
    kept, stale = planted_store(fs, root)
    later = dt.datetime.now(dt.UTC) + 2 * HOUR

    counted = delete_superseded_masks(fs, root, HOUR, now=later, dry_run=True)
    assert (counted.tables, counted.files, counted.bytes, counted.spared) == (3, len(stale), 100 * len(stale), 0)
    assert stored(fs, root) == kept | stale

    young = delete_superseded_masks(fs, root, HOUR)  # all written just now: none past the grace period
    assert (young.files, young.spared) == (0, len(stale)) and stored(fs, root) == kept | stale

    assert delete_superseded_masks(fs, root, HOUR, now=later) == counted
    assert stored(fs, root) == kept
    assert delete_superseded_masks(fs, root, HOUR, now=later).files == 0
