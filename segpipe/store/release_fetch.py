"""Getting a committed version out of the store: unzipped into a folder (`segpipe fetch`), or as one
self-contained ZIP (`segpipe pack`).

Each ZIP of the version (its own and every shared part `_RELEASE.json` lists) is downloaded once
into a temporary folder beside the destination, hashed on the way and compared with the SHA-256
the marker recorded; a mismatch stops before anything is unzipped. The result is then checked as
`segpipe verify` checks a release (every file against SHA256SUMS, the manifest, meta.json, a
sample of masks), and only a result that passes appears under its name: a fetch or pack that fails
leaves nothing behind. A release published as one ZIP (release format 1, or a small one of format
2) is fetched the same way and packed by copying its ZIP.
"""

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import fsspec
import orjson
import polars as pl

from segpipe.core.release.assemble import LayoutRefused, assemble_layout
from segpipe.core.release.packaging import ZipPackager
from segpipe.core.release.verify import FolderFiles, Verification, verify_release, verify_release_file
from segpipe.core.release.writers import Deferred, Member
from segpipe.store import keys
from segpipe.store.release_check import part_label, part_path

CHUNK = 1 << 20


class FetchRefused(RuntimeError):
    """The version cannot be fetched or packed as asked: no such version, a destination in the way,
    a ZIP that does not match its marker, a member that would land outside the folder."""


@dataclass(frozen=True)
class Fetched:
    version: str
    archives: int  # ZIPs downloaded and checked against _RELEASE.json
    files: int  # files written (fetch) or packed (pack)
    verification: Verification  # the result checked as `segpipe verify` does
    assembled: dict[str, int] = field(default_factory=dict)  # layout -> files fetch assembled (fetch --layout)


def version_path(fs: fsspec.AbstractFileSystem, root: str, dataset: str, version: str) -> str:
    """The folder of `version` ("latest": the one latest.json names) of `dataset` under `root`."""
    if version == "latest":
        pointer = f"{root}/{keys.releases_dir(dataset)}/{keys.LATEST_POINTER}"
        try:
            version = orjson.loads(fs.cat_file(pointer))["version"]
        except FileNotFoundError:
            raise FetchRefused(f"{pointer}: missing: {dataset} has no release yet") from None
    return f"{root}/{keys.release_prefix(dataset, version)}"


def fetch_release(fs: fsspec.AbstractFileSystem, path: str, into: Path, mask_sample: int = 64,
                  layouts: Sequence[str] = ()) -> Fetched:
    """Unzip the version in `path` into the new folder `into`, checked, and assemble `layouts` in it
    (assemble.py), each assembled file checked against the members it is made of."""
    if into.exists() and (not into.is_dir() or any(into.iterdir())):
        raise FetchRefused(f"{into}: exists and is not an empty folder; fetch into a new one")
    marker = _marker(fs, path)
    into.parent.mkdir(parents=True, exist_ok=True)
    with _downloads(fs, path, marker, into.parent) as archives:
        work = Path(tempfile.mkdtemp(dir=into.parent, prefix=f".{into.name}.fetching-"))
        try:
            files = sum(_unzip(archive, label, work) for label, archive in archives)
            verification = verify_release(FolderFiles(work), mask_sample)
            if verification.problems:
                raise FetchRefused("; ".join(f"{p.member}: {p.problem}" for p in verification.problems[:5]))
            assembled = _assemble(work, layouts)
            if into.exists():
                into.rmdir()
            os.replace(work, into)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    return Fetched(marker["version"], len(archives), files, verification, assembled)


def _assemble(work: Path, layouts: Sequence[str]) -> dict[str, int]:
    """Assemble each layout in the verified folder, then check what was assembled (members were
    hashed by the verification before: only their presence is checked again)."""
    if not layouts:
        return {}
    try:
        assembled = {name: assemble_layout(work, name) for name in dict.fromkeys(layouts)}
    except LayoutRefused as exc:
        raise FetchRefused(str(exc)) from None
    problems = verify_release(FolderFiles(work), mask_sample=0, hashed=lambda _: False).problems
    if problems:
        raise FetchRefused("; ".join(f"{p.member}: {p.problem}" for p in problems[:5]))
    return assembled


def pack_release(fs: fsspec.AbstractFileSystem, path: str, out: Path, mask_sample: int = 64) -> Fetched:
    """Write the version in `path` as the one ZIP `out`, its files in the order a one-ZIP release
    holds them (members.parquet), checked."""
    marker = _marker(fs, path)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")[1])
    try:
        with _downloads(fs, path, marker, out.parent) as archives:
            holders = dict(archives)
            order = _member_order(fs, path, marker, archives)
            with partial.open("wb") as f, ZipPackager(f) as packager:
                for name, holder, expected in order:
                    archive = holders[holder]
                    info = archive.getinfo(name)
                    found = packager.add(Member(name, Deferred(lambda a=archive, n=name: a.read(n)),
                                                compress=info.compress_type != zipfile.ZIP_STORED))
                    if expected is not None and found != expected:
                        raise FetchRefused(f"{holder}: {name}: SHA-256 is {found}, {keys.RELEASE_MEMBERS} says {expected}")
        with partial.open("rb") as f:
            verification = verify_release_file(f, mask_sample)
        if verification.problems:
            raise FetchRefused("; ".join(f"{p.member}: {p.problem}" for p in verification.problems[:5]))
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return Fetched(marker["version"], len(archives), len(order), verification)


def _marker(fs: fsspec.AbstractFileSystem, path: str) -> dict:
    key = f"{path.rstrip('/')}/{keys.RELEASE_MARKER}"
    fs.invalidate_cache(path)
    try:
        return orjson.loads(fs.cat_file(key))
    except FileNotFoundError:
        raise FetchRefused(f"{key}: missing: no committed release there (`segpipe releases` lists them)") from None


@contextlib.contextmanager
def _downloads(fs: fsspec.AbstractFileSystem, path: str, marker: dict,
               near: Path) -> Iterator[list[tuple[str, zipfile.ZipFile]]]:
    """The version's own ZIP and its parts, downloaded into a temporary folder in `near`, each checked
    against the SHA-256 its marker recorded, opened."""
    archive_name = keys.archive_name(marker["dataset"], marker["version"])
    wanted = [(archive_name, f"{path.rstrip('/')}/{archive_name}", marker["files"].get(archive_name)),
              *((part_label(name), part_path(path, name), recorded["sha256"])
                for name, recorded in sorted(marker.get("parts", {}).items()))]
    with tempfile.TemporaryDirectory(dir=near, prefix=".segpipe-download-") as folder, \
            contextlib.ExitStack() as opened:
        archives = []
        for n, (label, key, expected) in enumerate(wanted):
            local = Path(folder) / f"{n}.zip"
            found = _download(fs, key, local)
            if found != expected:
                raise FetchRefused(f"{key}: SHA-256 is {found}, {keys.RELEASE_MARKER} says {expected}: the object "
                                   f"changed after it was published; restore it from a copy that matches")
            archives.append((label, opened.enter_context(zipfile.ZipFile(local))))
        yield archives


def _download(fs: fsspec.AbstractFileSystem, key: str, local: Path) -> str:
    digest = hashlib.sha256()
    try:
        with fs.open(key, "rb") as source, local.open("wb") as target:
            for block in iter(lambda: source.read(CHUNK), b""):
                digest.update(block)
                target.write(block)
    except FileNotFoundError:
        raise FetchRefused(f"{key}: listed in {keys.RELEASE_MARKER} but missing") from None
    return digest.hexdigest()


def _unzip(archive: zipfile.ZipFile, label: str, into: Path) -> int:
    """Extract every member into `into`; a member named outside it, or one already there from another
    ZIP, stops the fetch."""
    for info in archive.infolist():
        parts = PurePosixPath(info.filename).parts
        if info.filename.startswith("/") or ".." in parts or "\\" in info.filename or not parts:
            raise FetchRefused(f"{label}: {info.filename!r} would be written outside the folder")
        target = into.joinpath(*parts)
        if target.exists():
            raise FetchRefused(f"{label}: {info.filename} is held by two of the release's ZIPs")
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as source, target.open("wb") as f:
            shutil.copyfileobj(source, f, CHUNK)
    return len(archive.infolist())


def _member_order(fs: fsspec.AbstractFileSystem, path: str, marker: dict,
                  archives: list[tuple[str, zipfile.ZipFile]]) -> list[tuple[str, str, str | None]]:
    """(path, label of the ZIP holding it, SHA-256 or None) of every file, in the one-ZIP order: by
    members.parquet (checked against the marker), or the ZIPs' own order for a release without one."""
    expected = marker["files"].get(keys.RELEASE_MEMBERS)
    if expected is None:
        return [(name, label, None) for label, archive in archives for name in archive.namelist()]
    data = fs.cat_file(f"{path.rstrip('/')}/{keys.RELEASE_MEMBERS}")
    if (found := hashlib.sha256(data).hexdigest()) != expected:
        raise FetchRefused(f"{path}/{keys.RELEASE_MEMBERS}: SHA-256 is {found}, {keys.RELEASE_MARKER} says {expected}: "
                           "the object changed after it was published; restore it from a copy that matches")
    archive_name = archives[0][0]
    index = pl.read_parquet(io.BytesIO(data))
    return [(name, part_label(part) if part else archive_name, sha256)
            for name, part, sha256 in index.select("path", "part", "sha256").iter_rows()]
