"""The object store and landing zone resources: every read and write goes through fsspec, local or S3."""

import datetime as dt
import errno
import os
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager

import dagster as dg
import fsspec

from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.ingest.landing import LandedBatch, list_ready_batches
from segpipe.core.ingest.sources import BatchSource, location_uri, open_landed_batch
from segpipe.io.locations import (
    CONNECT_TIMEOUT_S, READ_TIMEOUT_S, REQUEST_ATTEMPTS, RequestLimits, open_location,
)
from segpipe.store import keys
from segpipe.store.atomic import sync_store, write_bytes_atomically
from segpipe.store.memo_prune import prune_unused_memos
from segpipe.store.release_check import access_problem


DISK_FULL = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


class FsspecLocation(dg.ConfigurableResource):
    """A folder or `s3://bucket/prefix`, with an optional endpoint for S3-compatible servers, and
    the limits of one S3 request (segpipe/io/locations.py)."""

    root: str
    endpoint_url: str | None = None
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    read_timeout_s: float = READ_TIMEOUT_S
    request_attempts: int = REQUEST_ATTEMPTS

    def location(self) -> tuple[fsspec.AbstractFileSystem, str]:
        limits = RequestLimits(self.connect_timeout_s, self.read_timeout_s, self.request_attempts)
        return open_location(self.root, self.endpoint_url, limits)

    def url(self, key: str) -> str:
        """Where `key` is, as a user copies it: `s3://bucket/prefix/key`, or an absolute path for a
        folder (a relative root is resolved against the working directory, as fsspec resolves it)."""
        root = self.root if "://" in self.root else os.path.abspath(self.root)
        return f"{root.rstrip('/')}/{key}"

    @contextmanager
    def _refusal_named(self, fs: fsspec.AbstractFileSystem, key: str, action: str) -> Iterator[None]:
        """A refused request or a full disk names the object and what to do: s3fs says only "Forbidden",
        a refused write only "No space left on device"."""
        try:
            yield
        except PermissionError as exc:
            raise PermissionError(errno.EACCES, f"{self.url(key)}: {access_problem(fs, exc, action)}") from exc
        except OSError as exc:
            if exc.errno not in DISK_FULL:
                raise
            raise OSError(exc.errno, f"{self.url(key)}: {exc.strerror}: the disk under {self.url('').rstrip('/')} is full (or the "
                                     "file is over a size limit); free space there, then rerun the step") from exc


class ObjectStore(FsspecLocation):
    """Artefacts addressed by keys like `masks/<batch>/<entry>-<digest>.png` or `releases/<dataset>/<version>/`."""

    def write_bytes(self, key: str, data: bytes) -> str:
        """Atomically; an artefact its readers check (keys.checked_on_read) without its own fsync, made
        durable by the step's barrier (the IO manager's, or `make_durable`), anything else fsynced."""
        fs, root = self.location()
        with self._refusal_named(fs, key, "write"):
            write_bytes_atomically(fs, f"{root}/{key}", data, durable=not keys.checked_on_read(key))
        return key

    def make_durable(self) -> None:
        """The durability barrier for a step whose outputs the Parquet IO manager does not write: all
        it wrote into this store is on disk before the step reports it."""
        fs, root = self.location()
        with self._refusal_named(fs, "", "write"):
            sync_store(fs, root)

    def read_bytes(self, key: str) -> bytes:
        fs, root = self.location()
        with self._refusal_named(fs, key, "read"):
            return fs.cat_file(f"{root}/{key}")

    def exists(self, key: str) -> bool:
        fs, root = self.location()
        with self._refusal_named(fs, key, "read"):
            return fs.exists(f"{root}/{key}")

    def artefacts(self) -> ArtefactStore:
        """This store as core's derived-artefact interface."""
        return ArtefactStore(self.read_bytes, self.write_bytes, self.exists)

    def prune_unused_memos(self, folders: Iterable[str], used: Collection[str]) -> list[str]:
        """Delete the memos under `folders` that a step did not use (ArtefactStore.recording), once an
        hour old (store/memo_prune.py); their keys."""
        fs, root = self.location()
        now = dt.datetime.now(dt.UTC)
        with self._refusal_named(fs, "", "write"):
            return [key for folder in folders for key in prune_unused_memos(fs, root, folder, used, now)]

    def write_content_addressed(self, key: str, data: bytes) -> str:
        """Write a key named after its content's hash, once: an existing object is kept only if it holds
        exactly these bytes (not a partly written one)."""
        self.artefacts().write_once(key, data)
        return key


class LandingZone(FsspecLocation):
    """Where annotation batches arrive: a folder with batch.json or a .zip archive per batch."""

    def ready_batches(self) -> list[str]:
        fs, root = self.location()
        return list_ready_batches(fs, root)

    def uri(self) -> str:
        """The root as ingest's messages name it (the prefix of every batch's origin)."""
        return location_uri(*self.location())

    @contextmanager
    def open_batch(self, batch_id: str) -> Iterator[tuple[BatchSource, LandedBatch]]:
        """The batch's files, and when it landed (which decides which of two deliveries is newer)."""
        fs, root = self.location()
        with open_landed_batch(fs, root, batch_id) as opened:
            yield opened
