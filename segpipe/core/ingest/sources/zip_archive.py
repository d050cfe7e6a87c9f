"""A ZIP archive as a BatchSource, for archives uploaded by people we do not control.

Python's zipfile silently rewrites hostile names (`../x` becomes `x`), reads symlink entries as
ordinary files and, on the 3.11.7 we run, lacks the overlapping-entry check of CVE-2024-0450
(reliability.md §0.7, §2.1-2.2). So zipfile is used only to parse the central directory; every
check below is ours, and entries are decompressed by our own byte-counting reader.

Policies:
- Whole archive refused (ArchiveRefused, an InputError, at construction) for: unsafe names,
  symlinks, names that collide once case and Unicode normalization are ignored (or a file that is
  also a directory), encryption, compression other than stored/deflate, overlapping entries, a
  corrupt directory, and declared sizes, counts or ratios over ArchiveLimits. Sanitizing and
  continuing would let one member silently replace another, so nothing is sanitized. The refusal
  names its first problem and lists every member, each with its own problem or the archive's, so
  a user sees what was in it; an archive whose directory cannot be read or is over its bounds
  lists none.
- Per entry (listed by rejected(), the rest still readable): nested archives, which are never
  expanded.
- Names without the UTF-8 flag are decoded as cp437, as zipfile and the ZIP specification do.
  cp437 maps every byte, so no name carries surrogates into the manifest; names with the flag
  that are not valid UTF-8 make the archive corrupt.
- Only stored and deflate are read: they are what exporters write, and they keep the reader's
  memory bounded; bzip2/lzma would need their own bounds (lzma's dictionary size comes from the
  attacker's header).

The caller owns the file object and closes it; it must stay open while the source is used.
"""

import io
import re
import stat
import struct
import threading
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import (
    ARCHIVE_NAME_COLLISION,
    ARCHIVE_SYMLINK,
    ARCHIVE_TOO_LARGE,
    CORRUPT_ARCHIVE,
    ENCRYPTED_ARCHIVE_ENTRY,
    NESTED_ARCHIVE,
    UNSAFE_ARCHIVE_PATH,
    UNSUPPORTED_ARCHIVE_COMPRESSION,
    ZIP_BOMB,
)
from segpipe.core.ingest.sources.source import RejectedFile

class ArchiveRefused(InputError):
    """The whole archive is refused; the error is its first problem. `members` lists every entry of its
    central directory, in directory order, with its own problem or else this one; it is empty when
    the directory could not be listed safely (corrupt, or over its bounds). `archive_name` is the
    archive's file name, which stands for it when no member is listed."""

    def __init__(self, error: InputError, archive_name: str, members: tuple[RejectedFile, ...] = ()) -> None:
        super().__init__(error.rule, str(error))
        self.archive_name = archive_name
        self.members = members


MiB = 1024 * 1024
GiB = 1024 * MiB

NESTED_ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".7z", ".rar")
READABLE_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)

_ENCRYPTED_FLAG = 0x1
_UTF8_FLAG = 0x800
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # signature ... name length, extra length (30 bytes)
_LOCAL_SIGNATURE = b"PK\x03\x04"
_DRIVE = re.compile(r"[A-Za-z]:")
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds on what one archive may cost to list and decompress.

    The ratio cap (as Apache POI's ZipSecureFile, 100:1) applies only to entries declaring more
    than `ratio_floor_bytes`: small files such as sparse JSON or blank masks legitimately
    compress further, and their amplification is bounded by the floor and the total budget.
    `max_directory_bytes` is checked before zipfile parses the central directory, whose parsed
    form costs about ten times its size in memory; 64 MiB leaves room for 100k entries with
    long names.
    """

    max_entries: int = 100_000
    max_total_bytes: int = 16 * GiB
    max_entry_bytes: int = 2 * GiB
    max_ratio: int = 100
    ratio_floor_bytes: int = 1 * MiB
    max_directory_bytes: int = 64 * MiB


@dataclass(frozen=True)
class _Entry:
    """Where one regular file's data lies, and what its central directory record promises."""

    name: str
    data_start: int
    compress_size: int
    file_size: int
    crc: int
    deflated: bool


class ZipArchiveSource:
    """A batch read from a ZIP archive, checked as a whole before any entry is read.

    The total decompression budget counts every byte read, including re-reads of an entry:
    it bounds the work an archive can cause, not its distinct content.
    """

    def __init__(self, fileobj: BinaryIO, uri: str, limits: ArchiveLimits = ArchiveLimits()) -> None:
        self.uri = uri
        self._file = fileobj
        self._limits = limits
        self._lock = threading.Lock()
        self._total_read = 0
        archive_name = uri.rstrip("/").rsplit("/", 1)[-1]
        try:
            infos, directory_start = self._read_directory()
            self._check_count(infos)
        except InputError as exc:
            raise ArchiveRefused(exc, archive_name) from exc
        problems = self._entry_problems(infos) | self._collisions(infos)
        located = self._locate_data(infos, directory_start, problems) if not problems else []
        if problems:
            first = next(iter(problems.values()))
            members = tuple(RejectedFile(info.orig_filename, problems.get(info.orig_filename, first)) for info in infos
                            if not info.orig_filename.endswith("/") or info.orig_filename in problems)
            raise ArchiveRefused(first, archive_name, members)
        files = [entry for entry in located if not entry.name.endswith("/")]
        nested = [e.name for e in files if e.name.lower().endswith(NESTED_ARCHIVE_SUFFIXES)]
        self._rejected = {name: self._nested(name) for name in nested}
        self._entries = {e.name: e for e in files if e.name not in self._rejected}

    def names(self) -> list[str]:
        """Regular files that may be read, sorted; directories and rejected entries are left out."""
        return sorted(self._entries)

    def rejected(self) -> list[RejectedFile]:
        """Entries refused one by one (nested archives); the whole-archive refusals raise instead."""
        return sorted(self._rejected.values(), key=lambda r: r.name)

    def read(self, name: str) -> bytes:
        """The entry's bytes, decompressed under the same budget as open()."""
        with self.open(name) as stream:
            return stream.read()

    def open(self, name: str) -> BinaryIO:
        """A stream that raises InputError as soon as the entry exceeds what it declared."""
        if name in self._rejected:
            error = self._rejected[name].error
            raise InputError(error.rule, str(error))
        if name not in self._entries:
            raise FileNotFoundError(self.origin(name))
        return io.BufferedReader(_EntryStream(self, self._entries[name]), buffer_size=_CHUNK)

    def origin(self, name: str) -> str:
        return f"{self.uri}!/{name}"

    def _refuse(self, rule: str, name: str, problem: str) -> InputError:
        return InputError(rule, f"{self.uri}: entry {name!r} {problem}")

    def _nested(self, name: str) -> RejectedFile:
        error = self._refuse(NESTED_ARCHIVE, name, "is an archive; nested archives are not expanded")
        return RejectedFile(name, error)

    def _read_directory(self) -> tuple[list[zipfile.ZipInfo], int]:
        """Parse the central directory with zipfile, after bounding its size (zipfile reads it whole)."""
        try:
            # _EndRecData is private but unchanged since Python 2; it handles ZIP64 for us.
            end_record = zipfile._EndRecData(self._file)
        except zipfile.BadZipFile as exc:
            raise InputError(CORRUPT_ARCHIVE, f"{self.uri}: not a readable ZIP archive: {exc}") from exc
        if end_record is None:
            raise InputError(CORRUPT_ARCHIVE, f"{self.uri}: not a ZIP archive (no end of central directory)")
        directory_bytes = end_record[zipfile._ECD_SIZE]
        if directory_bytes > self._limits.max_directory_bytes:
            raise InputError(ARCHIVE_TOO_LARGE, f"{self.uri}: central directory of {directory_bytes} bytes "
                             f"exceeds the {self._limits.max_directory_bytes}-byte limit")
        try:
            with zipfile.ZipFile(self._file) as archive:
                return archive.infolist(), archive.start_dir
        except (zipfile.BadZipFile, NotImplementedError, UnicodeDecodeError) as exc:
            raise InputError(CORRUPT_ARCHIVE, f"{self.uri}: not a readable ZIP archive: {exc}") from exc

    def _check_count(self, infos: list[zipfile.ZipInfo]) -> None:
        if len(infos) > self._limits.max_entries:
            raise InputError(ARCHIVE_TOO_LARGE,
                             f"{self.uri}: {len(infos)} entries exceed the limit of {self._limits.max_entries}")

    def _entry_problems(self, infos: list[zipfile.ZipInfo]) -> dict[str, InputError]:
        """Each entry's first problem of its own, in directory order; the entry whose declared size
        takes the archive's declared total over the limit has that problem, if it has no other."""
        problems: dict[str, InputError] = {}
        total, crossed = 0, False
        for info in infos:
            name = info.orig_filename
            try:
                self._check_entry(info)
            except InputError as exc:
                problems.setdefault(name, exc)
            total += info.file_size
            if total > self._limits.max_total_bytes and not crossed:
                crossed = True
                problems.setdefault(name, self._refuse(
                    ARCHIVE_TOO_LARGE, name, f"brings the declared uncompressed total to {total} bytes, over the "
                    f"{self._limits.max_total_bytes}-byte limit"))
        return problems

    def _check_entry(self, info: zipfile.ZipInfo) -> None:
        """orig_filename is checked because zipfile cuts `filename` at the first NUL."""
        name = info.orig_filename
        problem = _path_problem(name)
        if problem:
            raise self._refuse(UNSAFE_ARCHIVE_PATH, name, problem)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise self._refuse(ARCHIVE_SYMLINK, name, "is a symbolic link")
        if info.flag_bits & _ENCRYPTED_FLAG:
            raise self._refuse(ENCRYPTED_ARCHIVE_ENTRY, name, "is encrypted")
        if info.compress_type not in READABLE_METHODS:
            raise self._refuse(UNSUPPORTED_ARCHIVE_COMPRESSION, name,
                               f"uses compression method {info.compress_type}; only stored and deflate are read")
        self._check_declared_size(info)

    def _check_declared_size(self, info: zipfile.ZipInfo) -> None:
        """Declared sizes are the attacker's numbers; the streaming reader holds the entry to them."""
        limits, name = self._limits, info.orig_filename
        if info.file_size > limits.max_entry_bytes:
            raise self._refuse(ARCHIVE_TOO_LARGE, name, f"declares {info.file_size} bytes, "
                               f"over the {limits.max_entry_bytes}-byte per-entry limit")
        if info.file_size > limits.ratio_floor_bytes and info.file_size > limits.max_ratio * info.compress_size:
            raise self._refuse(ZIP_BOMB, name, f"declares {info.file_size} bytes from {info.compress_size} "
                               f"compressed, over the {limits.max_ratio}:1 ratio limit")

    def _collisions(self, infos: list[zipfile.ZipInfo]) -> dict[str, InputError]:
        """Names that one file system could not hold apart (case, NFC/NFD, file vs directory), each
        refused naming the entry it collides with."""
        problems: dict[str, InputError] = {}
        owners: dict[str, str] = {}
        for info in infos:
            name = info.orig_filename
            key = _fold(name.removesuffix("/"))
            if key in owners:
                problems.setdefault(name, self._refuse(
                    ARCHIVE_NAME_COLLISION, name, f"names the same file as entry {owners[key]!r} once case and "
                    f"Unicode form are ignored ({ascii(owners[key])} vs {ascii(name)})"))
            else:
                owners[key] = name
        for info in infos:
            for parent in _parents(info.orig_filename):
                owner = owners.get(_fold(parent))
                if owner is not None and not owner.endswith("/"):
                    problems.setdefault(info.orig_filename, self._refuse(
                        ARCHIVE_NAME_COLLISION, info.orig_filename, f"lies under entry {owner!r}, which is a file"))
        return problems

    def _locate_data(self, infos: list[zipfile.ZipInfo], directory_start: int,
                     problems: dict[str, InputError]) -> list[_Entry]:
        """Find each entry's data and refuse overlaps (CVE-2024-0450), which zipfile 3.11.7 allows;
        each entry's problem goes into `problems`.

        An entry spans its local header and its compressed data; spans must be disjoint and end
        before the central directory, so no byte is decompressed for two entries.
        """
        entries: list[_Entry] = []
        for info in sorted(infos, key=lambda i: i.header_offset):
            name = info.orig_filename
            if entries and info.header_offset < entries[-1].data_start + entries[-1].compress_size:
                problems.setdefault(name, self._refuse(ZIP_BOMB, name, f"overlaps entry {entries[-1].name!r}"))
                continue
            try:
                entries.append(self._locate(info))
            except InputError as exc:
                problems.setdefault(name, exc)
        if entries and entries[-1].data_start + entries[-1].compress_size > directory_start:
            problems.setdefault(entries[-1].name, self._refuse(ZIP_BOMB, entries[-1].name,
                                                               "overlaps the central directory"))
        return entries

    def _locate(self, info: zipfile.ZipInfo) -> _Entry:
        """Read the local header; its name must match the directory's, as other tools use either."""
        name = info.orig_filename
        if info.header_offset < 0:  # zipfile shifts offsets by the directory's own misplacement
            raise self._refuse(CORRUPT_ARCHIVE, name, "has a local header before the archive's start")
        self._file.seek(info.header_offset)
        header = self._file.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
            raise self._refuse(CORRUPT_ARCHIVE, name, f"has no local header at offset {info.header_offset}")
        name_length, extra_length = _LOCAL_HEADER.unpack(header)[-2:]
        local_name = self._file.read(name_length)
        if local_name != name.encode("utf-8" if info.flag_bits & _UTF8_FLAG else "cp437"):
            raise self._refuse(CORRUPT_ARCHIVE, name, f"is called {local_name!r} in its local header")
        data_start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
        return _Entry(name, data_start, info.compress_size, info.file_size, info.CRC,
                      info.compress_type == zipfile.ZIP_DEFLATED)

    def _read_at(self, position: int, size: int) -> bytes:
        """Seek and read as one step, so streams of different entries can share the file."""
        with self._lock:
            self._file.seek(position)
            return self._file.read(size)

    def _charge(self, name: str, size: int) -> None:
        """Count decompressed bytes against the archive's total budget."""
        with self._lock:
            self._total_read += size
            total = self._total_read
        if total > self._limits.max_total_bytes:
            raise self._refuse(ARCHIVE_TOO_LARGE, name, f"takes the bytes decompressed from this archive "
                               f"past the {self._limits.max_total_bytes}-byte budget")


class _EntryStream(io.RawIOBase):
    """One entry decompressed in bounded chunks; never returns a byte beyond the declared size."""

    def __init__(self, source: ZipArchiveSource, entry: _Entry) -> None:
        super().__init__()
        self._source = source
        self._entry = entry
        self._position = entry.data_start
        self._compressed_left = entry.compress_size
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS) if entry.deflated else None
        self._produced = 0
        self._crc = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:
        view = memoryview(buffer).cast("B")
        data = self._next(len(view)) if len(view) else b""
        view[: len(data)] = data
        return len(data)

    def _next(self, limit: int) -> bytes:
        """Up to `limit` further bytes; b"" only once the entry has ended and passed its checks."""
        data = self._take(limit) if self._inflater is None else self._inflate(self._inflater, limit)
        if data:
            self._account(data)
        else:
            self._finish()
        return data

    def _inflate(self, inflater: "zlib._Decompress", limit: int) -> bytes:
        """Decompress at most `limit` bytes at a time, so a bomb never fills memory before the count sees it."""
        try:
            while not inflater.eof:
                compressed = inflater.unconsumed_tail or self._take(_CHUNK)
                data = inflater.decompress(compressed, limit)
                if data:
                    return data
                if not compressed:
                    raise self._corrupt("has a truncated deflate stream")
        except zlib.error as exc:
            raise self._corrupt(f"has invalid deflate data: {exc}") from exc
        return b""

    def _take(self, limit: int) -> bytes:
        """Next compressed bytes of this entry, never past its declared compressed size."""
        size = min(limit, self._compressed_left)
        if size == 0:
            return b""
        data = self._source._read_at(self._position, size)
        if len(data) != size:
            raise self._corrupt("is cut short: the archive ends inside its data")
        self._position += size
        self._compressed_left -= size
        return data

    def _account(self, data: bytes) -> None:
        """Hold the entry to its declared size; that size is already within the per-entry limit."""
        self._produced += len(data)
        if self._produced > self._entry.file_size:
            raise self._source._refuse(ZIP_BOMB, self._entry.name,
                                       f"yields more than the {self._entry.file_size} bytes its header declares")
        self._source._charge(self._entry.name, len(data))
        self._crc = zlib.crc32(data, self._crc)

    def _finish(self) -> None:
        """Check length and CRC at the end; a read past the end checks again, so it raises again."""
        if self._produced != self._entry.file_size:
            raise self._corrupt(f"ends after {self._produced} of the {self._entry.file_size} bytes its header declares")
        if self._crc != self._entry.crc:
            raise self._corrupt("fails its CRC-32 check")

    def _corrupt(self, problem: str) -> InputError:
        return self._source._refuse(CORRUPT_ARCHIVE, self._entry.name, problem)


def _path_problem(name: str) -> str | None:
    """Why a name could escape or be rewritten on some file system, or None if it is a plain relative path."""
    if not name:
        return "has an empty name"
    control = next((c for c in name if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        return f"contains the control character {control!r}"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/"):
        return "is an absolute path"
    parts = name.removesuffix("/").split("/")
    if _DRIVE.match(parts[0]):
        return "starts with a drive letter"
    if any(part in ("", ".", "..") for part in parts):
        return "has an empty, '.' or '..' path component"
    return None


def _fold(name: str) -> str:
    """Canonical caseless form (Unicode D145): equal for names a case-insensitive or NFC/NFD file system confuses."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", name).casefold())


def _parents(name: str) -> list[str]:
    parts = name.removesuffix("/").split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]
