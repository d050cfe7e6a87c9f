"""The prune of the memos a step did not use (store/memo_prune.py): the release's deflated segments
(core/release/parallel_deflate.py) and COCO fragments (core/release/coco_fragments.py), QA's batch
memos: a store keeps those the step used, and those a build beside it may just have made."""

import datetime as dt
import os
from pathlib import Path

import fsspec

from segpipe.store import keys
from segpipe.store.memo_prune import MEMO_GRACE, prune_unused_memos


def test_only_the_datasets_unused_segments_older_than_the_grace_period_are_deleted(tmp_path):
    root, now = str(tmp_path), dt.datetime.now(dt.UTC)
    old = (now - MEMO_GRACE - dt.timedelta(minutes=5)).timestamp()
    made = {}
    for dataset, name, modified in [("demo", "used", old), ("demo", "unused", old), ("demo", "fresh", now.timestamp()),
                                    ("other", "unused", old)]:
        key = keys.deflated_segment(dataset, name, 2)
        path = Path(root) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"piece")
        os.utime(path, (modified, modified))
        made[dataset, name] = key
    used = frozenset({made["demo", "used"]})
    pruned = prune_unused_memos(fsspec.filesystem("file"), root, keys.deflated_segments_dir("demo"), used, now)
    assert pruned == [made["demo", "unused"]]
    left = {key for key in made.values() if (Path(root) / key).exists()}
    assert left == {made["demo", "used"], made["demo", "fresh"], made["other", "unused"]}
    assert prune_unused_memos(fsspec.filesystem("file"), root, keys.deflated_segments_dir("nothing-yet"), used,
                              now) == []


def test_only_the_coco_fragments_the_release_did_not_use_older_than_the_grace_period_are_deleted(tmp_path):
    root, now = tmp_path, dt.datetime.now(dt.UTC)
    old = (now - MEMO_GRACE - dt.timedelta(minutes=5)).timestamp()
    made = {name: keys.coco_fragment(name) for name in ("used", "unused", "fresh")}
    for name, key in made.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(b"fragment")
        if name != "fresh":
            os.utime(root / key, (old, old))
    used = frozenset({made["used"]})
    assert prune_unused_memos(fsspec.filesystem("file"), str(root), keys.COCO_FRAGMENTS_DIR, used, now) == [
        made["unused"]]
    assert {key for key in made.values() if (root / key).exists()} == {made["used"], made["fresh"]}


def test_a_folder_of_batch_folders_keeps_each_batchs_used_memo_and_nothing_beside_the_folder(tmp_path):
    root, now = tmp_path, dt.datetime.now(dt.UTC)
    old = (now - MEMO_GRACE - dt.timedelta(minutes=5)).timestamp()
    made = {(batch, digest): keys.qa_judged_memo(batch, digest) for batch in ("b1", "b2") for digest in ("new", "old")}
    beside = keys.qa_batch_memo("b1", "old")  # another folder: not this prune's
    for key in (*made.values(), beside):
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(b"{}")
        os.utime(root / key, (old, old))
    used = {made["b1", "new"], made["b2", "new"], "masks/b1/e1-x.png"}
    assert prune_unused_memos(fsspec.filesystem("file"), str(root), "qa-judged", used, now) == sorted(
        [made["b1", "old"], made["b2", "old"]])
    assert {key for key in (*made.values(), beside) if (root / key).exists()} == {
        made["b1", "new"], made["b2", "new"], beside}
