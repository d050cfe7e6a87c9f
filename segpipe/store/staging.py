"""Staging a release's files: streamed under a throwaway key, then proven intact in the store.

Staging keys are `releases/<dataset>/_staging/<UTC timestamp>-<random>/`; the timestamp lets a
later run delete what a crashed one left without trusting object dates. Files are written
straight into the store, their SHA-256 taken on the way, so a release of any size needs neither
a local copy nor memory that grows with it.
"""

import contextlib
import datetime as dt
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import fsspec

from segpipe.store.create_only import PART_BYTES, abort_upload, is_s3, object_sha256
from segpipe.core.shared.hashing_writer import HashingWriter
from segpipe.store import keys

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"

ArchiveCheck = Callable[[zipfile.ZipFile], list[str]]


class StagedReleaseCorrupt(RuntimeError):
    """What the store returned differs from what was uploaded."""


class ReleaseStaging:
    """One run's staging dir and the SHA-256 of every file written into it."""

    def __init__(self, fs: fsspec.AbstractFileSystem, releases_dir: str, now: dt.datetime) -> None:
        self.fs = fs
        self.path = f"{releases_dir}/{keys.STAGING_DIR}/{now.strftime(STAMP_FORMAT)}-{uuid.uuid4().hex[:12]}"
        self.sha256: dict[str, str] = {}
        self.sizes: dict[str, int] = {}
        self.verified: set[str] = set()

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        """A stream into `<staging>/<name>`; an exception while writing discards the upload."""
        if not is_s3(self.fs):
            self.fs.makedirs(self.path, exist_ok=True)
        f = self.fs.open(f"{self.path}/{name}", "wb", **({"block_size": PART_BYTES} if is_s3(self.fs) else {}))
        writer = HashingWriter(f)
        try:
            yield writer
        except BaseException:
            if is_s3(self.fs):
                abort_upload(f)  # closing would complete the upload with what was written so far
            else:
                f.close()  # the partial file goes with the staging dir
            raise
        f.close()
        self.sha256[name] = writer.hexdigest()
        self.sizes[name] = writer.tell()
        self.verified.discard(name)

    def put_bytes(self, name: str, data: bytes) -> None:
        with self.open(name) as out:
            out.write(data)

    def put_file(self, name: str, path: Path) -> None:
        with self.open(name) as out, path.open("rb") as source:
            for block in iter(lambda: source.read(1 << 20), b""):
                out.write(block)

    def verify(self, check_archive: ArchiveCheck | None = None) -> None:
        """Re-read every staged file not verified yet: its SHA-256 must be what was written, and a ZIP
        must open and pass `check_archive` (by default: every member's CRC)."""
        check = check_archive or _crc_problems
        for name, expected in sorted(self.sha256.items()):
            if name in self.verified:
                continue
            staged = f"{self.path}/{name}"
            if (actual := object_sha256(self.fs, staged)) != expected:
                raise StagedReleaseCorrupt(f"{staged}: sha256 {actual}, uploaded {expected}")
            if name.endswith(".zip"):
                with self.fs.open(staged, "rb") as f, zipfile.ZipFile(f) as archive:
                    if problems := check(archive):
                        raise StagedReleaseCorrupt(f"{staged}: " + "; ".join(problems[:5]))
            self.verified.add(name)

    def remove(self) -> None:
        if self.fs.exists(self.path):
            self.fs.rm(self.path, recursive=True)

    def __enter__(self) -> "ReleaseStaging":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        """Whatever happened, the staging dir goes; when the store itself failed, a later run's janitor removes it."""
        if kind is None:
            self.remove()
        else:
            with contextlib.suppress(Exception):
                self.remove()


def _crc_problems(archive: zipfile.ZipFile) -> list[str]:
    bad = archive.testzip()
    return [] if bad is None else [f"member {bad} fails its CRC"]


def remove_stale_staging(fs: fsspec.AbstractFileSystem, releases_dir: str, now: dt.datetime, max_age: dt.timedelta) -> list[str]:
    """Delete staging dirs older than `max_age` (left by crashed runs); return what was deleted."""
    root = f"{releases_dir}/{keys.STAGING_DIR}"
    fs.invalidate_cache(root)
    if not fs.exists(root):
        return []
    stale = []
    for path in fs.ls(root, detail=False):
        stamp = path.rstrip("/").rsplit("/", 1)[-1].split("-", 1)[0]
        try:
            started = dt.datetime.strptime(stamp, STAMP_FORMAT).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
        if now - started > max_age:
            with contextlib.suppress(FileNotFoundError):  # SeaweedFS lists emptied prefixes as directories
                fs.rm(path, recursive=True)
            stale.append(path)
    return stale


def abort_stale_uploads(fs: fsspec.AbstractFileSystem, releases_dir: str, now: dt.datetime, max_age: dt.timedelta) -> list[str]:
    """Abort multipart uploads under `releases_dir` begun more than `max_age` ago. A publisher killed
    mid-upload leaves its parts stored (and billed) but invisible; nothing else would remove them.
    Returns the keys whose uploads were aborted; a local filesystem has none."""
    if not is_s3(fs):
        return []
    bucket, prefix, _ = fs.split_path(releases_dir)
    aborted, markers = [], {}
    while True:
        page = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=f"{prefix}/", **markers)
        for upload in page.get("Uploads", []):
            if now - upload["Initiated"] > max_age:
                fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                aborted.append(upload["Key"])
        if not page.get("IsTruncated"):
            return aborted
        markers = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}
