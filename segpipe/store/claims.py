"""Claiming the next release sequence, so that a publish race commits exactly one version.

Before it writes a version, a publisher creates `releases/<dataset>/_claims/<sequence>.json`
create-only. Of two publishers racing for one sequence one create wins; the other reads again.
A claim is open until its version's marker exists (committed), its abandonment record exists
(the claimant failed before committing and said so), or it is older than CLAIM_LAPSE (the
claimant died without a word). A publisher claims only while no claim is open, waiting for an
open one to settle first. So when it holds sequence n, everything below n is settled: the newest
committed release is the one its diff is against, and a publisher of the same content finds the
winner's committed release instead of publishing it again.

`segpipe gc` claims a sequence too, and gives it up when done: holding it, it sees every release
committed and no publisher between its claim and its commit (release_gc.py).

A claimant that has not committed within COMMIT_DEADLINE gives its claim up rather than commit
late; the deadline is well inside CLAIM_LAPSE, so clocks that disagree by less than the
difference cannot let a waiter take over a claim its claimant still uses.

A version folder that holds files but no marker (its claimant died or gave up between its files
and its commit) is deleted by a later publisher once its claim and its newest object are older
than a janitor age well beyond CLAIM_LAPSE: no live publisher may still commit it. Its claim
stays, so its sequence is never used again.
"""

import contextlib
import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import fsspec
import orjson

from segpipe.store.create_only import CreateOutcome, create_only_bytes
from segpipe.store.release_read import newest_release, read_marker, version_names
from segpipe.store.versions import version_sequence
from segpipe.store import keys

CLAIM_LAPSE = dt.timedelta(hours=2)
COMMIT_DEADLINE = dt.timedelta(hours=1)
CLAIM_POLL_SECONDS = 0.5
CLAIM_NAME = re.compile(r"(\d+)(\.abandoned)?\.json")
COMMITTED, GIVEN_UP = "committed", "given up"


class ClaimUnreadable(RuntimeError):
    """An object under `_claims/` that is not a claim segpipe wrote."""


class ClaimExpired(RuntimeError):
    """This publisher held its claim past COMMIT_DEADLINE and gave it up instead of committing."""


@dataclass(frozen=True)
class Claim:
    sequence: int
    version: str
    run_id: str | None
    claimed: dt.datetime


@dataclass(frozen=True)
class HeldClaim:
    """A sequence this publisher won: it may commit `version` until `deadline` (time.monotonic())."""
    sequence: int
    version: str
    previous: dict | None  # the newest committed release's marker: the release before this one
    deadline: float


def claim_next_sequence(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, content_digest: str | None,
                        run_id: str | None, version_of: Callable[[int], str]) -> HeldClaim | dict:
    """The newest committed release's marker when it holds `content_digest` (nothing to publish),
    otherwise a claim on the next sequence, named `version_of(sequence)`. Without a content digest
    (`segpipe gc`, which publishes nothing) always a claim."""
    while True:
        newest = newest_release(fs, root, dataset_name)
        if newest is not None and content_digest is not None and newest["content_digest"] == content_digest:
            return newest
        claimed, abandoned = _claim_sequences(fs, root, dataset_name)
        settled_below = newest["sequence"] if newest is not None else 0
        pending = [_read_claim(fs, root, dataset_name, s) for s in sorted(claimed - abandoned) if s > settled_below]
        states = [_state(fs, root, dataset_name, claim) for claim in pending]
        if COMMITTED in states:
            continue  # a release committed since `newest` was read: read again
        unsettled = [claim for claim, state in zip(pending, states, strict=True) if state is None]
        if unsettled:
            if run_id is not None and unsettled[0].run_id == run_id:  # this run's earlier attempt, retried
                abandon(fs, root, dataset_name, unsettled[0].sequence, run_id, "a retry of the same run took over")
            else:
                _wait_until_settled(fs, root, dataset_name, unsettled[0])
            continue
        releases_dir = f"{root}/{keys.releases_dir(dataset_name)}"
        used = claimed | {version_sequence(name) for name in version_names(fs, releases_dir)}
        sequence = max(used, default=0) + 1
        claim = {"sequence": sequence, "version": version_of(sequence), "content_digest": content_digest,
                 "run_id": run_id, "claimed": dt.datetime.now(dt.UTC).isoformat()}
        body = orjson.dumps(claim, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        taken = create_only_bytes(fs, f"{root}/{keys.sequence_claim(dataset_name, sequence)}", body)
        if taken is not CreateOutcome.ALREADY_OTHER:  # ALREADY_SAME: our own write, retried
            return HeldClaim(sequence, claim["version"], newest, time.monotonic() + COMMIT_DEADLINE.total_seconds())


def abandon(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, sequence: int, run_id: str | None,
            reason: str) -> None:
    """Record that the claim on `sequence` will not be committed, so nobody waits for it."""
    body = orjson.dumps({"sequence": sequence, "run_id": run_id, "reason": reason,
                         "abandoned": dt.datetime.now(dt.UTC).isoformat()}, option=orjson.OPT_INDENT_2)
    create_only_bytes(fs, f"{root}/{keys.abandoned_claim(dataset_name, sequence)}", body)


def _claim_sequences(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str) -> tuple[set[int], set[int]]:
    """The sequences claimed, and those whose claim was given up."""
    folder = f"{root}/{keys.releases_dir(dataset_name)}/{keys.CLAIMS_DIR}"
    fs.invalidate_cache(folder)
    try:
        names = [path.rstrip("/").rsplit("/", 1)[-1] for path in fs.ls(folder, detail=False)]
    except FileNotFoundError:
        return set(), set()
    parsed = [m for m in map(CLAIM_NAME.fullmatch, names) if m is not None]
    return {int(m[1]) for m in parsed if not m[2]}, {int(m[1]) for m in parsed if m[2]}


def _read_claim(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, sequence: int) -> Claim:
    path = f"{root}/{keys.sequence_claim(dataset_name, sequence)}"
    try:
        body = orjson.loads(fs.cat_file(path))
        return Claim(sequence, body["version"], body.get("run_id"), dt.datetime.fromisoformat(body["claimed"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ClaimUnreadable(
            f"{path}: not a sequence claim segpipe wrote ({type(exc).__name__}: {exc}); publishing waits on it. "
            f"If no publisher is running, move it out of {keys.CLAIMS_DIR}/ and publish again") from exc


def _state(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, claim: Claim) -> str | None:
    """COMMITTED once its marker exists (whatever else), GIVEN_UP once abandoned or lapsed, else None: open."""
    if read_marker(fs, root, dataset_name, claim.version) is not None:
        return COMMITTED
    abandoned = f"{root}/{keys.abandoned_claim(dataset_name, claim.sequence)}"
    fs.invalidate_cache(abandoned.rsplit("/", 1)[0])
    if fs.exists(abandoned) or dt.datetime.now(dt.UTC) - claim.claimed > CLAIM_LAPSE:
        return GIVEN_UP
    return None


def _wait_until_settled(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, claim: Claim) -> None:
    """Another publisher holds the newest sequence: its release (or its failure) decides ours."""
    while _state(fs, root, dataset_name, claim) is None:
        time.sleep(CLAIM_POLL_SECONDS)


def remove_uncommitted_versions(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, now: dt.datetime,
                                max_age: dt.timedelta) -> list[str]:
    """Delete the version folders without a marker whose claim (if one names them) and newest object are
    older than `max_age`, and return them. `max_age` must exceed CLAIM_LAPSE: by then the claim has
    lapsed and its claimant's COMMIT_DEADLINE long passed, so it can no longer create the marker. A
    folder whose claim cannot be read is left alone, as publishing waits on such a claim anyway; one
    with no claim gets one, given up, before it goes, so its sequence stays used."""
    if max_age <= CLAIM_LAPSE:
        raise ValueError(
            f"uncommitted versions may be deleted only once their claims lapsed: {max_age} <= {CLAIM_LAPSE}")
    releases_dir = f"{root}/{keys.releases_dir(dataset_name)}"
    folders = _version_objects(fs, releases_dir)
    claimed, _ = _claim_sequences(fs, root, dataset_name)
    removed = []
    for name, objects in sorted(folders.items()):
        if keys.RELEASE_MARKER in objects or not _claim_older(fs, root, dataset_name, name, claimed, now, max_age):
            continue
        if any(now - modified <= max_age for modified in objects.values()):
            continue
        if read_marker(fs, root, dataset_name, name) is not None:  # committed since the listing
            continue
        if version_sequence(name) not in claimed:  # an attempt from before claims: claim it, so it is never reused
            _claim_for_removal(fs, root, dataset_name, name, max(objects.values(), default=now))
        folder = f"{releases_dir}/{name}"
        with contextlib.suppress(FileNotFoundError):  # SeaweedFS lists emptied prefixes as directories
            fs.rm(folder, recursive=True)
        removed.append(folder)
    return removed


def _version_objects(fs: fsspec.AbstractFileSystem, releases_dir: str) -> dict[str, dict[str, dt.datetime]]:
    """Each version folder's objects (relative name -> modification time), from one listing of the releases."""
    fs.invalidate_cache(releases_dir)
    if not fs.exists(releases_dir):
        return {}
    prefix = fs._strip_protocol(releases_dir).rstrip("/") + "/"
    listing = fs.find(releases_dir, detail=True)
    fs.invalidate_cache()  # s3fs's find caches the listing of every folder under the releases, which other
    # publishers go on writing: a later exists() must ask the store, not this listing
    folders: dict[str, dict[str, dt.datetime]] = {}
    for path, info in listing.items():
        name, _, rest = fs._strip_protocol(path)[len(prefix):].partition("/")
        if rest and version_sequence(name) is not None:
            folders.setdefault(name, {})[rest] = _modified(info)
    return folders


def _modified(info: dict) -> dt.datetime:
    """When an object was last written: `mtime` locally, `LastModified` on S3."""
    if "LastModified" in info:
        return info["LastModified"].astimezone(dt.UTC)
    return dt.datetime.fromtimestamp(float(info["mtime"]), dt.UTC)


def _claim_older(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, version: str, claimed: set[int],
                 now: dt.datetime, max_age: dt.timedelta) -> bool:
    """Whether the claim on the version's sequence, if one names this version, was made more than
    `max_age` before `now` (no claim: nothing to wait for; an unreadable one: never)."""
    sequence = version_sequence(version)
    if sequence not in claimed:
        return True
    try:
        claim = _read_claim(fs, root, dataset_name, sequence)
    except ClaimUnreadable:
        return False
    return claim.version != version or now - claim.claimed > max_age


def _claim_for_removal(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, version: str,
                       written: dt.datetime) -> None:
    """A claim, dated when the folder was last written, and its abandonment, for a version folder that
    has none; the abandonment first, so nobody ever waits on the claim."""
    sequence = version_sequence(version)
    abandon(fs, root, dataset_name, sequence, None, "removed by a later publisher: its files had no marker")
    claim = {"sequence": sequence, "version": version, "content_digest": None, "run_id": None,
             "claimed": written.isoformat()}
    create_only_bytes(fs, f"{root}/{keys.sequence_claim(dataset_name, sequence)}",
                      orjson.dumps(claim, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
