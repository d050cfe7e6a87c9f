"""A dataset's shared release parts in the store (`releases/<dataset>/parts/<sha256>.zip`).

A part is named by its member list (core/release/parts.py), so a build that needs a part of that
name uses the stored one as it is: one the newest release lists is taken on its marker's word
(SHA-256 and size, the size checked), any other is read and checked file by file first. A part the
store lacks is written into a staging dir of its own, verified there like every staged file, and
created create-only under its name; a part someone else created meanwhile is checked the same way.
An object under a part's name that does not hold the files the name promises is never used nor
overwritten (PartCorrupt). Parts are created before the sequence claim, so the claim is not held
while they are uploaded; `segpipe gc` spares a part younger than its grace period, and the
publisher checks, after its claim, that every part its version uses is still there.
"""

import contextlib
import datetime as dt
import io
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from typing import BinaryIO

import fsspec
import polars as pl

from segpipe.core.release.packaging import ZipRecords
from segpipe.core.release.parts import KnownMembers, PlannedMember, known_members
from segpipe.core.release.verify import MEMBER_ERRORS, member_sha256
from segpipe.store import keys
from segpipe.store.create_only import CreateOutcome, create_only_from, object_sha256
from segpipe.store.listing import stored_files
from segpipe.store.release_read import newest_release, read_release_file
from segpipe.store.staging import ReleaseStaging


class PartCorrupt(RuntimeError):
    """An object under a part's name does not hold the files its name promises."""


class PartMissing(RuntimeError):
    """A part the version uses is gone (or changed size) when the version is about to be committed."""


def previous_members(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str) -> tuple[dict | None, KnownMembers]:
    """The newest committed release's marker and what its member index says of its items' files
    (checked against the marker); nothing for a release without one (release format 1)."""
    newest = newest_release(fs, root, dataset_name)
    if newest is None or keys.RELEASE_MEMBERS not in newest.get("files", {}):
        return newest, {}
    index = pl.read_parquet(io.BytesIO(read_release_file(fs, root, newest, keys.RELEASE_MEMBERS)))
    return newest, known_members(index)


class EarlierArchive:
    """The newest release's own ZIP, read a member at a time (ZipRecords, parts.EarlierBytes): a one-ZIP
    build copies the items' files it holds instead of making them again, each only once it hashes as
    that release's member index says. A ZIP that is gone or unreadable, or a member damaged, gives
    nothing, and the file is made as it would have been."""

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, marker: dict | None) -> None:
        self._opened = contextlib.ExitStack()
        self._records: ZipRecords | None = None
        name = None if marker is None else keys.archive_name(marker["dataset"], marker["version"])
        if name is None or name not in marker.get("files", {}):
            return
        try:
            stream = self._opened.enter_context(fs.open(f"{root}/{keys.release_prefix(marker['dataset'], marker['version'])}/{name}", "rb"))
            self._records = ZipRecords(self._opened.enter_context(zipfile.ZipFile(stream)))
        except (FileNotFoundError, *MEMBER_ERRORS):
            self._records = None

    def read(self, path: str) -> tuple[bytes, zipfile.ZipInfo, bytes] | None:
        return None if self._records is None else self._records.read(path)

    def close(self) -> None:
        self._opened.close()


class StoreShelf:
    """The parts folder of one dataset, as a build's PartShelf. `used` holds the SHA-256 and size of
    every part the build uses, for its marker; `staging` the parts it wrote, until placed."""

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, staging: ReleaseStaging,
                 trusted: Mapping[str, dict]) -> None:
        self.fs, self.root, self.dataset_name = fs, root, dataset_name
        self.staging, self.trusted = staging, trusted
        self.used: dict[str, dict] = {}
        self.members: dict[str, Sequence[PlannedMember]] = {}
        self._stored: dict[str, int] | None = None  # the parts folder, listed at the first part asked for

    def key(self, name: str) -> str:
        return f"{self.root}/{keys.release_part(self.dataset_name, name)}"

    def holds(self, name: str, members: Sequence[PlannedMember]) -> bool:
        """Whether the part is stored (by one listing of the folder for all the parts a build asks for:
        a request a part would cost a nightly hundreds of round trips to S3). A part created by another
        publisher since is written as new, and its create then finds and checks theirs (place)."""
        if self._stored is None:
            self._stored = stored_part_sizes(self.fs, self.root, self.dataset_name)
        size = self._stored.get(name)
        if size is None:
            return False
        recorded = self.trusted.get(name)
        if recorded is not None and recorded.get("size") == size:
            self.used[name] = {"sha256": recorded["sha256"], "size": size}
        else:
            self.used[name] = adopt_part(self.fs, self.key(name), members)
        return True

    @contextlib.contextmanager
    def create(self, name: str, members: Sequence[PlannedMember]) -> Iterator[BinaryIO]:
        with self.staging.open(name) as out:
            yield out
        self.members[name] = members

    def place(self) -> list[str]:
        """Create every part written (and verified) in staging under its name; the names created."""
        created = []
        for name in sorted(self.staging.sha256):
            digest, size = self.staging.sha256[name], self.staging.sizes[name]
            outcome = create_only_from(self.fs, self.key(name), f"{self.staging.path}/{name}", digest)
            if outcome is CreateOutcome.ALREADY_OTHER:  # another publisher's copy: the same files, other bytes?
                self.used[name] = adopt_part(self.fs, self.key(name), self.members[name])
            else:
                self.used[name] = {"sha256": digest, "size": size}
                created.append(name)
        return created


def adopt_part(fs: fsspec.AbstractFileSystem, key: str, members: Sequence[PlannedMember]) -> dict:
    """The SHA-256 and size of a stored part no marker vouches for, once it is read and found to hold
    exactly `members`, byte for byte."""
    problem = part_problem(fs, key, {m.path: m.sha256 for m in members})
    if problem is not None:
        raise PartCorrupt(
            f"{key}: {problem}, so it is not used and not overwritten. If a committed version uses it, restore it "
            f"from a copy that matches (a backup or the bucket's object versions); if none does, delete it. Then "
            f"publish again")
    return {"sha256": object_sha256(fs, key), "size": fs.size(key)}


def part_problem(fs: fsspec.AbstractFileSystem, key: str, expected: Mapping[str, str]) -> str | None:
    """What keeps the part at `key` from holding exactly `expected` (path -> SHA-256); None when it does."""
    try:
        with fs.open(key, "rb") as f, zipfile.ZipFile(f) as archive:
            names = archive.namelist()
            if sorted(names) != sorted(expected):
                extra, lacking = sorted(set(names) - set(expected)), sorted(set(expected) - set(names))
                return f"holds other files than its name promises (extra {extra[:3]}, lacking {lacking[:3]})"
            for name in names:
                if (found := member_sha256(archive, name)) != expected[name]:
                    return f"{name} has SHA-256 {found}, its name promises {expected[name]}"
    except (zipfile.BadZipFile, *MEMBER_ERRORS) as exc:
        return f"is not a readable ZIP ({type(exc).__name__}: {exc})"
    return None


def stored_part_sizes(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str) -> dict[str, int]:
    """Every stored part's name and size, as the store lists them now."""
    return {key.rsplit("/", 1)[-1]: int(entry["size"])
            for key, entry in stored_files(fs, root, keys.parts_dir(dataset_name)).items()}


def check_parts_present(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, parts: Mapping[str, dict]) -> None:
    """Every part a version is about to commit is stored with the size recorded: a part deleted by
    `segpipe gc` (or by hand) since the build found it stops the commit. One listing of the parts
    folder, read now, answers for all of them."""
    stored = stored_part_sizes(fs, root, dataset_name) if parts else {}
    for name, recorded in sorted(parts.items()):
        key = f"{root}/{keys.release_part(dataset_name, name)}"
        size = stored.get(name)
        if size != recorded["size"]:
            found = "gone" if size is None else f"{size} bytes, not {recorded['size']}"
            raise PartMissing(
                f"{key}: the new version uses this part, but it is {found}: it was deleted (by `segpipe gc`, or by "
                f"hand) while the release was built. Build again: the next build writes it anew")


def part_ages(fs: fsspec.AbstractFileSystem, root: str, dataset_name: str, now: dt.datetime) -> dict[str, dt.timedelta]:
    """Every stored part's name and age, by the store's modification time."""
    folder = f"{root}/{keys.parts_dir(dataset_name)}"
    fs.invalidate_cache(folder)
    try:
        entries = fs.ls(folder, detail=True)
    except FileNotFoundError:
        return {}
    ages = {}
    for entry in entries:
        if entry.get("type") != "file":
            continue
        name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
        ages[name] = now - modified_time(fs, entry)
    return ages


def modified_time(fs: fsspec.AbstractFileSystem, entry: dict) -> dt.datetime:
    """When a listed object was last written, whichever store listed it."""
    stamp = entry.get("LastModified") or entry.get("mtime")
    if stamp is None:
        stamp = fs.modified(entry["name"])
    if isinstance(stamp, (int, float)):
        return dt.datetime.fromtimestamp(stamp, dt.UTC)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
