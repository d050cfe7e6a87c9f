"""Staging a release's files: upload under a throwaway key, prove the store holds them intact.

Staging keys are `releases/<dataset>/_staging/<UTC timestamp>-<random>/`; the timestamp lets a
later run delete what a crashed one left without trusting object dates.
"""

import contextlib
import datetime as dt
import uuid
import zipfile
from pathlib import Path

import fsspec

from segpipe.core.create_only import CreateOutcome, create_only, object_sha256

STAGING_DIR = "_staging"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"


class StagedReleaseCorrupt(RuntimeError):
    """What the store returned differs from what was uploaded."""


def new_staging_dir(releases_dir: str, now: dt.datetime) -> str:
    return f"{releases_dir}/{STAGING_DIR}/{now.strftime(STAMP_FORMAT)}-{uuid.uuid4().hex[:12]}"


def stage_files(fs: fsspec.AbstractFileSystem, staging: str, files: dict[str, Path], sha256: dict[str, str]) -> None:
    """Upload every file, then re-read each one: its sha256 must match, and a ZIP must open with sound CRCs."""
    for name, path in sorted(files.items()):
        with path.open("rb") as source:
            if create_only(fs, f"{staging}/{name}", source) is not CreateOutcome.CREATED:
                raise StagedReleaseCorrupt(f"{staging}/{name}: the fresh staging key was already taken")
    for name in sorted(files):
        staged = f"{staging}/{name}"
        if (actual := object_sha256(fs, staged)) != sha256[name]:
            raise StagedReleaseCorrupt(f"{staged}: sha256 {actual}, uploaded {sha256[name]}")
        if name.endswith(".zip"):
            with fs.open(staged, "rb") as f, zipfile.ZipFile(f) as archive:
                if (bad := archive.testzip()) is not None:
                    raise StagedReleaseCorrupt(f"{staged}: member {bad} fails its CRC")


def remove_staging(fs: fsspec.AbstractFileSystem, staging: str) -> None:
    if fs.exists(staging):
        fs.rm(staging, recursive=True)


def remove_stale_staging(fs: fsspec.AbstractFileSystem, releases_dir: str, now: dt.datetime, max_age: dt.timedelta) -> list[str]:
    """Delete staging dirs older than `max_age` (left by crashed runs); return what was deleted."""
    root = f"{releases_dir}/{STAGING_DIR}"
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
