"""Publishing a release under a version that is never overwritten.

Objects are uploaded first; the release exists only once its `_RELEASE.json` marker is
created, and the marker is written with an exclusive create, so a version can be
published once. Re-publishing identical content is a no-op; different content under an
existing version is refused.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import fsspec
import orjson

RELEASE_MARKER = "_RELEASE.json"


class ReleaseConflictError(RuntimeError):
    """A different release already holds this version."""


@dataclass(frozen=True)
class PublishedRelease:
    prefix: str
    marker: dict
    newly_published: bool


def release_prefix(dataset_name: str, version: str) -> str:
    return f"releases/{dataset_name}/{version}"


def publish_release(
    fs: fsspec.AbstractFileSystem, root: str, prefix: str, files: dict[str, Path], marker: dict
) -> PublishedRelease:
    """Upload `files` (name -> local path) under root/prefix, then commit the marker exclusively."""
    marker = {**marker, "files": {name: _sha256(path) for name, path in sorted(files.items())}}
    marker_path = f"{root}/{prefix}/{RELEASE_MARKER}"
    if fs.exists(marker_path):
        return PublishedRelease(prefix, _verify_existing(fs, marker_path, marker), newly_published=False)
    for name, path in sorted(files.items()):
        fs.put_file(str(path), f"{root}/{prefix}/{name}")
    try:
        with fs.open(marker_path, "xb") as f:
            f.write(orjson.dumps(marker, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    except FileExistsError:
        return PublishedRelease(prefix, _verify_existing(fs, marker_path, marker), newly_published=False)
    return PublishedRelease(prefix, marker, newly_published=True)


def _verify_existing(fs: fsspec.AbstractFileSystem, marker_path: str, marker: dict) -> dict:
    existing = orjson.loads(fs.cat_file(marker_path))
    if existing.get("files") != marker["files"]:
        raise ReleaseConflictError(
            f"{marker_path}: version already published with different content; releases are never overwritten")
    return existing


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
