"""Batch sources: a folder (local or an object-store prefix) or a ZIP archive, read the same way."""

from collections.abc import Iterator
from contextlib import contextmanager

import fsspec

from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import BATCH_MISSING, SOURCE_MISSING
from segpipe.core.ingest.landing import ARCHIVE_SUFFIX, LandedBatch, find_ready_batches, location_uri
from segpipe.core.ingest.sources.folder import FolderSource
from segpipe.core.ingest.sources.source import BatchSource, RejectedFile
from segpipe.core.ingest.sources.zip_archive import ZipArchiveSource


@contextmanager
def open_source(fs: fsspec.AbstractFileSystem, path: str) -> Iterator[BatchSource]:
    """A folder or a `.zip` archive at path; an unreadable archive raises InputError naming it."""
    uri = location_uri(fs, path)
    if path.endswith(ARCHIVE_SUFFIX) and fs.isfile(path):
        with fs.open(path, "rb") as archive:
            yield ZipArchiveSource(archive, uri)
    elif fs.isdir(path):
        yield FolderSource(fs, path, uri)
    else:
        raise InputError(SOURCE_MISSING, f"{uri}: neither a folder nor a .zip archive")


@contextmanager
def open_landed_batch(fs: fsspec.AbstractFileSystem, landing_root: str,
                      batch_id: str) -> Iterator[tuple[BatchSource, LandedBatch]]:
    """The ready batch with this id under the landing root, and where and when it landed."""
    landed = find_ready_batches(fs, landing_root).get(batch_id)
    if landed is None:
        raise InputError(BATCH_MISSING, f"{landing_root}/{batch_id}: no ready batch with this id (folder with batch.json or .zip)")
    with open_source(fs, landed.path) as source:
        yield source, landed


__all__ = ["BatchSource", "FolderSource", "RejectedFile", "ZipArchiveSource", "location_uri", "open_landed_batch", "open_source"]
