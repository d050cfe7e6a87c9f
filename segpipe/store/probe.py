"""The start-up probe: refuse to publish to a store that does not enforce create-only writes.

Some S3-compatible servers accept `If-None-Match: *` and ignore it, which would turn the
release's commit marker into a lock that always succeeds. Writing one probe key twice shows it:
the second write must be refused. The answer is cached per store for the life of the process.
"""

import contextlib
import uuid

import fsspec

from segpipe.store.create_only import CreateOutcome, create_only_bytes, is_s3
from segpipe.store import keys


_stores_checked: set[str] = set()


class StoreLacksCreateOnly(RuntimeError):
    """The store overwrote an existing key on a create-only write."""


def require_create_only(fs: fsspec.AbstractFileSystem, root: str) -> None:
    """Probe `root` once per process; raise StoreLacksCreateOnly naming the store if it fails."""
    store = f"{type(fs).__name__}:{fs.unstrip_protocol(root)}"
    if store in _stores_checked:
        return
    probe = f"{root}/{keys.PROBE_DIR}/{uuid.uuid4().hex}"
    try:
        create_only_bytes(fs, probe, b"first")
        second = create_only_bytes(fs, probe, b"second")
        kept = fs.cat_file(probe)
    finally:
        if fs.exists(probe):
            fs.rm_file(probe)
        if not is_s3(fs):
            with contextlib.suppress(OSError):  # another process may be probing the same store
                fs.rmdir(f"{root}/{keys.PROBE_DIR}")
    if second is CreateOutcome.CREATED or kept != b"first":
        raise StoreLacksCreateOnly(
            f"{store}: a create-only write replaced an existing object, so two publishers could both "
            "commit one version; refusing to publish there")
    _stores_checked.add(store)
