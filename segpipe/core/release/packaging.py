"""Packaging a release's members: the writers say what goes in, a packager where and how.

ZipPackager writes them into one deterministic ZIP: members in the order they come, fixed
timestamps and permissions, images and masks stored as they are (compressed already), the rest
deflated at DEFLATE_LEVEL; a streamed one (coco.json, which every nightly rewrites whole, 240 MB
at 5,000 Cityscapes-style scenes) on every core (parallel_deflate: its deflate in one thread was
the largest part of a nightly's release), copying the deflate of each segment an earlier build
remembered (DeflatedSegments). A packager takes each member's SHA-256 as it writes it and hands it
back, for the manifest and SHA256SUMS, so nothing is read twice.
"""

import contextlib
import copy
import hashlib
import zipfile
from typing import BinaryIO, Protocol

from segpipe.core.release.parallel_deflate import DeflatedSegments, ParallelDeflater
from segpipe.core.release.verify import MEMBER_ERRORS
from segpipe.core.release.writers.writer import CopiedRecord, Deferred, Member
from segpipe.core.shared.hashing_writer import HashingWriter

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# zlib's level 1: a YOLO label (about 300 KB of text at 2048x1024) deflates in 2 ms instead of 5.7 ms
# at the default level 6, to 84 KB instead of 54 KB (segpipe_tests/bench/floors.py, zip_label_text)
DEFLATE_LEVEL = 1
LOCAL_HEADER = b"PK\x03\x04"


class Packager(Protocol):
    def add(self, member: Member) -> str:
        """Package a member; its SHA-256 (hex)."""
        ...


class ZipPackager:
    """One ZIP streamed into `out`, closed (its central directory written) when the block ends.
    `sizes` holds the size of each member packaged. A streamed member's segments are deflated alone
    and, with `remembered`, recalled from and kept for later builds."""

    def __init__(self, out: BinaryIO, remembered: DeflatedSegments | None = None) -> None:
        self._archive = zipfile.ZipFile(out, "w")
        self._remembered = remembered
        self.sizes: dict[str, int] = {}

    def add(self, member: Member) -> str:
        if isinstance(member.content, CopiedRecord):
            return self._copy(member.content)
        info = zipfile.ZipInfo(member.path, date_time=ZIP_EPOCH)
        info.compress_type = zipfile.ZIP_DEFLATED if member.compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        content = member.content.make() if isinstance(member.content, Deferred) else member.content
        if isinstance(content, bytes):
            self._archive.writestr(info, content, compresslevel=DEFLATE_LEVEL if member.compress else None)
            self.sizes[member.path] = len(content)
            return hashlib.sha256(content).hexdigest()
        with contextlib.ExitStack() as deflating, self._archive.open(info, "w", force_zip64=True) as stream:
            deflater = None
            if member.compress:  # zipfile's writer of the member calls compress() and flush() on it
                deflater = ParallelDeflater(remembered=self._remembered)
                stream._compressor = deflating.enter_context(contextlib.closing(deflater))
            hashing = HashingWriter(stream, None if deflater is None else deflater.segment)
            content(hashing)
        self.sizes[member.path] = hashing.tell()
        return hashing.hexdigest()

    def _copy(self, copied: CopiedRecord) -> str:
        """The record as it is, at the end of the ZIP, and its entry for the central directory: the
        bytes ZipFile.writestr writes for the member (zipfile's own bookkeeping of a written member)."""
        archive, info = self._archive, copy.copy(copied.info)
        if archive._seekable:
            archive.fp.seek(archive.start_dir)
        info.header_offset = archive.fp.tell()
        archive.fp.write(copied.record)
        archive.start_dir = archive.fp.tell()
        archive._didModify = True
        archive.filelist.append(info)
        archive.NameToInfo[info.filename] = info
        self.sizes[info.filename] = info.file_size
        return copied.sha256

    def close(self) -> None:
        self._archive.close()

    def __enter__(self) -> "ZipPackager":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ZipRecords:
    """The members of a ZIP a ZipPackager wrote, each with its entry and local record, for copying into
    another (parts.EarlierBytes): a local record runs from its header to the next one (or to the
    central directory)."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self._archive = archive
        infos = sorted(archive.infolist(), key=lambda info: info.header_offset)
        ends = [info.header_offset for info in infos[1:]] + [archive.start_dir]
        self._ends = {info.filename: end for info, end in zip(infos, ends)}

    def read(self, path: str) -> tuple[bytes, zipfile.ZipInfo, bytes] | None:
        """The member's bytes (its CRC checked), its entry and its local record; None when the ZIP
        does not hold it or it cannot be read whole."""
        if path not in self._ends:
            return None
        try:
            data = self._archive.read(path)
            info = self._archive.getinfo(path)
            self._archive.fp.seek(info.header_offset)
            record = self._archive.fp.read(self._ends[path] - info.header_offset)
        except (KeyError, *MEMBER_ERRORS):
            return None
        if not record.startswith(LOCAL_HEADER) or len(record) < info.compress_size:
            return None
        return data, info, record
