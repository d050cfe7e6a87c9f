"""Memo folders of forms no segpipe reads any more (keys.RETIRED_MEMO_DIRS), deleted by `segpipe gc`.

A memo whose form changes gets a new folder, so an old memo is never read as a new one; the old
folder is then only space (the current outlines take 355 MB at 10,000 scenes of 512x256). Nothing reads it,
so deleting it is safe while builds run.
"""

from dataclasses import dataclass

import fsspec

from segpipe.store import keys
from segpipe.store.listing import stored_files


@dataclass(frozen=True)
class RetiredMemos:
    folders: tuple[str, ...]  # the retired folders found in the store
    files: int
    bytes: int


def delete_retired_memos(fs: fsspec.AbstractFileSystem, root: str, dry_run: bool = False) -> RetiredMemos:
    """Delete every retired memo folder under `root` (with `dry_run`, only count what it holds)."""
    found, files, size = [], 0, 0
    for folder in keys.RETIRED_MEMO_DIRS:
        listed = stored_files(fs, root, folder)  # SeaweedFS lists an emptied prefix as a folder: no file
        if not listed:
            continue
        found.append(folder)
        files += len(listed)
        size += sum(entry.get("size") or 0 for entry in listed.values())
        if not dry_run:
            fs.rm(f"{root}/{folder}", recursive=True)
    return RetiredMemos(tuple(found), files, size)
