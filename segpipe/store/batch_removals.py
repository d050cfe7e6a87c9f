"""The record of removed batches: one JSON object per removal, written once and never deleted, so a
batch's history outlives its tables and a later build knows not to land it again."""

import orjson
import fsspec

from segpipe.store import keys
from segpipe.store.atomic import write_bytes_atomically


def record_removal(fs: fsspec.AbstractFileSystem, root: str, record: dict) -> str:
    """Store `record` (with `batch` and `removed_at`, an ISO time) under its own key; returns the key."""
    key = keys.batch_removal(record["batch"], record["removed_at"].replace(":", ""))
    write_bytes_atomically(fs, f"{root}/{key}", orjson.dumps(record, option=orjson.OPT_INDENT_2))
    return key


def removed_batches(fs: fsspec.AbstractFileSystem, root: str) -> dict[str, dict]:
    """The newest removal record of each batch ever removed."""
    folder = f"{root}/{keys.BATCH_REMOVALS_DIR}"
    if not fs.exists(folder):
        return {}
    newest: dict[str, dict] = {}
    for path in sorted(fs.find(folder)):
        if path.endswith(".json"):
            record = orjson.loads(fs.cat_file(path))
            newest[record["batch"]] = record
    return newest
