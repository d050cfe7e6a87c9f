"""Packaging a release's members: the writers say what goes in, a packager where and how.

ZipPackager writes them into one deterministic ZIP: members in the order they come, fixed
timestamps and permissions, images and masks stored as they are (compressed already), the rest
deflated at DEFLATE_LEVEL, a streamed one (coco.json) too: every nightly rewrites the whole
coco.json, and at zlib's default level its deflate was most of a nightly's release (24 MB in 1.6 s
instead of 0.22 s, 18% smaller). A packager takes each member's SHA-256 as it writes it and hands
it back, for the manifest and SHA256SUMS, so nothing is read twice.
"""

import hashlib
import zipfile
from typing import BinaryIO, Protocol

from segpipe.core.release.writers.writer import Deferred, Member
from segpipe.core.shared.hashing_writer import HashingWriter

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# zlib's level 1: a YOLO label (about 300 KB of text at 2048x1024) deflates in 2 ms instead of 5.7 ms
# at the default level 6, to 84 KB instead of 54 KB (segpipe_tests/bench/floors.py, zip_label_text)
DEFLATE_LEVEL = 1


class Packager(Protocol):
    def add(self, member: Member) -> str:
        """Package a member; its SHA-256 (hex)."""
        ...


class ZipPackager:
    """One ZIP streamed into `out`, closed (its central directory written) when the block ends.
    `sizes` holds the size of each member packaged."""

    def __init__(self, out: BinaryIO) -> None:
        self._archive = zipfile.ZipFile(out, "w")
        self.sizes: dict[str, int] = {}

    def add(self, member: Member) -> str:
        info = zipfile.ZipInfo(member.path, date_time=ZIP_EPOCH)
        info.compress_type = zipfile.ZIP_DEFLATED if member.compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        content = member.content.make() if isinstance(member.content, Deferred) else member.content
        if isinstance(content, bytes):
            self._archive.writestr(info, content, compresslevel=DEFLATE_LEVEL if member.compress else None)
            self.sizes[member.path] = len(content)
            return hashlib.sha256(content).hexdigest()
        info._compresslevel = DEFLATE_LEVEL  # where ZipFile.open takes a ZipInfo's level (writestr's argument sets it)
        with self._archive.open(info, "w", force_zip64=True) as stream:
            hashing = HashingWriter(stream)
            content(hashing)
        self.sizes[member.path] = hashing.tell()
        return hashing.hexdigest()

    def close(self) -> None:
        self._archive.close()

    def __enter__(self) -> "ZipPackager":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
