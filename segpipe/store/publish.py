"""Publishing a release: staged, verified, its sequence claimed, committed by a create-only marker; never overwritten.

Keys, under the store root:
- `releases/<dataset>/<version>/<files>` and `releases/<dataset>/<version>/_RELEASE.json`, the
  commit marker: the release exists only once the marker does;
- `releases/<dataset>/parts/<sha256>.zip`, the shared parts a version's marker lists (release_parts.py);
- `releases/<dataset>/latest.json`, pointing at the newest committed version;
- `releases/<dataset>/_claims/<sequence>.json`, who publishes each sequence (claims.py);
- `releases/<dataset>/_staging/<stamp>-<random>/`, this run's uploads before the commit.

Steps: probe the store for create-only writes; drop stale staging dirs, abort stale multipart
uploads and delete the version folders an attempt left without a marker (claims.py); stream the
files into a fresh staging dir (the caller writes them, see open_staging) and verify them there;
claim the next sequence, unless the newest release holds the same content digest (then return
it); stage what compares the build with the release before it (the diff); create each final
object create-only from its staged copy (the same bytes already there are fine, other bytes are a
ReleaseConflictError and nothing further is written), create the marker create-only (once every
shared part it lists is checked to be there), delete this run's staging dir and move
`latest.json` forward with compare-and-swap.

Two publishers racing: one wins the claim on a sequence, the other waits for that release and
then reports it (same content) or claims the next sequence (other content), so a race commits
each content once and every diff is against the version just before it.
"""

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import fsspec
import orjson

from segpipe.store.atomic import sync_store
from segpipe.store.claims import (
    COMMIT_DEADLINE,
    ClaimExpired,
    HeldClaim,
    abandon,
    claim_next_sequence,
    remove_uncommitted_versions,
)
from segpipe.store.create_only import CreateOutcome, create_only_bytes, create_only_from
from segpipe.store.probe import require_create_only
from segpipe.store.pointer import advance_pointer
from segpipe.store.release_parts import check_parts_present
from segpipe.store.staging import (
    ArchiveCheck,
    ReleaseStaging,
    abort_stale_uploads,
    remove_stale_staging,
)
from segpipe.store.versions import version_name
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
    """This run's staging dir, after the probe and the janitor (stale staging dirs, multipart uploads
    and uncommitted version folders): a store that cannot publish fails here, before a release is
    written into it."""
    now = now or dt.datetime.now(dt.UTC)
    require_create_only(fs, root)
    releases_dir = f"{root}/{keys.releases_dir(dataset_name)}"
    remove_stale_staging(fs, releases_dir, now, STALE_STAGING_AGE)
    abort_stale_uploads(fs, releases_dir, now, STALE_STAGING_AGE)
    remove_uncommitted_versions(fs, root, dataset_name, now, STALE_STAGING_AGE)
    return ReleaseStaging(fs, releases_dir, now)


def publish_release(
    fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, staging: ReleaseStaging, archive: str,
    marker: dict, content_digest: str, taxonomy_version: str, now: dt.datetime | None = None,
    check_archive: ArchiveCheck | None = None, compare_with: Callable[[dict | None], None] | None = None,
    parts: Mapping[str, dict] | None = None,
) -> PublishedRelease:
    """Publish what `staging` holds as the next version, its `archive` named after the version,
    unless the newest release holds this content. `compare_with` is called once with the marker of
    the release this build is compared with (the one before the new version, or the equal one
    reported instead; None before the first) and may stage files, such as the diff, to publish with
    it. `parts` (part name -> SHA-256 and size) are the shared parts the version uses, stored
    already: the marker lists them once they are checked to be there. The staging dir is removed
    either way."""
    now = now or dt.datetime.now(dt.UTC)
    releases_dir = f"{root}/{keys.releases_dir(dataset_name)}"
    run_id = marker.get("run_id")
    with staging:
        staging.verify(check_archive)
        held = claim_next_sequence(fs, root, dataset_name, content_digest, run_id,
                                   lambda sequence: version_name(now.date(), sequence, taxonomy_version))
        if not isinstance(held, HeldClaim):
            if compare_with is not None:
                compare_with(held)
            latest = advance_pointer(fs, f"{releases_dir}/{keys.LATEST_POINTER}", _pointer(held))
            return PublishedRelease(held["version"], keys.release_prefix(dataset_name, held["version"]), held,
                                    newly_published=False, latest=latest["version"])
        try:
            if compare_with is not None:
                compare_with(held.previous)
                staging.verify(check_archive)
            published = _commit(fs, root, dataset_name, held.version, staging,
                                {archive: keys.archive_name(dataset_name, held.version)},
                                {**marker, "sequence": held.sequence, "content_digest": content_digest,
                                 "taxonomy_version": taxonomy_version, "created": now.isoformat(),
                                 **({} if parts is None else {"parts": dict(sorted(parts.items()))})}, held.deadline)
        except BaseException as exc:
            with contextlib.suppress(Exception):  # a store that fails here too leaves the claim to lapse
                abandon(fs, root, dataset_name, held.sequence, run_id, f"{type(exc).__name__}: {exc}")
            raise
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
    renames: dict[str, str], marker: dict, deadline: float | None = None,
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
    check_parts_present(fs, root, dataset_name, marker.get("parts", {}))
    if deadline is not None and time.monotonic() > deadline:
        raise ClaimExpired(
            f"{marker_path}: not committed, since the sequence was claimed more than {COMMIT_DEADLINE} ago and "
            f"others may take it over; the claim is given up. Publish again, and if the store is this slow, "
            f"look at its throughput")
    sync_store(fs, root)  # the parts and files on disk before the marker that says they are a release
    body = orjson.dumps(marker, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    if create_only_bytes(fs, marker_path, body) is not CreateOutcome.ALREADY_OTHER:
        return PublishedRelease(version, prefix, marker, newly_published=True, latest=version)
    existing = orjson.loads(fs.cat_file(marker_path))
    if existing["files"] != marker["files"]:
        raise ReleaseConflictError(
            f"{marker_path}: version {version} was published by run {existing.get('run_id')} with other content; "
            "releases are never overwritten")
    return PublishedRelease(version, prefix, existing, newly_published=False, latest=version)


def _pointer(marker: dict) -> dict:
    return {"version": marker["version"], "sequence": marker["sequence"], "content_digest": marker["content_digest"]}
