"""The retry classifier over errors really raised: by SeaweedFS, by the kernel and by the allocator."""

import errno
import uuid

import pytest
import s3fs

from segpipe.core.shared.artefacts import ArtefactStore, DamagedArtefact
from segpipe.core.shared.errors import ConfigError
from segpipe.io.transient_errors import NOT_RETRIED, is_transient
from segpipe_tests.s3_server import S3Server, free_ports

pytestmark = pytest.mark.s3


def _raised(action) -> BaseException:
    with pytest.raises(BaseException) as caught:
        action()
    return caught.value


def test_access_denied_from_the_store_is_not_retried(s3_server: S3Server, s3_bucket: str):
    s3_server.filesystem().pipe_file(f"{s3_bucket}/obj", b"x")
    reader = s3fs.S3FileSystem(skip_instance_cache=True, key=s3_server.list_only_key, secret=s3_server.list_only_secret,
                               client_kwargs={"endpoint_url": s3_server.endpoint_url, "region_name": s3_server.region})
    error = _raised(lambda: reader.cat_file(f"{s3_bucket}/obj"))
    assert isinstance(error, PermissionError)
    assert not is_transient(error, NOT_RETRIED)


def test_a_refused_connection_is_retried():
    [port] = free_ports(1)
    fs = s3fs.S3FileSystem(skip_instance_cache=True, key="k", secret="s",
                           client_kwargs={"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1"},
                           config_kwargs={"retries": {"max_attempts": 1}})
    fs.retries = 1  # s3fs's own retry loop, once
    assert is_transient(_raised(lambda: fs.cat_file(f"bucket-{uuid.uuid4().hex[:8]}/obj")), NOT_RETRIED)


def test_a_full_disk_and_no_memory_are_not_retried():
    def fill() -> None:
        with open("/dev/full", "wb", buffering=0) as full:
            full.write(b"x")

    enospc = _raised(fill)
    assert isinstance(enospc, OSError) and enospc.errno == errno.ENOSPC
    assert not is_transient(enospc, NOT_RETRIED)
    no_memory = _raised(lambda: bytearray(2**62))
    assert isinstance(no_memory, MemoryError) and not is_transient(no_memory, NOT_RETRIED)


def test_a_damaged_png_is_not_retried():
    store = ArtefactStore.in_memory({"masks/b/e-0.png": b"\x89PNG\r\n\x1a\n truncated"})
    damaged = _raised(lambda: store.read_png("masks/b/e-0.png"))
    assert isinstance(damaged, DamagedArtefact) and not is_transient(damaged, NOT_RETRIED)


def test_the_chain_decides_a_wrapped_error():
    def wrapped(outer: type[Exception]) -> BaseException:
        try:
            try:
                raise ConnectionResetError(errno.ECONNRESET, "connection reset by peer")
            except ConnectionResetError as exc:
                raise outer("reading the store failed") from exc
        except Exception as exc:  # noqa: BLE001 - the error under test
            return exc

    assert is_transient(wrapped(RuntimeError), NOT_RETRIED)
    assert not is_transient(wrapped(ConfigError), NOT_RETRIED)
