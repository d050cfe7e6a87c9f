"""Checking a downloaded release against itself: its checksums, its manifest and its meta.json.

Anyone who has the release can run this; it needs nothing but its files: one ZIP, the version's
ZIP and its parts read together (PartedFiles), or the folder they unzip into (FolderFiles). Every
problem is a value naming the member and what is wrong, so one run reports all of them: a member
that cannot be read (a damaged deflate stream, a bad header) is a problem of that member, never an
exception. Members are hashed in chunks, so memory does not grow with the archive.
"""

import hashlib
import io
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, Protocol

import numpy as np
import orjson
import pandera.errors
import polars as pl
from zlib_ng import zlib_ng

from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.core.release.assemble import assembled_paths, layout_problems
from segpipe.core.release.layout import DATASHEET, SHA256SUMS
from segpipe.core.release.writers.manifest import MANIFEST_COLUMNS, MANIFEST_TYPES
from segpipe.core.shared.hashing_writer import BackgroundSha256
from segpipe.core.shared.schemas import ManifestRecord

CHUNK = 1 << 20
SUM_LINE = re.compile(r"([0-9a-f]{64})  (.+)")
MARKDOWN_IMAGE = re.compile(r"!\[(?:\\.|[^\]\\])*\]\(([^)\s]+)\)")  # ![alt, \] escaped](path): the path
# What reading one member can raise when its bytes are damaged: a bad local header (BadZipFile,
# struct.error), a broken deflate stream (zlib.error, EOFError), a flag or method it cannot
# handle (NotImplementedError, RuntimeError for "encrypted"), or the store failing (OSError).
MEMBER_ERRORS = (zipfile.BadZipFile, zlib.error, zlib_ng.error, struct.error, EOFError, OSError, NotImplementedError,
                 RuntimeError)
ARCHIVE = "(archive)"  # the problem is the ZIP as a whole, not one member
END_RECORD = "(end of central directory)"
END_SIGNATURE = b"PK\x05\x06"
END_RECORD_BYTES = 22
LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # a ZIP member's local header, its name and extra lengths last
LOCAL_SIGNATURE = b"PK\x03\x04"
ENCRYPTED = 0x1  # a member's flag bit
MISSING_NAMED = 5  # members missing from the files checked named one by one; the rest counted in one line


class ReleaseFiles(Protocol):
    """A release's files by path, as zipfile.ZipFile reads them."""

    def namelist(self) -> list[str]: ...

    def open(self, name: str) -> IO[bytes]: ...

    def read(self, name: str) -> bytes: ...


class PartedFiles:
    """Several ZIPs read as one release (the version's ZIP and its parts): a member's place is its
    first holder; a path two of them hold is in `duplicates`."""

    def __init__(self, archives: Sequence[tuple[str, zipfile.ZipFile]]) -> None:
        self.holders: dict[str, tuple[str, zipfile.ZipFile]] = {}
        self.duplicates: list[str] = []
        for label, archive in archives:
            for name in archive.namelist():
                if name in self.holders:
                    self.duplicates.append(name)
                else:
                    self.holders[name] = (label, archive)

    def namelist(self) -> list[str]:
        return list(self.holders)

    def open(self, name: str) -> IO[bytes]:
        return self.holders[name][1].open(name)

    def read(self, name: str) -> bytes:
        return self.holders[name][1].read(name)

    def holder(self, name: str) -> str | None:
        """The label of the ZIP holding `name`."""
        return self.holders[name][0] if name in self.holders else None


class FolderFiles:
    """An unzipped release: every file under `root`, by its path relative to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def namelist(self) -> list[str]:
        return list(self._names)

    def open(self, name: str) -> IO[bytes]:
        if name not in self._names:
            raise KeyError(name)
        return (self.root / name).open("rb")

    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            return f.read()


@dataclass(frozen=True)
class ReleaseProblem:
    member: str  # the file inside the ZIP the problem is about, or ARCHIVE, or END_RECORD
    problem: str


@dataclass(frozen=True)
class Verification:
    problems: list[ReleaseProblem]
    files_checked: int
    images: int
    masks_decoded: int


def verify_release_file(f: BinaryIO, mask_sample: int = 64) -> Verification:
    """verify_release on the ZIP in the seekable file `f`, after checking that its end record ends
    the file; an archive that does not open is one problem."""
    problems = end_record_problems(f)
    f.seek(0)
    try:
        archive = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, struct.error, EOFError, OSError, ValueError) as exc:
        return Verification([*problems, ReleaseProblem(ARCHIVE, f"not a readable ZIP archive: {exc}")], 0, 0, 0)
    with archive:
        result = verify_release(archive, mask_sample)
    return Verification([*problems, *result.problems], result.files_checked, result.images, result.masks_decoded)


def end_record_problems(f: BinaryIO) -> list[ReleaseProblem]:
    """The end-of-central-directory record must end the file. zipfile opens an archive whose record
    declares a comment running past the end, or that has bytes after it, so a damaged or appended
    tail would otherwise pass unseen (segpipe writes no comment)."""
    size = f.seek(0, io.SEEK_END)
    span = min(size, END_RECORD_BYTES + 0xFFFF)
    f.seek(size - span)
    tail = f.read(span)
    at = tail.rfind(END_SIGNATURE)
    if at < 0 or span - at < END_RECORD_BYTES:
        return [ReleaseProblem(END_RECORD, "missing: the archive is cut short or is not a ZIP")]
    declared, follows = struct.unpack_from("<H", tail, at + 20)[0], span - at - END_RECORD_BYTES
    if declared != follows:
        return [ReleaseProblem(END_RECORD, f"declares a {declared}-byte comment but {follows} bytes follow it: "
                                           "the end of the archive was altered, cut or appended to")]
    return []


def verify_release(archive: ReleaseFiles, mask_sample: int = 64, hashed: Callable[[str], bool] | None = None,
                   ) -> Verification:
    """Every member against SHA256SUMS (the files `segpipe fetch --layout` assembles against the members
    they are made of, assemble.layout_problems; with `hashed`, the SHA-256 only of those it accepts, the others
    only for being there); index.csv against the manifest schema and index.parquet, the files it names
    and meta.json's split sizes and image sizes; meta.json's ledger counts add up; a sample of masks (spread over the manifest) decoded against
    meta.json's classes and the manifest's size and pixel counts; every picture the datasheet shows is a member."""
    problems, files_checked = _check_sums(archive, hashed)
    problems += _check_datasheet_pictures(archive)
    meta, manifest = _read_meta(archive, problems), _read_manifest(archive, problems)
    decoded = 0
    if meta is not None and manifest is not None:
        problems += _check_counts(archive, meta, manifest)
        count = min(mask_sample, manifest.height)  # exactly that many, spread evenly over the manifest
        sample = manifest.sort("mask_path")[[i * manifest.height // count for i in range(count)]]
        present = set(archive.namelist())
        problems += [p for row in sample.iter_rows(named=True) for p in _check_mask(archive, meta, row, present)]
        decoded = sample.height
    return Verification(problems, files_checked, 0 if manifest is None else manifest.height, decoded)


def archive_problems(archive: zipfile.ZipFile) -> list[str]:
    """verify_release as the publisher's check on a staged archive: each problem as one line."""
    return [f"{p.member}: {p.problem}" for p in verify_release(archive, mask_sample=16).problems]


def member_sha256(archive: ReleaseFiles, name: str) -> str:
    zipped = _zip_holding(archive, name)
    if zipped is not None:
        info = zipped.getinfo(name)
        if info.compress_type == zipfile.ZIP_DEFLATED and not info.flag_bits & ENCRYPTED:
            return _inflated_sha256(zipped, info)
    digest = hashlib.sha256()
    with archive.open(name) as member:
        while chunk := member.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _zip_holding(archive: ReleaseFiles, name: str) -> zipfile.ZipFile | None:
    if isinstance(archive, zipfile.ZipFile):
        return archive
    if isinstance(archive, PartedFiles):
        return archive.holders[name][1]
    return None


def _inflated_sha256(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    """The SHA-256 of a deflated member, inflated by zlib-ng rather than zipfile's zlib: about twice
    as fast, and coco.json is hundreds of MB at 10,000 scenes (hashed on another thread while the
    next piece is inflated, and its CRC-32 taken by zlib-ng). The local header, the stream's end,
    the CRC-32 and the size are checked as zipfile checks them; at most CHUNK bytes are inflated at
    a time, so a member that inflates far beyond its size costs no memory."""
    archive.fp.seek(info.header_offset)
    header = archive.fp.read(LOCAL_HEADER.size)
    if len(header) != LOCAL_HEADER.size or header[:4] != LOCAL_SIGNATURE:
        raise zipfile.BadZipFile(f"bad local file header at byte {info.header_offset}")
    name_length, extra_length = LOCAL_HEADER.unpack(header)[-2:]
    archive.fp.seek(info.header_offset + LOCAL_HEADER.size + name_length + extra_length)
    inflater, digest = zlib_ng.decompressobj(-zlib.MAX_WBITS), BackgroundSha256()
    crc, size, left = 0, 0, info.compress_size
    pending = b""
    while left or pending:
        if not pending:
            pending = archive.fp.read(min(CHUNK, left))
            if not pending:
                raise EOFError(f"the archive ends {left} bytes into the member's data")
            left -= len(pending)
        data = inflater.decompress(pending, CHUNK)
        pending = inflater.unconsumed_tail
        digest.update(data)
        crc, size = zlib_ng.crc32(data, crc), size + len(data)
        if size > info.file_size:
            break
    else:
        data = inflater.flush()  # what the last bounded call held back
        digest.update(data)
        crc, size = zlib_ng.crc32(data, crc), size + len(data)
    if not inflater.eof or size != info.file_size or crc != info.CRC:
        raise zipfile.BadZipFile(f"inflates to {size:,} bytes (CRC-32 {crc:08x}, the stream "
                                 f"{'ended' if inflater.eof else 'cut short'}), the directory says "
                                 f"{info.file_size:,} (CRC-32 {info.CRC:08x})")
    return digest.hexdigest()


def _check_sums(archive: ReleaseFiles, hashed: Callable[[str], bool] | None) -> tuple[list[ReleaseProblem], int]:
    names = archive.namelist()
    if SHA256SUMS not in names:
        return [ReleaseProblem(SHA256SUMS, "missing: the release cannot be checked")], 0
    problems: list[ReleaseProblem] = []
    sums = _read_member(archive, SHA256SUMS, problems)
    if sums is None:
        return problems, 0
    try:
        text = sums.decode()
    except UnicodeDecodeError as exc:
        return [ReleaseProblem(SHA256SUMS, f"not UTF-8 text ({exc}): the release cannot be checked")], 0
    listed = {}
    for number, line in enumerate(text.splitlines(), start=1):
        parsed = SUM_LINE.fullmatch(line)
        if parsed is None:
            problems.append(ReleaseProblem(SHA256SUMS, f"line {number} is not '<sha256>  <path>': {line[:80]!r}"))
        else:
            listed[parsed[2]] = parsed[1]
    unlisted = sorted(set(names) - set(listed) - {SHA256SUMS})
    assembled = _assembled(archive, names, unlisted, problems)
    for name in unlisted:
        if name not in assembled:
            problems.append(ReleaseProblem(name, "not listed in SHA256SUMS"))
        elif (data := _read_member(archive, name, problems)) is not None:
            problems += [ReleaseProblem(name, p) for p in layout_problems(name, assembled[name], data, listed)]
    present = set(names)
    missing = sorted(set(listed) - present)
    problems += missing_problems(missing, "listed in SHA256SUMS but missing from the archive")
    checked = 0
    for name, expected in sorted(listed.items()):
        if name not in present or (hashed is not None and not hashed(name)):
            continue
        checked += 1
        try:
            actual = member_sha256(archive, name)
        except MEMBER_ERRORS as exc:
            problems.append(ReleaseProblem(name, f"unreadable: {exc}"))
            continue
        if actual != expected:
            problems.append(ReleaseProblem(name, f"SHA-256 is {actual}, SHA256SUMS says {expected}"))
    return problems, checked


def _assembled(archive: ReleaseFiles, names: list[str], unlisted: list[str],
               problems: list[ReleaseProblem]) -> dict[str, str]:
    """The files SHA256SUMS does not list that `segpipe fetch --layout` assembled (assemble.py)."""
    if not unlisted:
        return {}
    try:
        return assembled_paths(names, archive.read)
    except (*MEMBER_ERRORS, KeyError, ValueError) as exc:
        problems.append(ReleaseProblem(ARCHIVE, f"an export's images.csv is unreadable: {exc}"))
        return {}


def missing_problems(missing: Sequence[str], problem: str) -> list[ReleaseProblem]:
    """One problem per missing member up to MISSING_NAMED, then one counting the rest: the version's
    ZIP of a release in parts, checked alone, misses every file of its parts."""
    named = [ReleaseProblem(name, problem) for name in missing[:MISSING_NAMED]]
    if len(missing) > MISSING_NAMED:
        named.append(ReleaseProblem(ARCHIVE, f"{len(missing) - MISSING_NAMED} more files {problem.split(' but ')[0]} "
                                             "are missing too. A version's ZIP of a release in parts (meta.json's "
                                             "release_format 2) holds only part of its files: check the release "
                                             "folder, or the folder `segpipe fetch` writes"))
    return named


def _check_datasheet_pictures(archive: ReleaseFiles) -> list[ReleaseProblem]:
    """The datasheet's pictures are members, so the README shows what the release holds (a release
    without a datasheet has nothing to check here; SHA256SUMS says whether one is missing)."""
    if DATASHEET not in archive.namelist():
        return []
    problems: list[ReleaseProblem] = []
    if (data := _read_member(archive, DATASHEET, problems)) is None:
        return problems
    present = set(archive.namelist())
    return [ReleaseProblem(DATASHEET, f"shows the picture {path}, which the archive does not hold")
            for path in MARKDOWN_IMAGE.findall(data.decode(errors="replace")) if path not in present]


def _read_member(archive: ReleaseFiles, name: str, problems: list[ReleaseProblem]) -> bytes | None:
    """A member's bytes, or None with the reason added to `problems`."""
    try:
        return archive.read(name)
    except KeyError:
        problems.append(ReleaseProblem(name, "missing"))
    except MEMBER_ERRORS as exc:
        problems.append(ReleaseProblem(name, f"unreadable: {exc}"))
    return None


def _read_meta(archive: ReleaseFiles, problems: list[ReleaseProblem]) -> dict | None:
    if (data := _read_member(archive, "meta.json", problems)) is None:
        return None
    try:
        meta = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        problems.append(ReleaseProblem("meta.json", f"unreadable: {exc}"))
        return None
    missing = sorted({"classes", "ignore_index", "splits", "counts", "image_sizes", "version"} - set(meta))
    if missing:
        problems.append(ReleaseProblem("meta.json", f"missing keys {missing}"))
        return None
    return meta


def _read_manifest(archive: ReleaseFiles, problems: list[ReleaseProblem]) -> pl.DataFrame | None:
    if (data := _read_member(archive, "index.csv", problems)) is None:
        return None
    try:
        table = pl.read_csv(io.BytesIO(data), infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        problems.append(ReleaseProblem("index.csv", f"unreadable: {exc}"))
        return None
    if table.columns != MANIFEST_COLUMNS:
        problems.append(ReleaseProblem("index.csv", f"columns are {table.columns}, the manifest schema has {MANIFEST_COLUMNS}"))
        return None
    try:
        manifest = table.cast(MANIFEST_TYPES)
    except pl.exceptions.InvalidOperationError as exc:
        problems.append(ReleaseProblem("index.csv", f"a value does not have its column's type: {exc}"))
        return None
    manifest = _validated("index.csv", manifest, problems)
    if manifest is not None:
        _compare_parquet(archive, manifest, problems)
    return manifest


def _validated(member: str, table: pl.DataFrame, problems: list[ReleaseProblem]) -> pl.DataFrame | None:
    try:
        return ManifestRecord.validate(table, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        failures = exc.failure_cases.select("column", "check", "failure_case").unique().sort("column").rows()
        problems.append(ReleaseProblem(member, "breaks the manifest schema: " + "; ".join(
            f"{column}: {check} (e.g. {case!r})" for column, check, case in failures[:5])))
    return None


def _compare_parquet(archive: ReleaseFiles, manifest: pl.DataFrame, problems: list[ReleaseProblem]) -> None:
    """index.parquet is the typed copy of index.csv: same schema, same rows."""
    if (data := _read_member(archive, "index.parquet", problems)) is None:
        return
    try:
        typed = pl.read_parquet(io.BytesIO(data))
    except (pl.exceptions.PolarsError, OSError) as exc:
        problems.append(ReleaseProblem("index.parquet", f"unreadable: {exc}"))
        return
    if typed.schema != manifest.schema:
        problems.append(ReleaseProblem("index.parquet", f"schema {dict(typed.schema)} differs from the manifest's"))
    elif _validated("index.parquet", typed, problems) is not None and not typed.equals(manifest, null_equal=True):
        problems.append(ReleaseProblem("index.parquet", "rows differ from index.csv"))


def _check_counts(archive: ReleaseFiles, meta: dict, manifest: pl.DataFrame) -> list[ReleaseProblem]:
    problems: list[ReleaseProblem] = []
    splits = dict(manifest.group_by("split").len().sort("split").iter_rows())
    if splits != meta["splits"]:
        problems.append(ReleaseProblem("meta.json", f"splits {meta['splits']}, index.csv has {splits}"))
    counts = meta["counts"]
    outcomes = [counts.get(k, 0) for k in ("released", "filtered", "quarantined")]
    if counts.get("input") != sum(outcomes):  # counts are of input entries (one per annotator's file), not images
        problems.append(ReleaseProblem("meta.json", f"counts do not add up: input {counts.get('input')}, released + "
                                                    f"filtered + quarantined {sum(outcomes)}"))
    if sum(s["count"] for s in meta["image_sizes"]) != manifest.height:
        problems.append(ReleaseProblem("meta.json", f"image_sizes count {sum(s['count'] for s in meta['image_sizes'])} "
                                                    f"images, index.csv has {manifest.height}"))
    present = set(archive.namelist())
    for column in ("image_path", "mask_path", "instance_path"):
        absent = [path for path in manifest[column].drop_nulls() if path not in present]
        problems += missing_problems(absent, f"named by index.csv ({column}) but missing from the archive")
    return problems


def _check_mask(archive: ReleaseFiles, meta: dict, row: dict, present: set[str]) -> list[ReleaseProblem]:
    path = row["mask_path"]
    if path not in present:
        return []
    try:
        data = archive.read(path)
        mask = decode_mask_png(data)
    except (*MEMBER_ERRORS, ValueError) as exc:
        return [ReleaseProblem(path, f"not a decodable mask: {exc}")]
    problems = []
    if hashlib.sha256(data).hexdigest() != row["mask_sha256"]:
        problems.append(ReleaseProblem(path, "SHA-256 differs from index.csv's mask_sha256"))
    if mask.shape != (row["height"], row["width"]):
        problems.append(ReleaseProblem(path, f"is {mask.shape[1]}x{mask.shape[0]}, index.csv says {row['width']}x{row['height']}"))
        return problems
    classes = {c["id"]: c["name"] for c in meta["classes"]}
    counts = np.bincount(mask.ravel(), minlength=256)
    unknown = sorted(set(np.flatnonzero(counts).tolist()) - set(classes) - {meta["ignore_index"]})
    if unknown:
        problems.append(ReleaseProblem(path, f"values {unknown} are neither a class of meta.json nor its ignore_index "
                                             f"{meta['ignore_index']}"))
    expected = {classes[i]: int(counts[i]) for i in sorted(classes)}
    if orjson.loads(row["class_pixels"]) != expected or int(counts[meta["ignore_index"]]) != row["ignored_pixels"]:
        problems.append(ReleaseProblem(path, f"pixel counts {expected} (ignored {int(counts[meta['ignore_index']])}) "
                                             f"differ from index.csv's class_pixels and ignored_pixels"))
    return problems
