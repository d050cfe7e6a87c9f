"""The release publication protocol against a real S3 server (SeaweedFS on 127.0.0.1, see segpipe_tests/s3_server.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import threading
import zipfile
from pathlib import Path

import orjson
import pytest
import s3fs
from botocore.exceptions import EndpointConnectionError

from segpipe.cli.main import main
from segpipe.store import claims
from segpipe.store.claims import ClaimExpired
from segpipe.store.create_only import CreateOutcome, create_only, create_only_bytes
from segpipe.store.publish import (
    STALE_STAGING_AGE,
    ReleaseConflictError,
    open_staging,
    publish_release,
    publish_version,
)
from segpipe.store.release_read import list_releases
from segpipe.store.keys import LATEST_POINTER, RELEASE_MARKER, STAGING_DIR
from segpipe.store.pointer import advance_pointer, read_pointer
from segpipe_tests.store.gated_stores import GatedS3FileSystem
from segpipe_tests.store.published_release import publish_constructed_release
from segpipe_tests.store.publish_races import overtaking_an_unfinished_publisher, race_at_the_claim
from segpipe_tests.store.test_publish import RaisingReader, staged
from segpipe_tests.response_dropping_proxy import dropping_proxy
from segpipe_tests.s3_server import S3Server, run_s3_server

pytestmark = pytest.mark.s3

NOW = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
TAXONOMY = "street-v1-ab12cd34"
V1 = "2026-12-01.1-tax-street-v1-ab12cd34"


def _archive(folder: Path, payload: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "dataset.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("images/a.bin", payload)
        archive.writestr("meta.json", b'{"name": "demo"}')
    (folder / "manifest.parquet").write_bytes(b"manifest of " + hashlib.sha256(payload).digest())
    return path


def _publish(fs, root: str, folder: Path, payload: bytes, run_id: str = "run-1"):
    archive = _archive(folder, payload)
    staging = staged(fs, root, {"dataset.zip": archive, "manifest.parquet": folder / "manifest.parquet"}, NOW)
    return publish_release(fs, root, "demo", staging, "dataset.zip", {"run_id": run_id},
                           content_digest=hashlib.sha256(payload).hexdigest(), taxonomy_version=TAXONOMY, now=NOW)


def _root(s3_bucket: str) -> str:
    return f"{s3_bucket.removeprefix('s3://')}/store"


def _objects_under(fs: s3fs.S3FileSystem, path: str) -> list[str]:
    """Object keys under a prefix, from the S3 listing itself: SeaweedFS keeps emptied prefixes as directory
    entries, which s3fs `exists`/`find` report as present."""
    bucket, prefix, _ = fs.split_path(path)
    return [o["Key"] for o in fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=f"{prefix}/").get("Contents", [])]


def _pending_uploads(fs: s3fs.S3FileSystem, bucket: str) -> list:
    return fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])


def test_a_published_release_reads_back_and_verifies(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    fs, root = s3_server.filesystem(), _root(s3_bucket)
    payload = os.urandom(20 << 20)  # above one 8 MiB part: the archive goes up as a multipart upload
    published = _publish(fs, root, tmp_path / "a", payload)
    assert (published.version, published.newly_published, published.latest) == (V1, True, V1)

    reader = s3_server.filesystem()
    release = f"{root}/releases/demo/{V1}"
    assert sorted(reader.ls(release, detail=False)) == [
        f"{release}/{RELEASE_MARKER}", f"{release}/demo-{V1}.zip", f"{release}/manifest.parquet"]
    marker = orjson.loads(reader.cat_file(f"{release}/{RELEASE_MARKER}"))
    assert marker == published.marker
    zip_bytes = reader.cat_file(f"{release}/demo-{V1}.zip")
    assert hashlib.sha256(zip_bytes).hexdigest() == marker["files"][f"demo-{V1}.zip"]
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        assert archive.testzip() is None and archive.read("images/a.bin") == payload
    assert orjson.loads(reader.cat_file(f"{root}/releases/demo/{LATEST_POINTER}"))["version"] == V1
    assert _objects_under(reader, f"{root}/releases/demo/{STAGING_DIR}") == []
    assert _pending_uploads(reader, s3_bucket.removeprefix("s3://")) == []

    again = _publish(fs, root, tmp_path / "b", payload, run_id="run-2")
    assert (again.version, again.newly_published, again.marker["run_id"]) == (V1, False, "run-1")
    second = _publish(fs, root, tmp_path / "c", b"new content", run_id="run-3")
    assert (second.version, second.latest) == ("2026-12-01.2-tax-street-v1-ab12cd34",) * 2
    assert orjson.loads(reader.cat_file(f"{root}/releases/demo/{LATEST_POINTER}"))["version"] == second.version


def test_create_only_sees_seaweedfs_412_as_a_taken_key(s3_server: S3Server, s3_bucket: str) -> None:
    """SeaweedFS's 412 reaches s3fs as OSError(EINVAL), not FileExistsError; create_only reads it as "taken"."""
    fs = s3_server.filesystem()
    path = f"{s3_bucket.removeprefix('s3://')}/marker.json"
    assert create_only_bytes(fs, path, b"first") is CreateOutcome.CREATED
    assert create_only_bytes(fs, path, b"first") is CreateOutcome.ALREADY_SAME  # our own write, retried
    assert create_only_bytes(fs, path, b"second") is CreateOutcome.ALREADY_OTHER
    big = os.urandom(11 << 20)  # multipart: the condition is checked on CompleteMultipartUpload
    assert create_only_bytes(fs, path, big) is CreateOutcome.ALREADY_OTHER
    assert s3_server.filesystem().cat_file(path) == b"first"
    assert _pending_uploads(fs, s3_bucket.removeprefix("s3://")) == []


@pytest.mark.parametrize("written", [1 << 10, 12 << 20], ids=["one-shot", "multipart"])
def test_an_exception_while_uploading_leaves_nothing_at_the_key(
    s3_server: S3Server, s3_bucket: str, written: int
) -> None:
    fs, bucket = s3_server.filesystem(), s3_bucket.removeprefix("s3://")
    with pytest.raises(RuntimeError, match="producer crashed"):
        create_only(fs, f"{bucket}/releases/demo/{V1}/demo.zip", io.BufferedReader(RaisingReader(written)))
    assert not s3_server.filesystem().exists(f"{bucket}/releases/demo/{V1}/demo.zip")
    assert _pending_uploads(fs, bucket) == []


def test_a_second_publish_of_a_version_is_refused(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    fs, root = s3_server.filesystem(), _root(s3_bucket)
    first = _publish(fs, root, tmp_path / "a", b"one")
    release = f"{root}/{first.prefix}"
    before = {path: fs.cat_file(path) for path in fs.ls(release, detail=False)}
    with pytest.raises(ReleaseConflictError, match="never overwritten"):
        publish_version(fs, root, "demo", V1, staged(fs, root, {f"demo-{V1}.zip": _archive(tmp_path / "b", b"two")}, NOW),
                        {"run_id": "run-2"})
    reader = s3_server.filesystem()
    assert {path: reader.cat_file(path) for path in reader.ls(release, detail=False)} == before


@pytest.mark.parametrize("same_content", [False, True], ids=["other-content", "same-content"])
def test_two_concurrent_publishers_of_one_version_have_exactly_one_winner(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, same_content: bool
) -> None:
    root = _root(s3_bucket)
    for trial in range(5):
        version = f"2026-12-01.{trial + 1}-tax-{TAXONOMY}"
        payloads = [b"same" * 1000] * 2 if same_content else [b"alpha" * 1000, b"beta" * 1000]
        files = [{f"demo-{version}.zip": _archive(tmp_path / f"{trial}-{i}", p)} for i, p in enumerate(payloads)]
        barrier, outcomes = threading.Barrier(2), [None, None]

        def publish(i: int, files=files, version=version, barrier=barrier, outcomes=outcomes) -> None:
            fs = s3_server.filesystem()  # each publisher its own client, as two processes would have
            barrier.wait()
            try:
                outcomes[i] = publish_version(fs, root, "demo", version, staged(fs, root, files[i], NOW),
                                              {"run_id": f"run-{i}"})
            except ReleaseConflictError as exc:
                outcomes[i] = exc

        threads = [threading.Thread(target=publish, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        reader = s3_server.filesystem()
        marker = orjson.loads(reader.cat_file(f"{root}/releases/demo/{version}/{RELEASE_MARKER}"))
        [winner] = [i for i in range(2) if marker["run_id"] == f"run-{i}"]
        assert reader.cat_file(f"{root}/releases/demo/{version}/demo-{version}.zip") == (
            files[winner][f"demo-{version}.zip"].read_bytes())
        loser = outcomes[1 - winner]
        if same_content:  # the loser finds the winner's identical release and reports it as not new
            assert (outcomes[winner].newly_published, loser.newly_published) == (True, False)
            assert loser.marker == marker
        else:
            assert isinstance(loser, ReleaseConflictError) and outcomes[winner].newly_published
    assert _objects_under(s3_server.filesystem(), f"{root}/releases/demo/{STAGING_DIR}") == []


def test_a_server_killed_during_upload_leaves_no_partial_release_and_a_rerun_completes(tmp_path: Path) -> None:
    """Our own server (the session one must survive): killed mid-multipart, restarted from the same data dir."""
    bucket = "segpipe-crash"
    payload = os.urandom(64 << 20)
    archive = _archive(tmp_path / "a", payload)
    data_dir = tmp_path / "weed"
    failures: list[BaseException] = []
    with run_s3_server(data_dir) as server:
        fs = s3fs.S3FileSystem(skip_instance_cache=True, config_kwargs={
            "connect_timeout": 1, "read_timeout": 5, "retries": {"max_attempts": 1}}, **server.storage_options())
        fs.retries = 1
        fs.mkdir(bucket)
        root = f"{bucket}/store"

        def publish() -> None:
            try:
                publish_release(fs, root, "demo", staged(fs, root, {"dataset.zip": archive}, NOW), "dataset.zip",
                                {"run_id": "run-1"}, content_digest="d", taxonomy_version=TAXONOMY, now=NOW)
            except BaseException as exc:  # noqa: BLE001 - the failure is what this test inspects
                failures.append(exc)

        watcher = server.filesystem()
        thread = threading.Thread(target=publish)
        thread.start()
        for _ in range(2000):
            uploads = _pending_uploads(watcher, bucket)
            if uploads and watcher.call_s3("list_parts", Bucket=bucket, Key=uploads[0]["Key"],
                                           UploadId=uploads[0]["UploadId"]).get("Parts"):
                break
            threading.Event().wait(0.01)
        assert STAGING_DIR in uploads[0]["Key"], "the kill lands while the archive goes to staging"
        server.crash()
        thread.join(timeout=180)
    [failure] = failures
    assert isinstance(failure, EndpointConnectionError) and server.endpoint_url in str(failure)

    with run_s3_server(data_dir) as server:
        fs = server.filesystem()
        assert _objects_under(fs, f"{root}/releases") == []
        assert list_releases(fs, root, "demo") == []
        published = publish_release(fs, root, "demo", staged(fs, root, {"dataset.zip": archive}, NOW), "dataset.zip",
                                    {"run_id": "run-2"}, content_digest="d", taxonomy_version=TAXONOMY, now=NOW)
        assert (published.version, published.newly_published) == (V1, True)
        zip_bytes = fs.cat_file(f"{root}/releases/demo/{V1}/demo-{V1}.zip")
        assert zip_bytes == archive.read_bytes()
        assert [m["run_id"] for m in list_releases(fs, root, "demo")] == ["run-2"]


def test_stale_staging_is_removed_at_the_next_publish(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    fs, root = s3_server.filesystem(), _root(s3_bucket)
    staging = f"{root}/releases/demo/{STAGING_DIR}"
    fs.pipe_file(f"{staging}/20261130T000000Z-crashedrun01/demo.zip", b"left by a crashed run")
    fs.pipe_file(f"{staging}/20261129T000000Z-emptiedrun01/demo.zip", b"removed, its prefix stays listed")
    fs.rm_file(f"{staging}/20261129T000000Z-emptiedrun01/demo.zip")
    fs.pipe_file(f"{staging}/20261201T090000Z-runningnow01/demo.zip", b"a run in progress")
    _publish(fs, root, tmp_path / "a", b"one")
    assert _objects_under(s3_server.filesystem(), staging) == [
        f"{staging.split('/', 1)[1]}/20261201T090000Z-runningnow01/demo.zip"]


def test_concurrent_pointer_moves_end_at_the_highest_sequence(s3_server: S3Server, s3_bucket: str) -> None:
    path = f"{s3_bucket.removeprefix('s3://')}/releases/demo/{LATEST_POINTER}"
    for trial in range(3):
        barrier, seen = threading.Barrier(4), {}

        def move(sequence: int, barrier=barrier, seen=seen, trial=trial) -> None:
            fs = s3_server.filesystem()
            barrier.wait()
            seen[sequence] = advance_pointer(fs, path, {"version": f"v{trial}.{sequence}", "sequence": 10 * trial + sequence})

        threads = [threading.Thread(target=move, args=(s,)) for s in (1, 2, 3, 4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        highest = {"version": f"v{trial}.4", "sequence": 10 * trial + 4}
        assert read_pointer(s3_server.filesystem(), path) == highest
        assert seen[4] == highest


def test_a_lost_response_to_our_marker_write_is_retried_and_read_back_as_ours(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    """The marker's PUT succeeds but its answer is lost; the client retries, the server answers 412
    (the key is taken), and publication reads the marker back, finds its own bytes and succeeds."""
    root = _root(s3_bucket)
    with dropping_proxy(s3_server.endpoint_url, r"PUT /[^ ]*/_RELEASE\.json") as proxy:
        fs = s3fs.S3FileSystem(
            skip_instance_cache=True, key=s3_server.access_key, secret=s3_server.secret_key,
            client_kwargs={"endpoint_url": proxy.url, "region_name": s3_server.region},
            config_kwargs={"retries": {"max_attempts": 3, "mode": "standard"}})
        published = _publish(fs, root, tmp_path / "one", b"release one")
    assert proxy.dropped == 1 and len(proxy.matched) >= 2  # the first answer was lost, and the write was retried
    assert published.newly_published and published.version == V1
    independent = s3_server.filesystem()
    marker = orjson.loads(independent.cat_file(f"{root}/releases/demo/{V1}/{RELEASE_MARKER}"))
    assert marker["run_id"] == "run-1" and marker["content_digest"] == hashlib.sha256(b"release one").hexdigest()


def test_an_archive_streamed_into_staging_publishes_without_a_local_copy(
    s3_server: S3Server, s3_bucket: str
) -> None:
    """The release asset writes its ZIP straight into the store: multipart, not seekable, hashed on the way."""
    fs, root = s3_server.filesystem(), _root(s3_bucket)
    payload = os.urandom(18 << 20)
    with open_staging(fs, root, "demo", NOW) as staging:
        with staging.open("dataset.zip") as out, zipfile.ZipFile(out, "w") as archive:
            archive.writestr("images/a.bin", payload)
            archive.writestr("meta.json", b'{"name": "demo"}')
        staging.put_bytes("manifest.parquet", b"manifest")
        published = publish_release(fs, root, "demo", staging, "dataset.zip", {"run_id": "run-1"},
                                    content_digest="streamed", taxonomy_version=TAXONOMY, now=NOW)
    reader = s3_server.filesystem()
    zip_bytes = reader.cat_file(f"{root}/{published.prefix}/demo-{V1}.zip")
    assert hashlib.sha256(zip_bytes).hexdigest() == published.marker["files"][f"demo-{V1}.zip"]
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        assert archive.testzip() is None and archive.read("images/a.bin") == payload
    assert _objects_under(reader, f"{root}/releases/demo/{STAGING_DIR}") == []
    assert _pending_uploads(reader, s3_bucket.removeprefix("s3://")) == []


def test_an_exception_while_streaming_into_staging_aborts_the_upload(s3_server: S3Server, s3_bucket: str) -> None:
    fs, root, bucket = s3_server.filesystem(), _root(s3_bucket), s3_bucket.removeprefix("s3://")
    with pytest.raises(RuntimeError, match="release writer crashed"), open_staging(fs, root, "demo", NOW) as staging:
        with staging.open("dataset.zip") as out:
            out.write(os.urandom(12 << 20))  # one part is already uploaded
            raise RuntimeError("release writer crashed")
    reader = s3_server.filesystem()
    assert _objects_under(reader, f"{root}/releases") == []
    assert _pending_uploads(reader, bucket) == []


def test_the_janitor_aborts_multipart_uploads_left_by_a_killed_publisher(s3_server: S3Server, s3_bucket: str) -> None:
    """A killed process cannot abort its upload; its parts stay stored and unseen until the next publish
    after STALE_STAGING_AGE aborts them. Uploads outside the release prefix, or recent ones, are left alone."""
    fs, root, bucket = s3_server.filesystem(), _root(s3_bucket), s3_bucket.removeprefix("s3://")
    prefix = root.split("/", 1)[1]
    left = {}
    for key in (f"{prefix}/releases/demo/{STAGING_DIR}/20261201T000000Z-killedrun001/dataset.zip",
                f"{prefix}/releases/demo/{V1}/demo-{V1}.zip", f"{prefix}/elsewhere/big.bin"):
        upload = fs.call_s3("create_multipart_upload", Bucket=bucket, Key=key)
        fs.call_s3("upload_part", Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 1024)
        left[key] = upload["UploadId"]

    open_staging(fs, root, "demo", dt.datetime.now(dt.UTC)).remove()  # a publish now: the uploads are recent
    assert sorted(u["Key"] for u in _pending_uploads(fs, bucket)) == sorted(left)

    later = dt.datetime.now(dt.UTC) + STALE_STAGING_AGE + dt.timedelta(minutes=1)
    open_staging(fs, root, "demo", later).remove()
    assert [u["Key"] for u in _pending_uploads(fs, bucket)] == [f"{prefix}/elsewhere/big.bin"]
    fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=f"{prefix}/elsewhere/big.bin",
               UploadId=left[f"{prefix}/elsewhere/big.bin"])


def test_a_version_left_without_its_marker_is_removed_at_a_publish_once_its_claim_is_long_lapsed(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A publisher that gave up after creating its objects leaves the version's full ZIP without a marker;
    the janitor deletes it once its claim and objects are older than STALE_STAGING_AGE, not before."""
    fs, root = s3_server.filesystem(), _root(s3_bucket)
    monkeypatch.setattr(claims, "COMMIT_DEADLINE", dt.timedelta(0))
    with pytest.raises(ClaimExpired):
        _publish(fs, root, tmp_path / "a", b"one")
    monkeypatch.undo()
    folder = f"{root}/releases/demo/{V1}"
    assert sorted(key.rsplit("/", 1)[-1] for key in _objects_under(fs, folder)) == [f"demo-{V1}.zip", "manifest.parquet"]

    now = dt.datetime.now(dt.UTC)
    open_staging(fs, root, "demo", now + dt.timedelta(hours=1)).remove()  # its claimant could still be alive
    assert len(_objects_under(s3_server.filesystem(), folder)) == 2
    open_staging(fs, root, "demo", now + STALE_STAGING_AGE + dt.timedelta(minutes=1)).remove()
    assert _objects_under(s3_server.filesystem(), folder) == []
    assert _publish(fs, root, tmp_path / "b", b"one").version == V1.replace(".1-", ".2-")


def _gated(s3_server: S3Server):
    return lambda gate: GatedS3FileSystem(gate, **s3_server.storage_options())


@pytest.mark.parametrize("same_content", [False, True], ids=["other-content", "same-content"])
def test_publishers_racing_for_one_sequence_commit_each_content_once(
    s3_server: S3Server, s3_bucket: str, same_content: bool
) -> None:
    race_at_the_claim(_gated(s3_server), _root(s3_bucket), same_content)


@pytest.mark.parametrize("same_content", [False, True], ids=["other-content", "same-content"])
def test_a_publisher_does_not_overtake_one_that_has_not_committed_yet(
    s3_server: S3Server, s3_bucket: str, same_content: bool
) -> None:
    overtaking_an_unfinished_publisher(_gated(s3_server), _root(s3_bucket), same_content)


def test_verify_checks_a_release_folder_on_s3_and_reports_refused_access_as_such(
    s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    """The CLI resolves credentials from the environment when it creates its (cached) S3 client, so the
    cache is cleared before each run and after the test: later tests must not inherit wrong credentials."""
    request.addfinalizer(s3fs.S3FileSystem.clear_instance_cache)
    fs, root = s3_server.filesystem(), _root(s3_bucket)
    published = publish_constructed_release(fs, root)
    url = f"s3://{root}/{published.prefix}"
    monkeypatch.setenv("SEGPIPE_S3_ENDPOINT_URL", s3_server.endpoint_url)
    s3fs.S3FileSystem.clear_instance_cache()
    assert main(["verify", url]) == 0
    with fs.open(f"{root}/{published.prefix}/demo-{published.version}.zip", "rb") as f, zipfile.ZipFile(f) as archive:
        listed = len(archive.namelist()) - 1  # every member but SHA256SUMS itself
    assert capsys.readouterr().out.startswith(f"{url}: OK (2 objects match _RELEASE.json; its ZIP: {listed} files match ")

    manifest = f"{root}/{published.prefix}/manifest.parquet"
    damaged = bytearray(fs.cat_file(manifest))
    damaged[len(damaged) // 2] ^= 0x01
    fs.pipe_file(manifest, bytes(damaged))  # as bit rot or a hand edit would leave it
    assert main(["verify", url]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"segpipe verify: manifest.parquet: SHA-256 is {hashlib.sha256(damaged).hexdigest()}, _RELEASE.json says "
        f"{published.marker['files']['manifest.parquet']}: the object changed after it was published; restore it "
        "from a copy that matches", f"{url}: FAILED, 1 problems"]

    for key, secret, refusal in ((s3_server.access_key, "not-the-secret", "SignatureDoesNotMatch"),
                                 ("AKIANOSUCHKEY0000000", s3_server.secret_key, "InvalidAccessKeyId"),
                                 (s3_server.list_only_key, s3_server.list_only_secret, "AccessDenied")):
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        s3fs.S3FileSystem.clear_instance_cache()
        assert main(["verify", url]) == 1, refusal
        [problem, failed] = capsys.readouterr().err.splitlines()
        assert problem.startswith(f"segpipe verify: {url}: access denied ("), (refusal, problem)
        assert problem.endswith("): check the credentials segpipe uses (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                                "or AWS_PROFILE), SEGPIPE_S3_ENDPOINT_URL, and that they may read this bucket")
        assert failed == f"{url}: FAILED, 1 problems"
