"""A batch held in memory, for reader tests: name -> bytes."""

import io

from segpipe.core.shared.errors import InputError
from segpipe.core.ingest.sources.source import RejectedFile


class MemorySource:
    """Implements BatchSource over a dict. With `streamed_only`, reading a file whole fails the test:
    readers of big files (COCO) must stream them."""

    uri = "mem://batch"

    def __init__(self, files: dict[str, bytes], streamed_only: bool = False) -> None:
        self.files = files
        self.streamed_only = streamed_only

    def names(self) -> list[str]:
        return sorted(self.files)

    def rejected(self) -> list[RejectedFile]:
        return []

    def read(self, name: str) -> bytes:
        if self.streamed_only:
            raise AssertionError(f"{name} was read whole instead of streamed")
        return self._bytes(name)

    def open(self, name: str) -> io.BytesIO:
        return io.BytesIO(self._bytes(name))

    def origin(self, name: str) -> str:
        return f"{self.uri}/{name}"

    def _bytes(self, name: str) -> bytes:
        if name not in self.files:
            raise InputError("file_missing", f"{self.origin(name)}: no such file in the batch")
        return self.files[name]
