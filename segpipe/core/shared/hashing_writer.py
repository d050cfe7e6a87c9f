"""A write-only stream that takes the SHA-256 of what passes through it.

Releases are streamed into the store, so the checksum of each file has to be taken on the way:
there is no local copy to hash afterwards. It does not seek, so a ZIP written through it records
each member's sizes after its data (a data descriptor), which every ZIP reader understands.
"""

import io
from collections.abc import Callable
from typing import BinaryIO

from segpipe.core.shared.background_sha256 import BackgroundSha256


class HashingWriter(io.RawIOBase):
    """`before_segment`, when given, is told before each segment() reaches the target (a ZIP
    member's deflater, which then deflates the segment alone and remembers it)."""

    def __init__(self, target: BinaryIO, before_segment: Callable[[], None] | None = None) -> None:
        self._target = target
        self._digest = BackgroundSha256()
        self._written = 0
        self._before_segment = before_segment

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._digest.update(data)
        self._target.write(data)
        size = memoryview(data).nbytes
        self._written += size
        return size

    def segment(self, data: bytes) -> None:
        """Write a run of bytes that later builds are likely to write again, in one piece."""
        if not data:
            return
        if self._before_segment is not None:
            self._before_segment()
        self.write(data)

    def tell(self) -> int:
        return self._written

    def hexdigest(self) -> str:
        return self._digest.hexdigest()
