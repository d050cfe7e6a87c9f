"""The `latest.json` pointer, moved forward with compare-and-swap and never backwards.

On S3 the swap is a PUT with `If-Match: <ETag>` of the pointer we read (or `If-None-Match: *`
when there was none), through botocore since fsspec has no conditional overwrite; a 412 means
another publisher moved it first, so we read again. On a local filesystem the swap holds a
create-only lock file (`latest.json.lock`), re-reads the pointer, and `os.replace`s a temporary
file over it only if the pointer still holds the bytes we read; a lock older than
LOCK_STALE_SECONDS (a crashed publisher) is broken.
"""

import hashlib
import time
import uuid

import fsspec
import orjson

from segpipe.store.create_only import CreateOutcome, create_only_bytes, is_precondition_failed

SWAP_ATTEMPTS = 20
LOCK_STALE_SECONDS = 60.0


class PointerContention(RuntimeError):
    """The pointer kept moving under us for SWAP_ATTEMPTS tries."""


def read_pointer(fs: fsspec.AbstractFileSystem, path: str) -> dict | None:
    try:
        return orjson.loads(fs.cat_file(path))
    except FileNotFoundError:
        return None


def advance_pointer(fs: fsspec.AbstractFileSystem, path: str, pointer: dict) -> dict:
    """Point at `pointer` unless the pointer already names the same or a later sequence; return what it names."""
    body = orjson.dumps(pointer, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    swap = _swap_on_s3 if hasattr(fs, "call_s3") else _swap_locally
    for _ in range(SWAP_ATTEMPTS):
        token, current = _read_with_token(fs, path)
        if current is not None and orjson.loads(current)["sequence"] >= pointer["sequence"]:
            return orjson.loads(current)
        if swap(fs, path, token, current, body):
            return pointer
    raise PointerContention(f"{path}: moved by others {SWAP_ATTEMPTS} times while we tried to advance it")


def _read_with_token(fs: fsspec.AbstractFileSystem, path: str) -> tuple[str | None, bytes | None]:
    """The pointer's bytes and the token a swap must match: the ETag on S3, the bytes' digest locally.

    On S3 the ETag is read before the body: if the body is newer, the swap on the older ETag is
    refused and we read again, so the two reads need not be atomic.
    """
    try:
        if hasattr(fs, "call_s3"):
            bucket, key, _ = fs.split_path(path)
            etag = fs.call_s3("head_object", Bucket=bucket, Key=key)["ETag"]
            return etag, fs.cat_file(path)
        current = fs.cat_file(path)
    except FileNotFoundError:
        return None, None
    return hashlib.sha256(current).hexdigest(), current


def _swap_on_s3(fs: fsspec.AbstractFileSystem, path: str, etag: str | None, _current: bytes | None, body: bytes) -> bool:
    bucket, key, _ = fs.split_path(path)
    condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
    try:
        fs.call_s3("put_object", Bucket=bucket, Key=key, Body=body, ContentType="application/json", **condition)
    except OSError as exc:
        if is_precondition_failed(exc):
            return False
        raise
    return True


def _swap_locally(fs: fsspec.AbstractFileSystem, path: str, _digest: str | None, current: bytes | None, body: bytes) -> bool:
    lock = f"{path}.lock"
    if create_only_bytes(fs, lock, uuid.uuid4().hex.encode()) is not CreateOutcome.CREATED:
        if time.time() - fs.modified(lock).timestamp() > LOCK_STALE_SECONDS:
            fs.rm_file(lock)
        else:
            time.sleep(0.05)
        return False
    try:
        try:
            still = fs.cat_file(path)
        except FileNotFoundError:
            still = None
        if still != current:
            return False
        staged = f"{path}.{uuid.uuid4().hex}.partial"
        fs.pipe_file(staged, body)
        fs.mv(staged, path)  # a rename: readers see the old pointer or the new one, never a torn one
        return True
    finally:
        fs.rm_file(lock)
