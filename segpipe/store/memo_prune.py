"""Memos a step did not use, deleted once an hour old, so a folder of memos holds about one build's
worth rather than one per taxonomy or settings edit: the release's deflated segments and COCO
fragments (store/release_build.py), QA's per-batch work and judgements, and consensus outcomes.

A memo is a cache: a build that finds one gone (pruned by another build meanwhile, whose inputs
differ) makes it again. The hour spares what a build beside this one has just made and not yet
used. Anything else under the folder is left alone."""

import datetime as dt
from collections.abc import Collection

import fsspec

from segpipe.store.listing import stored_files
from segpipe.store.release_parts import modified_time

MEMO_GRACE = dt.timedelta(hours=1)


def prune_unused_memos(fs: fsspec.AbstractFileSystem, root: str, folder: str, used: Collection[str],
                       now: dt.datetime) -> list[str]:
    """Delete every file under `folder` (a store key; subfolders too) whose key is not in `used`
    (store keys), once older than MEMO_GRACE. Their keys, deleted."""
    stale = [key for key, entry in stored_files(fs, root, folder).items()
             if key not in used and now - modified_time(fs, entry) > MEMO_GRACE]
    if stale:
        fs.rm([f"{root}/{key}" for key in stale])
    return sorted(stale)
