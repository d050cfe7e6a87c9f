"""A write-only stream that takes the SHA-256 of what passes through it.

Releases are streamed into the store, so the checksum of each file has to be taken on the way:
there is no local copy to hash afterwards. It does not seek, so a ZIP written through it records
each member's sizes after its data (a data descriptor), which every ZIP reader understands.

The SHA-256 is taken on another thread while the caller makes the next bytes (BackgroundSha256).
coco.json is hundreds of MB at 10,000 scenes, and every build hashes it twice: as it is written,
and as the staged release is checked (verify.py, while inflating it). hashlib lets go of the GIL on
large inputs, so a large piece is hashed on a thread of this module's pool while the caller
formats or inflates the next one, instead of one after the other. Small pieces are gathered until
they are large, so a member of a few KB never waits on a thread.
"""

import hashlib
import io
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO


LARGE_BYTES = 1 << 20
_pools: dict[int, ThreadPoolExecutor] = {}  # by process: a forked child has none of its parent's threads


def _pool() -> ThreadPoolExecutor:
    pid = os.getpid()
    if pid not in _pools:
        _pools[pid] = ThreadPoolExecutor(2, thread_name_prefix="segpipe-sha256")
    return _pools[pid]


class BackgroundSha256:
    """update() and hexdigest() as hashlib's: the pieces are hashed in order, at most one at a time
    behind the caller, so memory holds at most two large pieces."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._gathered = bytearray()
        self._pending: Future[None] | None = None

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if memoryview(data).nbytes < LARGE_BYTES:
            self._gathered += data
            if len(self._gathered) < LARGE_BYTES:
                return
            data, self._gathered = bytes(self._gathered), bytearray()
        elif self._gathered:
            self._submit(bytes(self._gathered))
            self._gathered = bytearray()
        self._submit(data if isinstance(data, bytes) else bytes(data))  # the caller may reuse its buffer

    def hexdigest(self) -> str:
        self._wait()
        self._digest.update(self._gathered)
        self._gathered = bytearray()
        return self._digest.hexdigest()

    def _submit(self, data: bytes) -> None:
        self._wait()
        self._pending = _pool().submit(self._digest.update, data)

    def _wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None


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
