"""Create-only writes: an object is written only if its key is free, and never overwritten.

On S3 the write carries `If-None-Match: *` (s3fs `open(path, "xb")`, on the one-shot PUT and on
CompleteMultipartUpload alike). A refused write is a 412 PreconditionFailed, which s3fs reports as
FileExistsError on AWS but as OSError(EINVAL) on SeaweedFS (its error lacks the `Condition`
element); both mean "taken". On a local filesystem the bytes go to a temporary sibling first and
are hard-linked into place, which fails if the name exists and never shows a partial file.

A 412 can also answer our own write, retried after its response was lost, so a taken key is read
back: the same bytes are our (or an identical) write, other bytes are someone else's.
"""

import contextlib
import enum
import hashlib
import io
import uuid
from typing import BinaryIO

import fsspec

CHUNK_BYTES = 1 << 20
PART_BYTES = 8 << 20  # multipart part size on S3: memory per upload stays at one part


class CreateOutcome(enum.Enum):
    CREATED = "created"
    ALREADY_SAME = "already holds the same bytes"
    ALREADY_OTHER = "already holds other bytes"


class CreateOnlyUnsupported(RuntimeError):
    """The filesystem offers no create-only write segpipe knows how to use."""


def create_only(fs: fsspec.AbstractFileSystem, path: str, source: BinaryIO) -> CreateOutcome:
    """Stream `source` to `path` unless the key exists; an exception while writing leaves nothing there."""
    digest = hashlib.sha256()
    if is_s3(fs):
        taken = _create_on_s3(fs, path, source, digest)
    elif hasattr(fs, "link"):
        taken = _create_by_link(fs, path, source, digest)
    else:
        raise CreateOnlyUnsupported(f"{type(fs).__name__}: no create-only write for {path}")
    if not taken:
        return CreateOutcome.CREATED
    return CreateOutcome.ALREADY_SAME if object_sha256(fs, path) == digest.hexdigest() else CreateOutcome.ALREADY_OTHER


def create_only_bytes(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> CreateOutcome:
    return create_only(fs, path, io.BytesIO(data))


def create_only_from(fs: fsspec.AbstractFileSystem, path: str, staged: str, staged_sha256: str) -> CreateOutcome:
    """Create `path` holding the bytes of the object `staged` (whose SHA-256 is known). Locally the
    staged file is hard-linked into place, which copies nothing; on S3 it is streamed across."""
    if is_s3(fs) or not hasattr(fs, "link"):
        with fs.open(staged, "rb") as source:
            return create_only(fs, path, source)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    try:
        fs.link(staged, path)
    except FileExistsError:
        return CreateOutcome.ALREADY_SAME if object_sha256(fs, path) == staged_sha256 else CreateOutcome.ALREADY_OTHER
    return CreateOutcome.CREATED


def is_s3(fs: fsspec.AbstractFileSystem) -> bool:
    return hasattr(fs, "call_s3")


def object_sha256(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The SHA-256 of the object as the store holds it now: s3fs opens through a cached listing of the
    folder, which knows nothing of an object another writer created since, so that cache goes first."""
    digest = hashlib.sha256()
    fs.invalidate_cache(path)
    with fs.open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def is_precondition_failed(exc: BaseException) -> bool:
    """A 412 however s3fs surfaces it: FileExistsError, or OSError caused by a PreconditionFailed ClientError."""
    if isinstance(exc, FileExistsError):
        return True
    response = getattr(exc.__cause__, "response", None) or getattr(exc, "response", None) or {}
    return (response.get("Error", {}).get("Code") == "PreconditionFailed"
            or response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 412)


def _create_on_s3(fs: fsspec.AbstractFileSystem, path: str, source: BinaryIO, digest) -> bool:
    f = fs.open(path, "xb", block_size=PART_BYTES)
    try:
        for block in iter(lambda: source.read(CHUNK_BYTES), b""):
            digest.update(block)
            f.write(block)
    except BaseException:
        # close() would commit what was written so far (fsspec's __exit__ does): abort instead.
        abort_upload(f)
        raise
    try:
        f.close()
    except OSError as exc:
        abort_upload(f)  # a refused CompleteMultipartUpload leaves its parts stored
        if is_precondition_failed(exc):
            return True
        raise
    return False


def abort_upload(f) -> None:
    """Drop an unfinished upload; if the store is unreachable its parts stay until a lifecycle rule or janitor."""
    with contextlib.suppress(Exception):
        f.discard()
    f.closed = True


def _create_by_link(fs: fsspec.AbstractFileSystem, path: str, source: BinaryIO, digest) -> bool:
    partial = f"{path}.{uuid.uuid4().hex}.partial"
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    try:
        with fs.open(partial, "wb") as f:
            for block in iter(lambda: source.read(CHUNK_BYTES), b""):
                digest.update(block)
                f.write(block)
        try:
            fs.link(partial, path)
        except FileExistsError:
            return True
        return False
    finally:
        if fs.exists(partial):
            fs.rm_file(partial)
