"""Publishing a release: staged, verified, then committed by a create-only marker; never overwritten.

Keys, under the store root:
- `releases/<dataset>/<version>/<files>` and `releases/<dataset>/<version>/_RELEASE.json`, the
  commit marker: the release exists only once the marker does;
- `releases/<dataset>/latest.json`, pointing at the newest committed version;
- `releases/<dataset>/_staging/<stamp>-<random>/`, this run's uploads before the commit.

Steps: probe the store for create-only writes; drop stale staging dirs; if the newest release
holds the same content digest, return it; otherwise pick the next version, upload to staging and
verify it, create each final object create-only (the same bytes already there are fine, other
bytes are a ReleaseConflictError and nothing further is written), create the marker create-only,
move `latest.json` forward with compare-and-swap, and delete this run's staging dir.

Two publishers of one version: at each final key the first create wins and the other stops at
its first conflict, having created only objects byte-identical to the winner's; it fails with
ReleaseConflictError rather than retrying a later version (a rerun picks the next one).
"""

import contextlib
import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import fsspec
import orjson

from segpipe.core.create_only import CreateOutcome, create_only, create_only_bytes
from segpipe.core.create_only_probe import require_create_only
from segpipe.core.release_pointer import advance_pointer, read_pointer
from segpipe.core.release_staging import new_staging_dir, remove_staging, remove_stale_staging, stage_files
from segpipe.core.release_versions import next_sequence, version_name, version_sequence

RELEASE_MARKER = "_RELEASE.json"
LATEST_POINTER = "latest.json"
STALE_STAGING_AGE = dt.timedelta(hours=6)


class ReleaseConflictError(RuntimeError):
    """A different release already holds this version."""


@dataclass(frozen=True)
class PublishedRelease:
    version: str
    prefix: str
    marker: dict
    newly_published: bool
    latest: str


def release_prefix(dataset_name: str, version: str) -> str:
    return f"releases/{dataset_name}/{version}"


def archive_name(dataset_name: str, version: str) -> str:
    return f"{dataset_name}-{version}.zip"


def publish_release(
    fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, archive: Path, files: dict[str, Path],
    marker: dict, content_digest: str, taxonomy_version: str, now: dt.datetime | None = None,
) -> PublishedRelease:
    """Publish `archive` plus `files` (name -> local path) as the next version, unless the newest release holds this content."""
    now = now or dt.datetime.now(dt.UTC)
    require_create_only(fs, root)
    releases_dir = f"{root}/releases/{dataset_name}"
    remove_stale_staging(fs, releases_dir, now, STALE_STAGING_AGE)
    committed = list_releases(fs, root, dataset_name)
    if committed and committed[-1]["content_digest"] == content_digest:
        newest = committed[-1]
        latest = advance_pointer(fs, f"{releases_dir}/{LATEST_POINTER}", _pointer(newest))
        return PublishedRelease(newest["version"], release_prefix(dataset_name, newest["version"]), newest,
                                newly_published=False, latest=latest["version"])
    sequence = next_sequence(_version_names(fs, releases_dir))
    version = version_name(now.date(), sequence, taxonomy_version)
    published = publish_version(
        fs, root, dataset_name, version, {archive_name(dataset_name, version): archive, **files},
        {**marker, "sequence": sequence, "content_digest": content_digest,
         "taxonomy_version": taxonomy_version, "created": now.isoformat()}, now)
    latest = advance_pointer(fs, f"{releases_dir}/{LATEST_POINTER}", _pointer(published.marker))
    return PublishedRelease(published.version, published.prefix, published.marker, published.newly_published,
                            latest["version"])


def publish_version(
    fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, version: str, files: dict[str, Path],
    marker: dict, now: dt.datetime,
) -> PublishedRelease:
    """Commit `files` under exactly `version`: the same content already there is a no-op, other content a conflict."""
    prefix = release_prefix(dataset_name, version)
    sha256 = {name: _sha256(path) for name, path in sorted(files.items())}
    marker = {**marker, "dataset": dataset_name, "version": version, "files": sha256}
    staging = new_staging_dir(f"{root}/releases/{dataset_name}", now)
    try:
        published = _commit(fs, root, prefix, version, files, sha256, marker, staging)
    except BaseException:
        with contextlib.suppress(Exception):  # the store may be what failed; a later run drops stale staging
            remove_staging(fs, staging)
        raise
    remove_staging(fs, staging)
    return published


def _commit(
    fs: fsspec.AbstractFileSystem, root: str, prefix: str, version: str, files: dict[str, Path],
    sha256: dict[str, str], marker: dict, staging: str,
) -> PublishedRelease:
    stage_files(fs, staging, files, sha256)
    for name, path in sorted(files.items()):
        with path.open("rb") as source:
            if create_only(fs, f"{root}/{prefix}/{name}", source) is CreateOutcome.ALREADY_OTHER:
                raise ReleaseConflictError(
                    f"{root}/{prefix}/{name}: version {version} already holds other bytes; releases are never overwritten")
    marker_path = f"{root}/{prefix}/{RELEASE_MARKER}"
    body = orjson.dumps(marker, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    if create_only_bytes(fs, marker_path, body) is not CreateOutcome.ALREADY_OTHER:
        return PublishedRelease(version, prefix, marker, newly_published=True, latest=version)
    existing = orjson.loads(fs.cat_file(marker_path))
    if existing["files"] != sha256:
        raise ReleaseConflictError(
            f"{marker_path}: version {version} was published by run {existing.get('run_id')} with other content; "
            "releases are never overwritten")
    return PublishedRelease(version, prefix, existing, newly_published=False, latest=version)


def list_releases(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str) -> list[dict]:
    """The committed releases' markers (versions with a `_RELEASE.json`), oldest first."""
    releases_dir = f"{root}/releases/{dataset_name}"
    markers = []
    for name in sorted(_version_names(fs, releases_dir), key=version_sequence):
        try:
            markers.append(orjson.loads(fs.cat_file(f"{releases_dir}/{name}/{RELEASE_MARKER}")))
        except FileNotFoundError:
            continue  # an attempt that never committed
    return markers


def latest_version(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str) -> str | None:
    pointer = read_pointer(fs, f"{root}/releases/{dataset_name}/{LATEST_POINTER}")
    return pointer["version"] if pointer else None


def latest_release_file(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, name: str) -> tuple[str | None, bytes | None]:
    """The version latest.json names and one of its files (e.g. manifest.parquet); (None, None) before the first release."""
    version = latest_version(fs, root, dataset_name)
    if version is None:
        return None, None
    return version, fs.cat_file(f"{root}/{release_prefix(dataset_name, version)}/{name}")


def _version_names(fs: fsspec.AbstractFileSystem, releases_dir: str) -> list[str]:
    fs.invalidate_cache(releases_dir)
    if not fs.exists(releases_dir):
        return []
    names = (path.rstrip("/").rsplit("/", 1)[-1] for path in fs.ls(releases_dir, detail=False))
    return [name for name in names if version_sequence(name) is not None]


def _pointer(marker: dict) -> dict:
    return {"version": marker["version"], "sequence": marker["sequence"], "content_digest": marker["content_digest"]}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
