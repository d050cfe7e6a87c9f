"""What a reader sees of a batch: a listing of regular files and their bytes, wherever they live."""

from dataclasses import dataclass
from typing import BinaryIO, Protocol

from segpipe.core.shared.errors import InputError


@dataclass(frozen=True)
class RejectedFile:
    """A file of the batch that no reader may open (a symlink, an undecodable name), and why."""

    name: str
    error: InputError


class BatchSource(Protocol):
    """A batch as a read-only tree of files; names are relative, '/'-separated, sorted."""

    uri: str

    def names(self) -> list[str]:
        """Every regular file of the batch that may be read."""
        ...

    def rejected(self) -> list[RejectedFile]:
        """Entries found but refused, each with the rule it broke."""
        ...

    def read(self, name: str) -> bytes:
        """The file's bytes; InputError when it cannot be read safely."""
        ...

    def open(self, name: str) -> BinaryIO:
        """A stream of the file, for readers that parse incrementally."""
        ...

    def origin(self, name: str) -> str:
        """How messages name the file: the batch URI plus the name."""
        ...
