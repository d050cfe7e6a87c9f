"""`segpipe gc`: a dataset's releases pruned by the retention rule, and the parts no kept version uses deleted.

The rule (pipeline.yaml `release`): keep the `keep_last` newest committed versions (every one when
unset), the version latest.json names, and the versions in `keep`. Every other committed version
is retired: its `_RELEASE.json` goes first, so the version disappears at once rather than
partly, then the rest of its folder (what an interrupted retirement leaves is a folder without a
marker, which the publishers' janitor deletes, see claims.remove_uncommitted_versions). Then every
part under `parts/` that no kept version lists is deleted, once it is older than the grace period.

Safe while others publish: the collector claims the next release sequence as a publisher does
(claims.py) and gives the claim up when done, so the sequence holds no release. Holding it, every
sequence below is settled, so it sees every release committed, and no publisher is between its
claim and its commit; a publisher that claims later waits until the collector is done. A
publisher writes its new parts before its claim: the grace period spares them (they are younger),
and after its claim the publisher checks that every part its version lists is still there (a part
an older version alone used, retired meanwhile, stops it with PartMissing rather than committing
a version that lacks it). A collector that has held its claim for COMMIT_DEADLINE stops deleting.
"""

import contextlib
import datetime as dt
import time
import uuid
from dataclasses import dataclass, field

import fsspec

from segpipe.store import keys
from segpipe.store.claims import HeldClaim, abandon, claim_next_sequence
from segpipe.store.probe import require_create_only
from segpipe.store.pointer import read_pointer
from segpipe.store.release_parts import part_ages
from segpipe.store.release_read import list_releases


@dataclass(frozen=True)
class Retention:
    keep_last: int | None  # None: every version
    keep: tuple[str, ...]  # versions kept whatever keep_last says
    grace: dt.timedelta  # an unused part younger than this is spared


@dataclass
class Collection:
    kept: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)  # committed versions deleted
    parts_deleted: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    parts_spared: list[str] = field(default_factory=list)  # unused, but younger than the grace period
    stopped: bool = False  # the claim was held past its deadline: what is left waits for the next run


def collect_garbage(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, retention: Retention,
                    now: dt.datetime | None = None, dry_run: bool = False) -> Collection:
    """Apply `retention` to the dataset's releases (with `dry_run`, only say what would go)."""
    now = now or dt.datetime.now(dt.UTC)
    if dry_run:
        return _collect(fs, root, dataset_name, retention, now, None, None)
    require_create_only(fs, root)
    run_id = f"gc-{uuid.uuid4().hex[:12]}"
    held = claim_next_sequence(fs, root, dataset_name, None, run_id, lambda sequence: f"_gc-{sequence}")
    assert isinstance(held, HeldClaim)  # no content digest: always a claim
    try:
        return _collect(fs, root, dataset_name, retention, now, held, run_id)
    finally:
        abandon(fs, root, dataset_name, held.sequence, run_id, "garbage collection: this sequence holds no release")


def _collect(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, retention: Retention, now: dt.datetime,
             held: HeldClaim | None, run_id: str | None) -> Collection:
    releases_dir = f"{root}/{keys.releases_dir(dataset_name)}"
    markers = list_releases(fs, root, dataset_name)
    pointer = read_pointer(fs, f"{releases_dir}/{keys.LATEST_POINTER}")
    newest_kept = [m["version"] for m in markers[-retention.keep_last:]] if retention.keep_last else \
        [m["version"] for m in markers]
    kept = {*newest_kept, *retention.keep, *([pointer["version"]] if pointer else [])}
    done = Collection(kept=[m["version"] for m in markers if m["version"] in kept])
    used = {name for m in markers if m["version"] in kept for name in m.get("parts", {})}
    for marker in markers:
        if marker["version"] in kept:
            continue
        if not _in_time(held, done):
            return done
        if held is not None:
            _retire(fs, f"{releases_dir}/{marker['version']}")
        done.retired.append(marker["version"])
    for name, age in sorted(part_ages(fs, root, dataset_name, now).items()):
        if name in used:
            continue
        if age < retention.grace:
            done.parts_spared.append(name)
            continue
        if not _in_time(held, done):
            return done
        key = f"{root}/{keys.release_part(dataset_name, name)}"
        size = fs.size(key)
        if held is not None:
            fs.rm_file(key)
        done.parts_deleted.append(name)
        done.bytes_freed += size
    return done


def _retire(fs: fsspec.AbstractFileSystem, folder: str) -> None:
    """The marker first: from then on the version is gone for every reader, whatever is left of it."""
    marker = f"{folder}/{keys.RELEASE_MARKER}"
    if fs.exists(marker):
        fs.rm_file(marker)
    fs.invalidate_cache(folder)
    for path in fs.find(folder):
        fs.rm_file(path)
    with contextlib.suppress(FileNotFoundError):  # SeaweedFS lists an emptied prefix as a folder
        fs.rm(folder, recursive=True)


def _in_time(held: HeldClaim | None, done: Collection) -> bool:
    if held is not None and time.monotonic() > held.deadline:
        done.stopped = True
        return False
    return True
