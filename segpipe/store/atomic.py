"""Whole-or-nothing writes: a reader never finds part of an object under its final name.

A local write goes to a temporary name in the same folder and only then is renamed over the final
name (`os.replace`, atomic within one filesystem); a failure removes the temporary file. On S3 a
single PUT is already atomic (and durable once answered), so other filesystems write directly.

Durability is paid per step, not per object. A write a reader trusts as it finds it (a table, a
record, the split assignments) is fsynced before its rename. A derived artefact that every reader
checks, and that a rerun rebuilds when damaged (store/keys.py `checked_on_read`), is written with
`durable=False`: no fsync of its own, only a note of its filesystem. `sync_deferred_writes` is the
barrier: one syncfs per such filesystem, run before a step's outputs are recorded
(docs/operations.md, "Durability").
"""

import ctypes
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

_deferred_lock = threading.Lock()
_deferred_folders: dict[int, str] = {}  # st_dev -> a folder on it holding a write not yet synced


def write_atomically(fs: fsspec.AbstractFileSystem, path: str, write: Callable[[BinaryIO], object],
                     *, durable: bool = True) -> None:
    """Call `write` on a file that appears at `path` only once it is complete; with `durable=False`
    its bytes reach the disk at the next `sync_deferred_writes` rather than before the rename."""
    if not isinstance(fs, LocalFileSystem):
        with fs.open(path, "wb") as f:
            write(f)
        return
    final = fs._strip_protocol(path)
    folder, name = os.path.split(final)
    os.makedirs(folder, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
            f.flush()
            if durable:
                os.fsync(f.fileno())
            else:
                _defer(os.fstat(f.fileno()).st_dev, folder)
        os.replace(partial, final)
    except BaseException:
        os.unlink(partial)
        raise


def write_bytes_atomically(fs: fsspec.AbstractFileSystem, path: str, data: bytes, *, durable: bool = True) -> None:
    if isinstance(fs, LocalFileSystem):
        write_atomically(fs, path, lambda f: f.write(data), durable=durable)
    else:
        fs.pipe_file(path, data)


def sync_deferred_writes() -> int:
    """The durability barrier: every write made with `durable=False` in this process so far is on
    disk when this returns (one syncfs per filesystem written to). Returns how many were synced."""
    with _deferred_lock:
        folders = list(_deferred_folders.values())
        _deferred_folders.clear()
    for folder in folders:
        while not os.path.isdir(folder):  # removed since (a test's temporary store): its filesystem is the same
            folder = os.path.dirname(folder)
        sync_filesystem(folder)
    return len(folders)


def sync_store(fs: fsspec.AbstractFileSystem, root: str) -> None:
    """The barrier for everything written under a local store's `root` however it was written
    (create-only links, staged parts included); nothing to do on S3, where an answered PUT is durable."""
    if not isinstance(fs, LocalFileSystem):
        return
    folder = fs._strip_protocol(root)
    sync_filesystem(folder)
    with _deferred_lock:
        _deferred_folders.pop(os.stat(folder).st_dev, None)


def sync_filesystem(folder: str) -> None:
    """Flush every file and folder of the filesystem holding `folder` to disk: syncfs(2) on Linux,
    which reports a failed writeback, else sync(2)."""
    syncfs = getattr(_libc(), "syncfs", None)
    if syncfs is None:
        os.sync()
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"{folder}: flushing its filesystem to disk failed: {os.strerror(code)}; "
                                "the disk may be failing or full: check it, then rerun the step")
    finally:
        os.close(fd)


def _defer(device: int, folder: str) -> None:
    with _deferred_lock:
        _deferred_folders.setdefault(device, folder)


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    return ctypes.CDLL(None, use_errno=True)
