"""Whole-or-nothing writes: a reader never finds part of an object under its final name.

A local write goes to a temporary name in the same folder, is fsynced, and only then renamed over
the final name (`os.replace`, atomic within one filesystem); a failure removes the temporary file.
On S3 a single PUT is already atomic, so other filesystems write directly.
"""

import os
import tempfile
from collections.abc import Callable
from typing import BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem


def write_atomically(fs: fsspec.AbstractFileSystem, path: str, write: Callable[[BinaryIO], object]) -> None:
    """Call `write` on a file that appears at `path` only once it is complete."""
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
            os.fsync(f.fileno())
        os.replace(partial, final)
    except BaseException:
        os.unlink(partial)
        raise


def write_bytes_atomically(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    if isinstance(fs, LocalFileSystem):
        write_atomically(fs, path, lambda f: f.write(data))
    else:
        fs.pipe_file(path, data)
