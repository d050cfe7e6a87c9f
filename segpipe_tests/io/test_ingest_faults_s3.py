"""Faults injected into a real SeaweedFS while the ingest asset writes a batch's images to it: the
server killed mid-step and restarted, paused mid-step and resumed, refusing connections, refusing
access. Each run is the asset's own (dg.materialize, its retry policy included), and each test holds it
to the same three things: nothing raises out of the asset (a fault is a failed or retried step naming
its cause), every image of the batch is accounted for once the store is back (released or quarantined,
each stored object whole), and nothing partial is visible (a failed step materializes no table).

The destructive faults use a private server, so the session's shared one keeps serving other tests."""

import hashlib
import os
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

import dagster as dg
import pytest
import s3fs

from segpipe.core.ingest.landing import LandedBatch
from segpipe.core.ingest.sources import BatchSource, RejectedFile
from segpipe.defs.ingest.assets import ingest_annotation_batch
from segpipe.io.annotator_pseudonyms import AnnotatorPseudonyms
from segpipe_tests.conftest import PACKAGE_PIPELINE_CONFIG
from segpipe.io.object_store import LandingZone, ObjectStore
from segpipe.io.parquet_io_manager import PolarsParquetIOManager
from segpipe_tests.labelme_export import write_labelme_export
from segpipe_tests.s3_server import S3Server, free_ports, run_s3_server

pytestmark = pytest.mark.s3

BATCH = "b001"
IMAGES = 24
STEP = "ingest_annotation_batch"
READ_TIMEOUT_S = 1.5  # a paused server fails a request after this, instead of hanging the step
RESUME_AFTER_S = 6.0  # longer than one store call's timeouts (s3fs's exists makes two requests)


def landed_batch(landing: Path) -> set[str]:
    """A LabelMe batch of IMAGES noisy 320x240 PNGs (big enough that writing them takes a while);
    the image file names."""
    batch = write_labelme_export(landing / BATCH, n_images=IMAGES, width=320, height=240)
    (batch / "batch.json").write_text("{}")
    return {path.name for path in batch.glob("*.png")}


def use_credentials(monkeypatch: pytest.MonkeyPatch, key: str, secret: str) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    s3fs.S3FileSystem.clear_instance_cache()  # resources open cached clients; none may keep other credentials


def ingest(tmp_path: Path, store_root: str, endpoint_url: str) -> dg.ExecuteInProcessResult:
    """The ingest asset over the local landing, writing images to the store at `store_root`."""
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("annotation_batches", [BATCH])
        return dg.materialize(
            [ingest_annotation_batch], partition_key=BATCH, instance=instance, raise_on_error=False,
            resources={
                "landing_zone": InjectingLandingZone(root=str(tmp_path / "landing")),
                "object_store": ObjectStore(root=store_root, endpoint_url=endpoint_url, connect_timeout_s=1.0,
                                            read_timeout_s=READ_TIMEOUT_S, request_attempts=1),
                "annotator_pseudonyms": AnnotatorPseudonyms(key_file=str(tmp_path / "pseudonym.key")),
                "pipeline_config": PACKAGE_PIPELINE_CONFIG,
                "io_manager": PolarsParquetIOManager(base_path=str(tmp_path / "tables")),
            },
        )


def step_errors(result: dg.ExecuteInProcessResult, kind: dg.DagsterEventType) -> list[str]:
    """The error messages of the step's retries (STEP_UP_FOR_RETRY) or failure (STEP_FAILURE)."""
    events = [e for e in result.all_events if e.event_type == kind and e.step_key == STEP]
    return [e.event_specific_data.error.to_string() for e in events]


def assert_every_image_accounted_for(result: dg.ExecuteInProcessResult, images: set[str], fs: s3fs.S3FileSystem,
                                     store: str) -> None:
    """Released or quarantined, each once; every released image in the store, whole (its key is its hash)."""
    released = result.output_for_node(STEP, "batch_images")[BATCH]
    quarantined = result.output_for_node(STEP, "batch_quarantine")[BATCH]
    assert sorted([*released["file_name"], *quarantined["file_name"]]) == sorted(images)
    for key, image_id in released.select("image_key", "image_id").rows():
        assert hashlib.sha256(fs.cat_file(f"{store}/{key}")).hexdigest() == image_id


def assert_nothing_materialized(tmp_path: Path) -> None:
    assert not list((tmp_path / "tables").rglob(f"{BATCH}*")), "a failed step wrote part of the batch's tables"


@contextmanager
def private_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[S3Server, str]]:
    """A SeaweedFS of this test's own (the fault would stall every other test on the shared one), and
    the store prefix in a fresh bucket of it."""
    with run_s3_server(tmp_path / "weed") as server:
        use_credentials(monkeypatch, server.access_key, server.secret_key)
        bucket = f"segpipe-{uuid.uuid4().hex[:12]}"
        server.filesystem().mkdir(bucket)
        try:
            yield server, f"{bucket}/store"
        finally:
            with suppress(ProcessLookupError):
                server.crash()  # its data is thrown away: no need to wait for a clean shutdown


# The fault each test injects, run once when the step reads the batch's FAULT_AT-th image: the images
# before it are in the store by then, so the fault lands mid-step, the same way on every run.
FAULT: list[Callable[[], None]] = []
FAULT_AT = 5


class InjectingSource:
    """A batch source that runs the pending FAULT before handing over the FAULT_AT-th image it reads."""

    def __init__(self, source: BatchSource) -> None:
        self.source, self.uri, self.images_read = source, source.uri, 0

    def names(self) -> list[str]:
        return self.source.names()

    def rejected(self) -> list[RejectedFile]:
        return self.source.rejected()

    def open(self, name: str) -> BinaryIO:
        return self.source.open(name)

    def origin(self, name: str) -> str:
        return self.source.origin(name)

    def read(self, name: str) -> bytes:
        if name.endswith(".png"):
            self.images_read += 1
            if self.images_read == FAULT_AT and FAULT:
                FAULT.pop()()
        return self.source.read(name)


class InjectingLandingZone(LandingZone):
    """The real landing zone, its batches read through InjectingSource."""

    @contextmanager
    def open_batch(self, batch_id: str) -> Iterator[tuple[BatchSource, LandedBatch]]:
        with super().open_batch(batch_id) as (source, landed):
            yield InjectingSource(source), landed


@pytest.fixture
def fault() -> Iterator[list[Callable[[], None]]]:
    yield FAULT
    FAULT.clear()


@pytest.mark.slow  # the step's first retry comes after 0-10 s, at random: 15-30 s in all
def test_fault_store_killed_mid_step_then_restarted(tmp_path, monkeypatch, fault):
    """Fault store_killed_restarted: SIGKILL of the whole server while the step writes the batch's images,
    then a restart on the same port and data; the step's retry finishes the batch."""
    images = landed_batch(tmp_path / "landing")
    with private_server(tmp_path, monkeypatch) as (server, store), ExitStack() as restarted:
        again: list[S3Server] = []
        restart = threading.Thread(target=lambda: again.append(
            restarted.enter_context(run_s3_server(tmp_path / "weed", same_as=server))))

        def crash_and_restart() -> None:
            server.crash()
            restart.start()

        fault.append(crash_and_restart)
        result = ingest(tmp_path, f"s3://{store}", server.endpoint_url)
        restart.join()
        assert not fault, "the fault was never injected"
        assert result.success
        [first, *_] = step_errors(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)
        assert "Could not connect to the endpoint URL" in first, first
        assert_every_image_accounted_for(result, images, server.filesystem(), store)
        again[0].crash()


def test_fault_store_paused_mid_step_then_resumed(tmp_path, monkeypatch, fault):
    """Fault store_paused: SIGSTOP of the server (it holds its sockets and answers nothing) while the step
    writes the batch's images; a request fails after the read timeout instead of hanging the run, and
    the step's retry finishes the batch once the server is resumed."""
    images = landed_batch(tmp_path / "landing")
    with private_server(tmp_path, monkeypatch) as (server, store):
        def pause() -> None:
            os.killpg(server.pid, signal.SIGSTOP)
            threading.Timer(RESUME_AFTER_S, os.killpg, (server.pid, signal.SIGCONT)).start()

        fault.append(pause)
        try:
            result = ingest(tmp_path, f"s3://{store}", server.endpoint_url)
        finally:
            os.killpg(server.pid, signal.SIGCONT)
        assert not fault, "the fault was never injected"
        assert result.success
        [first, *_] = step_errors(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)
        assert "Read timeout on endpoint URL" in first, first
        assert_every_image_accounted_for(result, images, server.filesystem(), store)


def test_fault_store_denies_access(s3_server: S3Server, s3_bucket: str, tmp_path, monkeypatch):
    """Fault store_access_denied: credentials that may list but not write. The step fails at once (access
    does not come back by retrying), naming the refusal, and materializes nothing."""
    landed_batch(tmp_path / "landing")
    use_credentials(monkeypatch, s3_server.list_only_key, s3_server.list_only_secret)
    result = ingest(tmp_path, f"{s3_bucket}/store", s3_server.endpoint_url)
    assert not result.success
    assert step_errors(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == []
    [failure] = step_errors(result, dg.DagsterEventType.STEP_FAILURE)
    assert f"PermissionError: [Errno 13] {s3_bucket}/store/images/" in failure, failure
    assert "access denied (Forbidden): check the credentials segpipe uses" in failure, failure
    assert_nothing_materialized(tmp_path)
    assert s3_server.filesystem().find(f"{s3_bucket}/store") == []


@pytest.mark.slow  # the step's own retry policy waits about 35 s before it gives up
def test_fault_store_refuses_connections(tmp_path, monkeypatch):
    """Fault store_refused: nothing listens at the store's address. Every try is refused, the step is
    retried by its policy and then fails naming the endpoint; no table is materialized."""
    landed_batch(tmp_path / "landing")
    use_credentials(monkeypatch, "segpipe-test", "segpipe-test-secret")
    [port] = free_ports(1)
    endpoint = f"http://127.0.0.1:{port}"
    result = ingest(tmp_path, "s3://segpipe-nowhere/store", endpoint)
    assert not result.success
    assert len(step_errors(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)) == 3
    [failure] = step_errors(result, dg.DagsterEventType.STEP_FAILURE)
    assert f"Could not connect to the endpoint URL: \"{endpoint}/" in failure, failure
    assert_nothing_materialized(tmp_path)
