"""Fault store_paused_at_commit: a real release (the constructed release's ZIP and manifest, published as
the release asset publishes) is staged and its sequence claimed on a private SeaweedFS, which is then
paused (SIGSTOP) at the very write that would commit it, its marker. The publish fails with a timeout
the release step's retry policy takes for transient, not a hang; no release is visible (no marker,
no latest pointer); and once the server is resumed the rerun commits exactly one version, every object
of which matches its marker, with counts that add up."""

import os
import signal
import threading
import traceback
import uuid

import pytest

from segpipe.io.locations import RequestLimits, s3_options, without_s3fs_retries
from segpipe.io.transient_errors import NOT_RETRIED, is_transient
from segpipe.store.keys import LATEST_POINTER
from segpipe.store.release_check import verify_release_folder
from segpipe.store.release_read import latest_version, list_releases
from segpipe_tests.s3_server import run_s3_server
from segpipe_tests.store.gated_stores import Gate, GatedS3FileSystem, marker_write
from segpipe_tests.store.published_release import publish_constructed_release

pytestmark = pytest.mark.s3

READ_TIMEOUT_S = 1.5
RESUME_AFTER_S = 30.0  # far past the publish's own timeouts; the test resumes the server itself


def test_fault_store_paused_at_the_commit_of_a_release(tmp_path):
    with run_s3_server(tmp_path / "weed") as server:
        bucket = f"segpipe-{uuid.uuid4().hex[:12]}"
        server.filesystem().mkdir(bucket)
        root = f"{bucket}/store"
        resume = threading.Timer(RESUME_AFTER_S, os.killpg, (server.pid, signal.SIGCONT))

        def pause() -> None:
            os.killpg(server.pid, signal.SIGSTOP)
            resume.start()

        options = s3_options(server.endpoint_url, RequestLimits(1.0, READ_TIMEOUT_S, 1))  # as the release asset's store
        publisher = without_s3fs_retries(GatedS3FileSystem(
            Gate(marker_write, pause), skip_instance_cache=True, key=server.access_key, secret=server.secret_key,
            config_kwargs=options["config_kwargs"], client_kwargs={**options["client_kwargs"], "region_name": server.region}))
        try:
            with pytest.raises(Exception) as caught:
                publish_constructed_release(publisher, root)
            hung = resume.finished.is_set()  # the timer resumed the server before the publish gave up
        finally:
            resume.cancel()
            os.killpg(server.pid, signal.SIGCONT)
        assert resume.ident is not None, "the server was never paused: the publish wrote no marker"
        assert not hung, "the publish waited for the paused server instead of timing out"
        assert is_transient(caught.value, NOT_RETRIED), repr(caught.value)
        assert "Read timeout on endpoint URL" in str(caught.value) and "_RELEASE.json" in str(caught.value), (
            "".join(traceback.format_exception(caught.value)))  # which request timed out, and from where

        reader = server.filesystem()
        assert list_releases(reader, root, "demo") == []
        assert latest_version(reader, root, "demo") is None
        assert not reader.exists(f"{root}/releases/demo/{LATEST_POINTER}")

        published = publish_constructed_release(server.filesystem(), root)  # the step's retry
        assert published.newly_published
        assert [m["version"] for m in list_releases(reader, root, "demo")] == [published.version]
        checked = verify_release_folder(reader, f"{root}/{published.prefix}")
        assert checked.problems == [] and checked.objects_checked == len(published.marker["files"])
        assert checked.archive.images > 0  # its meta.json and ledger counts add up: verify names them otherwise
        server.crash()  # throwaway data: no clean shutdown to wait for
