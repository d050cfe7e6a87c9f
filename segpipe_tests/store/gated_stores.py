"""Stores that hold a publisher at a chosen write, so that a race between two publishers runs the same way every time.

The store is real (a local folder, or SeaweedFS); only the moment each create-only write starts
is chosen. A gate sees the key of every create-only write: a hard link on a local filesystem, an
`xb` open on S3; locally it also sees every folder listed. Its action runs at the first key it
accepts, once.
"""

import threading
from collections.abc import Callable

import s3fs
from fsspec.implementations.local import LocalFileSystem

from segpipe.store.keys import LATEST_POINTER, RELEASE_MARKER, STAGING_DIR


class Gate:
    """Runs `action` once, at the first create-only write whose key `accepts` takes."""

    def __init__(self, accepts: Callable[[str], bool], action: Callable[[], object]) -> None:
        self.accepts, self.action = accepts, action
        self._fired = threading.Event()

    def __call__(self, key: str) -> None:
        if not self._fired.is_set() and self.accepts(key):
            self._fired.set()
            self.action()


def first_commit_write(key: str) -> bool:
    """The first write of a publish outside its staging dir: the claim (or, before claims, a version's
    first object), not the probe, nor the pointer's lock."""
    return "/releases/" in key and f"/{STAGING_DIR}/" not in key and not key.endswith(f"{LATEST_POINTER}.lock")


def marker_write(key: str) -> bool:
    return key.endswith(f"/{RELEASE_MARKER}")


class GatedLocalFileSystem(LocalFileSystem):
    cachable = False  # each publisher its own instance, and its own gate

    def __init__(self, gate: Gate, **kwargs) -> None:
        super().__init__(auto_mkdir=True, **kwargs)
        self.gate = gate

    def link(self, src, dst, **kwargs):
        self.gate(self._strip_protocol(dst))
        return super().link(src, dst, **kwargs)

    def ls(self, path, detail=False, **kwargs):
        self.gate(self._strip_protocol(path))
        return super().ls(path, detail=detail, **kwargs)


class GatedS3FileSystem(s3fs.S3FileSystem):
    cachable = False

    def __init__(self, gate: Gate, **kwargs) -> None:
        super().__init__(**kwargs)
        self.gate = gate

    def _open(self, path, mode="rb", **kwargs):
        if mode == "xb":
            self.gate(self._strip_protocol(path))
        return super()._open(path, mode, **kwargs)
