"""Publishing a release: staged, verified, then committed by a create-only marker; never overwritten.

Keys, under the store root:
- `releases/<dataset>/<version>/<files>` and `releases/<dataset>/<version>/_RELEASE.json`, the
  commit marker: the release exists only once the marker does;
- `releases/<dataset>/latest.json`, pointing at the newest committed version;
- `releases/<dataset>/_staging/<stamp>-<random>/`, this run's uploads before the commit.

Steps: probe the store for create-only writes; drop stale staging dirs and abort stale multipart
uploads; stream the files into a fresh staging dir (the caller writes them, see open_staging) and
verify them there; if the newest release holds the same content digest, return it; otherwise pick
the next version, create each final object create-only from its staged copy (the same bytes
already there are fine, other bytes are a ReleaseConflictError and nothing further is written),
create the marker create-only, delete this run's staging dir and move `latest.json` forward with
compare-and-swap.

Two publishers of one version: at each final key the first create wins and the other stops at
its first conflict, having created only objects byte-identical to the winner's; it fails with
ReleaseConflictError rather than retrying a later version (a rerun picks the next one).
"""

import datetime as dt
from dataclasses import dataclass

import fsspec
import orjson

from segpipe.store.create_only import CreateOutcome, create_only_bytes, create_only_from
from segpipe.store.probe import require_create_only
from segpipe.store.pointer import advance_pointer, read_pointer
from segpipe.store.staging import (
    ArchiveCheck,
    ReleaseStaging,
    abort_stale_uploads,
    remove_stale_staging,
)
from segpipe.store.versions import next_sequence, version_name, version_sequence
from segpipe.store import keys

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



def open_staging(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str,
                 now: dt.datetime | None = None) -> ReleaseStaging:
    """This run's staging dir, after the probe and the janitor: a store that cannot publish fails
    here, before a release is written into it."""
    now = now or dt.datetime.now(dt.UTC)
    require_create_only(fs, root)
    releases_dir = f"{root}/{keys.releases_dir(dataset_name)}"
    remove_stale_staging(fs, releases_dir, now, STALE_STAGING_AGE)
    abort_stale_uploads(fs, releases_dir, now, STALE_STAGING_AGE)
    return ReleaseStaging(fs, releases_dir, now)


def publish_release(
    fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, staging: ReleaseStaging, archive: str,
    marker: dict, content_digest: str, taxonomy_version: str, now: dt.datetime | None = None,
    check_archive: ArchiveCheck | None = None,
) -> PublishedRelease:
    """Publish what `staging` holds as the next version, its `archive` named after the version,
    unless the newest release holds this content. The staging dir is removed either way."""
    now = now or dt.datetime.now(dt.UTC)
    releases_dir = f"{root}/{keys.releases_dir(dataset_name)}"
    with staging:
        staging.verify(check_archive)
        committed = list_releases(fs, root, dataset_name)
        if committed and committed[-1]["content_digest"] == content_digest:
            newest = committed[-1]
            latest = advance_pointer(fs, f"{releases_dir}/{keys.LATEST_POINTER}", _pointer(newest))
            return PublishedRelease(newest["version"], keys.release_prefix(dataset_name, newest["version"]), newest,
                                    newly_published=False, latest=latest["version"])
        sequence = next_sequence(_version_names(fs, releases_dir))
        version = version_name(now.date(), sequence, taxonomy_version)
        published = _commit(fs, root, dataset_name, version, staging, {archive: keys.archive_name(dataset_name, version)},
                            {**marker, "sequence": sequence, "content_digest": content_digest,
                             "taxonomy_version": taxonomy_version, "created": now.isoformat()})
    latest = advance_pointer(fs, f"{releases_dir}/{keys.LATEST_POINTER}", _pointer(published.marker))
    return PublishedRelease(published.version, published.prefix, published.marker, published.newly_published,
                            latest["version"])


def publish_version(
    fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, version: str, staging: ReleaseStaging,
    marker: dict, renames: dict[str, str] | None = None,
) -> PublishedRelease:
    """Commit what `staging` holds under exactly `version` (staged names changed by `renames`): the
    same content already there is a no-op, other content a conflict."""
    with staging:
        staging.verify()
        return _commit(fs, root, dataset_name, version, staging, renames or {}, marker)


def _commit(
    fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, version: str, staging: ReleaseStaging,
    renames: dict[str, str], marker: dict,
) -> PublishedRelease:
    prefix = keys.release_prefix(dataset_name, version)
    final_names = {staged: renames.get(staged, staged) for staged in sorted(staging.sha256)}
    sha256 = {final_names[staged]: digest for staged, digest in staging.sha256.items()}
    marker = {**marker, "dataset": dataset_name, "version": version, "files": dict(sorted(sha256.items()))}
    for staged, name in final_names.items():
        outcome = create_only_from(fs, f"{root}/{prefix}/{name}", f"{staging.path}/{staged}", staging.sha256[staged])
        if outcome is CreateOutcome.ALREADY_OTHER:
            raise ReleaseConflictError(
                f"{root}/{prefix}/{name}: version {version} already holds other bytes; releases are never overwritten")
    marker_path = f"{root}/{prefix}/{keys.RELEASE_MARKER}"
    body = orjson.dumps(marker, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    if create_only_bytes(fs, marker_path, body) is not CreateOutcome.ALREADY_OTHER:
        return PublishedRelease(version, prefix, marker, newly_published=True, latest=version)
    existing = orjson.loads(fs.cat_file(marker_path))
    if existing["files"] != marker["files"]:
        raise ReleaseConflictError(
            f"{marker_path}: version {version} was published by run {existing.get('run_id')} with other content; "
            "releases are never overwritten")
    return PublishedRelease(version, prefix, existing, newly_published=False, latest=version)


def list_releases(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str) -> list[dict]:
    """The committed releases' markers (versions with a `_RELEASE.json`), oldest first."""
    releases_dir = f"{root}/{keys.releases_dir(dataset_name)}"
    markers = []
    for name in sorted(_version_names(fs, releases_dir), key=version_sequence):
        try:
            markers.append(orjson.loads(fs.cat_file(f"{releases_dir}/{name}/{keys.RELEASE_MARKER}")))
        except FileNotFoundError:
            continue  # an attempt that never committed
    return markers


def latest_version(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str) -> str | None:
    pointer = read_pointer(fs, f"{root}/{keys.releases_dir(dataset_name)}/{keys.LATEST_POINTER}")
    return pointer["version"] if pointer else None


def latest_release_file(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, name: str) -> tuple[str | None, bytes | None]:
    """The version latest.json names and one of its files (e.g. manifest.parquet); (None, None) before the first release."""
    version = latest_version(fs, root, dataset_name)
    if version is None:
        return None, None
    return version, fs.cat_file(f"{root}/{keys.release_prefix(dataset_name, version)}/{name}")


def _version_names(fs: fsspec.AbstractFileSystem, releases_dir: str) -> list[str]:
    fs.invalidate_cache(releases_dir)
    if not fs.exists(releases_dir):
        return []
    names = (path.rstrip("/").rsplit("/", 1)[-1] for path in fs.ls(releases_dir, detail=False))
    return [name for name in names if version_sequence(name) is not None]


def _pointer(marker: dict) -> dict:
    return {"version": marker["version"], "sequence": marker["sequence"], "content_digest": marker["content_digest"]}
