"""Reading committed releases back: their markers, and their files checked against the marker.

A published object can change after its commit (a flipped bit at rest, a hand edit, a bad
restore), and a damaged manifest may still parse. So every file read back from a release is
hashed and compared with the SHA-256 its `_RELEASE.json` recorded, and a mismatch is an error,
never a silently wrong diff base.
"""

import hashlib

import fsspec
import orjson

from segpipe.store.pointer import read_pointer
from segpipe.store.versions import version_sequence
from segpipe.store import keys


class ReleaseFileCorrupt(RuntimeError):
    """A file of a committed release is missing from its marker or no longer holds the bytes it recorded."""


def list_releases(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str) -> list[dict]:
    """The committed releases' markers (versions with a `_RELEASE.json`), oldest first."""
    releases_dir = f"{root}/{keys.releases_dir(dataset_name)}"
    markers = []
    for name in sorted(version_names(fs, releases_dir), key=version_sequence):
        marker = read_marker(fs, root, dataset_name, name)
        if marker is not None:
            markers.append(marker)
    return markers


def newest_release(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str) -> dict | None:
    """The marker of the committed release with the highest sequence; None before the first."""
    releases_dir = f"{root}/{keys.releases_dir(dataset_name)}"
    for name in sorted(version_names(fs, releases_dir), key=version_sequence, reverse=True):
        if (marker := read_marker(fs, root, dataset_name, name)) is not None:
            return marker
    return None


def read_marker(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, version: str) -> dict | None:
    """A version's `_RELEASE.json`; None for an attempt that never committed."""
    path = f"{root}/{keys.release_prefix(dataset_name, version)}/{keys.RELEASE_MARKER}"
    try:
        return orjson.loads(fs.cat_file(path))
    except FileNotFoundError:
        return None


def read_release_file(fs: fsspec.AbstractFileSystem, root: str, marker: dict, name: str) -> bytes:
    """One file of the committed release `marker` describes, only if it holds the bytes the marker recorded."""
    path = f"{root}/{keys.release_prefix(marker['dataset'], marker['version'])}/{name}"
    expected = marker.get("files", {}).get(name)
    if expected is None:
        raise ReleaseFileCorrupt(
            f"{path}: not listed in {keys.RELEASE_MARKER}, so it cannot be checked; it is not part of the "
            f"release: remove it, or read the files the marker lists")
    data = fs.cat_file(path)
    if (found := hashlib.sha256(data).hexdigest()) != expected:
        raise ReleaseFileCorrupt(
            f"{path}: SHA-256 is {found}, {keys.RELEASE_MARKER} recorded {expected}: the object changed after it "
            f"was published, so it is not used. Restore it from a copy that matches (a backup or the bucket's "
            f"object versions); `segpipe verify` on the release folder lists every damaged file")
    return data


def latest_version(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str) -> str | None:
    pointer = read_pointer(fs, f"{root}/{keys.releases_dir(dataset_name)}/{keys.LATEST_POINTER}")
    return pointer["version"] if pointer else None


def version_names(fs: fsspec.AbstractFileSystem, releases_dir: str) -> list[str]:
    """The version folders under `releases_dir`, committed or not (staging, claims and pointers left out)."""
    fs.invalidate_cache(releases_dir)
    if not fs.exists(releases_dir):
        return []
    names = (path.rstrip("/").rsplit("/", 1)[-1] for path in fs.ls(releases_dir, detail=False))
    return [name for name in names if version_sequence(name) is not None]
