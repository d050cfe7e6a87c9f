"""The release build's prune of deflated segments (core/release/parallel_deflate.py): a dataset keeps
the segments its newest release used, and those a build beside it may just have made."""

import datetime as dt
import os
from pathlib import Path

import fsspec

from segpipe.store import keys
from segpipe.store.release_build import SEGMENT_GRACE, prune_deflated_segments


def test_only_the_datasets_unused_segments_older_than_the_grace_period_are_deleted(tmp_path):
    root, now = str(tmp_path), dt.datetime.now(dt.UTC)
    old = (now - SEGMENT_GRACE - dt.timedelta(minutes=5)).timestamp()
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
    pruned = prune_deflated_segments(fsspec.filesystem("file"), root, "demo", used, now)
    assert pruned == [made["demo", "unused"]]
    left = {key for key in made.values() if (Path(root) / key).exists()}
    assert left == {made["demo", "used"], made["demo", "fresh"], made["other", "unused"]}
    assert prune_deflated_segments(fsspec.filesystem("file"), root, "nothing-yet", used, now) == []
