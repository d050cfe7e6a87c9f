"""A paused store (SIGSTOP: the process holds its sockets but answers nothing) fails a read within the
request timeout, as a transient error for the step's retry policy, instead of hanging the run. The
server is private to this test: pausing the session's shared one would stall the other tests."""

import os
import signal
import time
import uuid

import pytest

from segpipe.io.object_store import ObjectStore
from segpipe.io.transient_errors import NOT_RETRIED, is_transient
from segpipe_tests.s3_server import run_s3_server

pytestmark = pytest.mark.s3

READ_TIMEOUT_S = 3.0


def test_a_paused_store_fails_a_read_within_the_timeout(tmp_path, monkeypatch):
    with run_s3_server(tmp_path / "weed") as server:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
        monkeypatch.setenv("AWS_DEFAULT_REGION", server.region)
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        bucket = f"segpipe-{uuid.uuid4().hex[:16]}"
        server.filesystem().mkdir(bucket)
        store = ObjectStore(root=f"s3://{bucket}", endpoint_url=server.endpoint_url, connect_timeout_s=1.0,
                            read_timeout_s=READ_TIMEOUT_S, request_attempts=1)
        store.write_bytes("masks/b1/e1.png", b"mask")
        os.killpg(server.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(Exception) as caught:
                store.read_bytes("masks/b1/e1.png")
            elapsed = time.monotonic() - started
        finally:
            os.killpg(server.pid, signal.SIGCONT)
        # one attempt (request_attempts=1), with time for a loaded machine; a second would take 2 timeouts
        assert READ_TIMEOUT_S <= elapsed < 2 * READ_TIMEOUT_S, f"{caught.value!r} after {elapsed:.1f} s"
        assert is_transient(caught.value, NOT_RETRIED), repr(caught.value)
        assert store.read_bytes("masks/b1/e1.png") == b"mask"  # and the store answers again once resumed
