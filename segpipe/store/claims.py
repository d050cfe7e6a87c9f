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
"""

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
