"""A batch that is a folder: a local directory or an `s3://` prefix, read through fsspec."""

from typing import BinaryIO

import fsspec

from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import FILE_MISSING, FILE_TOO_LARGE, SYMLINK, UNDECODABLE_NAME
from segpipe.core.ingest.landing import printable_name
from segpipe.core.ingest.sources.source import RejectedFile

MAX_FILE_BYTES = 2 * 1024**3


class FolderSource:
    """Every regular file under a root. Symlinks are refused, not followed: a link to /etc/passwd
    inside an upload must not be read. Names that are not valid UTF-8 are refused too, so a table
    never holds a string Polars cannot write."""

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, uri: str) -> None:
        self.fs, self.root, self.uri = fs, root.rstrip("/"), uri.rstrip("/")
        self._names: list[str] = []
        self._rejected: list[RejectedFile] = []
        self._sizes: dict[str, int] = {}  # the readable files
        prefix = fs._strip_protocol(self.root).rstrip("/") + "/"
        for path, info in sorted(fs.find(self.root, detail=True).items()) if fs.exists(self.root) else []:
            name = fs._strip_protocol(path)[len(prefix):]
            self._classify(name, info)

    def _classify(self, name: str, info: dict) -> None:
        shown = printable_name(name)
        if shown != name:
            self._rejected.append(RejectedFile(shown, InputError(
                UNDECODABLE_NAME, f"{self.uri}/{shown}: file name is not valid UTF-8")))
        elif info.get("islink") or info.get("type") != "file":
            self._rejected.append(RejectedFile(name, InputError(
                SYMLINK, f"{self.uri}/{name}: is a symbolic link or special file; links are never followed")))
        elif info.get("size", 0) > MAX_FILE_BYTES:
            self._rejected.append(RejectedFile(name, InputError(
                FILE_TOO_LARGE, f"{self.uri}/{name}: {info['size']} bytes exceeds the {MAX_FILE_BYTES}-byte limit")))
        else:
            self._names.append(name)
            self._sizes[name] = int(info.get("size") or 0)

    def names(self) -> list[str]:
        return list(self._names)

    def rejected(self) -> list[RejectedFile]:
        return list(self._rejected)

    def read(self, name: str) -> bytes:
        if name not in self._sizes:
            raise InputError(FILE_MISSING, f"{self.origin(name)}: no such file in the batch")
        return self.fs.cat_file(f"{self.root}/{name}")

    def open(self, name: str) -> BinaryIO:
        if name not in self._sizes:
            raise InputError(FILE_MISSING, f"{self.origin(name)}: no such file in the batch")
        return self.fs.open(f"{self.root}/{name}", "rb")

    def origin(self, name: str) -> str:
        return f"{self.uri}/{name}"
