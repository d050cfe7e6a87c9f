"""`segpipe gc`'s collection of masks no table names and of their memos, on a local store."""

import datetime as dt

import fsspec
import pytest

from segpipe.store import keys
from segpipe.store.superseded_masks import UnreadableTable, delete_superseded_masks
from segpipe_tests.store.superseded_stores import (
    CURRENT,
    FUSED,
    HOUR,
    collects_what_no_table_names,
    memos,
    planted_store,
    stored,
)


def test_masks_no_table_names_go_with_their_memos_once_past_the_grace_period(tmp_path):
    collects_what_no_table_names(fsspec.filesystem("file", auto_mkdir=True), str(tmp_path))


def test_a_store_without_tables_keeps_every_mask(tmp_path):
    fs, root = fsspec.filesystem("file", auto_mkdir=True), str(tmp_path)
    kept, stale = planted_store(fs, root)
    fs.rm(f"{root}/{keys.TABLES_DIR}", recursive=True)
    done = delete_superseded_masks(fs, root, HOUR, now=dt.datetime.now(dt.UTC) + 2 * HOUR)
    assert (done.tables, done.files) == (0, 0) and stored(fs, root) == kept | stale


def test_a_table_that_does_not_read_stops_gc_naming_it_and_deletes_nothing(tmp_path):
    fs, root = fsspec.filesystem("file", auto_mkdir=True), str(tmp_path)
    kept, stale = planted_store(fs, root)
    damaged = f"{root}/{keys.TABLES_DIR}/annotation_masks/b2.parquet"
    fs.pipe_file(damaged, b"PAR1 cut short")
    with pytest.raises(UnreadableTable, match=f"{damaged}: cannot read this table"):
        delete_superseded_masks(fs, root, HOUR, now=dt.datetime.now(dt.UTC) + 2 * HOUR)
    assert stored(fs, root) == kept | stale


@pytest.mark.parametrize("mask", [CURRENT, keys.class_mask("night-batch", "a-b-c", "9f"), FUSED])
def test_each_memo_names_the_mask_it_was_made_of(mask):
    assert [keys.mask_of_memo(memo) for memo in memos(mask)] == [mask] * 4
