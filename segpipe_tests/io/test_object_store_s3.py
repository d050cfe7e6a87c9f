"""The project's storage code against a real S3 server (SeaweedFS on 127.0.0.1, see segpipe_tests/s3_server.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
import fsspec
import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from segpipe.core.publish import RELEASE_MARKER, ReleaseConflictError, publish_release, release_prefix
from segpipe.io.object_store import ObjectStore
from segpipe.io.parquet_io_manager import PolarsParquetIOManager
from segpipe_tests.s3_server import S3Server

pytestmark = pytest.mark.s3

PREFIX = release_prefix("demo", "v1")


def _bucket_name(s3_bucket: str) -> str:
    return s3_bucket.removeprefix("s3://")


def _release_files(folder: Path, archive: bytes) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "demo-v1.zip").write_bytes(archive)
    (folder / "manifest.parquet").write_bytes(b"PAR1 manifest stand-in PAR1")
    return {"demo-v1.zip": folder / "demo-v1.zip", "manifest.parquet": folder / "manifest.parquet"}


# --- the server itself ----------------------------------------------------------------------------


def test_server_is_loopback_only_and_enforces_credentials(s3_server: S3Server, s3_bucket: str) -> None:
    import s3fs

    assert s3_server.endpoint_url.startswith("http://127.0.0.1:")
    bucket = _bucket_name(s3_bucket)
    s3_server.filesystem().pipe_file(f"{bucket}/probe.txt", b"hello")
    wrong = s3fs.S3FileSystem(
        skip_instance_cache=True, key=s3_server.access_key, secret="not-the-secret",
        client_kwargs={"endpoint_url": s3_server.endpoint_url, "region_name": s3_server.region})  # fmt: skip
    with pytest.raises(PermissionError):
        wrong.cat_file(f"{bucket}/probe.txt")
    anonymous = s3fs.S3FileSystem(
        skip_instance_cache=True, anon=True,
        client_kwargs={"endpoint_url": s3_server.endpoint_url, "region_name": s3_server.region})  # fmt: skip
    with pytest.raises(PermissionError):
        anonymous.cat_file(f"{bucket}/probe.txt")


# --- ObjectStore ----------------------------------------------------------------------------------


def test_object_store_round_trips_bytes_and_lists_them(s3_server: S3Server, s3_bucket: str) -> None:
    store = ObjectStore(root=f"{s3_bucket}/artefacts", endpoint_url=s3_server.endpoint_url)
    mask = bytes(range(256)) * 64
    assert store.write_bytes("masks/v1/b001/e1.png", mask) == "masks/v1/b001/e1.png"
    store.write_bytes("masks/v1/b001/e2.png", b"\x89PNG second")
    store.write_bytes("fused/v1/e1.png", b"fused")

    assert store.read_bytes("masks/v1/b001/e1.png") == mask
    assert store.read_bytes("fused/v1/e1.png") == b"fused"
    assert store.url("masks/v1/b001/e1.png") == f"{s3_bucket}/artefacts/masks/v1/b001/e1.png"

    fs, root = store.location()
    assert root == f"{_bucket_name(s3_bucket)}/artefacts"
    assert sorted(fs.find(root)) == [
        f"{root}/fused/v1/e1.png", f"{root}/masks/v1/b001/e1.png", f"{root}/masks/v1/b001/e2.png"]  # fmt: skip
    assert fs.size(f"{root}/masks/v1/b001/e1.png") == len(mask)
    # and the objects really are on the server, seen by an independent client
    assert s3_server.filesystem().cat_file(f"{root}/masks/v1/b001/e2.png") == b"\x89PNG second"
    with pytest.raises(FileNotFoundError):
        store.read_bytes("masks/v1/b001/missing.png")


# --- publish_release ------------------------------------------------------------------------------


def test_publish_release_is_write_once(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    fs, root = ObjectStore(root=f"{s3_bucket}/store", endpoint_url=s3_server.endpoint_url).location()
    archive = b"PK\x03\x04 release one " * 100
    files = _release_files(tmp_path / "one", archive)
    marker_path = f"{root}/{PREFIX}/{RELEASE_MARKER}"

    first = publish_release(fs, root, PREFIX, files, {"dataset": "demo", "version": "v1", "run_id": "run-1"})
    assert first.newly_published is True
    assert first.prefix == PREFIX
    assert sorted(fs.ls(f"{root}/{PREFIX}", detail=False)) == sorted(
        f"{root}/{PREFIX}/{name}" for name in (RELEASE_MARKER, "demo-v1.zip", "manifest.parquet"))
    assert fs.cat_file(f"{root}/{PREFIX}/demo-v1.zip") == archive
    stored_marker = fs.cat_file(marker_path)
    assert orjson.loads(stored_marker) == first.marker
    assert first.marker["files"]["demo-v1.zip"] == hashlib.sha256(archive).hexdigest()

    # The same files again (from another run): a no-op that returns the release already published.
    again = publish_release(
        fs, root, PREFIX, _release_files(tmp_path / "again", archive), {"dataset": "demo", "version": "v1", "run_id": "run-2"})
    assert again.newly_published is False
    assert again.marker == first.marker and again.marker["run_id"] == "run-1"
    assert fs.cat_file(marker_path) == stored_marker

    # Different content under the same version is refused, and nothing published changes.
    with pytest.raises(ReleaseConflictError):
        publish_release(
            fs, root, PREFIX, _release_files(tmp_path / "other", b"PK\x03\x04 something else"),
            {"dataset": "demo", "version": "v1", "run_id": "run-3"})  # fmt: skip
    independent = s3_server.filesystem()
    assert independent.cat_file(marker_path) == stored_marker
    assert independent.cat_file(f"{root}/{PREFIX}/demo-v1.zip") == archive


def test_exclusive_create_is_enforced_by_the_server(s3_server: S3Server, s3_bucket: str) -> None:
    """`fs.open(path, "xb")` sends If-None-Match: *; SeaweedFS refuses to overwrite (HTTP 412)."""
    fs = s3_server.filesystem()
    path = f"{_bucket_name(s3_bucket)}/{PREFIX}/{RELEASE_MARKER}"
    with fs.open(path, "xb") as f:
        f.write(b'{"first": true}')
    with pytest.raises(OSError):  # noqa: PT011 - the exact type is the subject of the next test
        with fs.open(path, "xb") as f:
            f.write(b'{"second": true}')
    assert fs.cat_file(path) == b'{"first": true}'
    # also when the upload is multipart (the condition is checked on CompleteMultipartUpload)
    with pytest.raises(OSError):  # noqa: PT011
        with fs.open(path, "xb", block_size=5 * 2**20) as f:
            f.write(b"x" * (11 * 2**20))
    assert s3_server.filesystem().cat_file(path) == b'{"first": true}'


SEAWEED_412_REASON = (
    "SeaweedFS 4.48 honours If-None-Match (412 PreconditionFailed, object kept) but its error has no "
    "<Condition>If-None-Match</Condition>, so s3fs raises OSError(EINVAL) instead of FileExistsError, "
    "which publish_release does not catch")


@pytest.mark.xfail(raises=OSError, strict=True, reason=SEAWEED_412_REASON)
def test_exclusive_create_conflict_is_a_file_exists_error(s3_server: S3Server, s3_bucket: str) -> None:
    fs = s3_server.filesystem()
    path = f"{_bucket_name(s3_bucket)}/marker.json"
    fs.pipe_file(path, b"first")
    with pytest.raises(FileExistsError):
        with fs.open(path, "xb") as f:
            f.write(b"second")


def _publisher_that_missed_the_marker(s3_server: S3Server, root: str) -> fsspec.AbstractFileSystem:
    """A second publisher whose view predates the first one's marker commit.

    It listed the release prefix while only the uploaded objects were there (s3fs caches that
    listing), so its `fs.exists(marker)` says False and publish_release reaches the exclusive
    create: the interleaving the marker's "xb" exists for.
    """
    late = s3_server.filesystem()
    late.pipe_file(f"{root}/{PREFIX}/demo-v1.zip", b"upload of an earlier, interrupted attempt")
    assert late.ls(f"{root}/{PREFIX}", detail=False) == [f"{root}/{PREFIX}/demo-v1.zip"]
    return late


@pytest.mark.xfail(raises=OSError, strict=True, reason=SEAWEED_412_REASON)
def test_racing_publisher_with_identical_content_sees_existing_release(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    root = f"{_bucket_name(s3_bucket)}/store"
    late = _publisher_that_missed_the_marker(s3_server, root)
    archive = b"PK\x03\x04 release one"
    first = publish_release(s3_server.filesystem(), root, PREFIX, _release_files(tmp_path / "a", archive), {"run_id": "a"})
    assert first.newly_published is True
    assert late.exists(f"{root}/{PREFIX}/{RELEASE_MARKER}") is False, "the late publisher's view is stale"

    second = publish_release(late, root, PREFIX, _release_files(tmp_path / "b", archive), {"run_id": "b"})
    assert second.newly_published is False
    assert second.marker == first.marker


@pytest.mark.xfail(
    raises=OSError, strict=True,
    reason=SEAWEED_412_REASON + "; once that is fixed this still fails on the zip assertion: publish_release "
    "uploads the objects before the marker's exclusive create, so a late publisher overwrites them",
)  # fmt: skip
def test_racing_publisher_with_other_content_is_refused_without_touching_the_release(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    root = f"{_bucket_name(s3_bucket)}/store"
    late = _publisher_that_missed_the_marker(s3_server, root)
    archive = b"PK\x03\x04 release one"
    publish_release(s3_server.filesystem(), root, PREFIX, _release_files(tmp_path / "a", archive), {"run_id": "a"})
    marker = s3_server.filesystem().cat_file(f"{root}/{PREFIX}/{RELEASE_MARKER}")

    with pytest.raises(ReleaseConflictError):
        publish_release(late, root, PREFIX, _release_files(tmp_path / "b", b"PK\x03\x04 other"), {"run_id": "b"})
    independent = s3_server.filesystem()
    assert independent.cat_file(f"{root}/{PREFIX}/{RELEASE_MARKER}") == marker
    assert independent.cat_file(f"{root}/{PREFIX}/demo-v1.zip") == archive


# --- Parquet IO manager ---------------------------------------------------------------------------


def test_polars_parquet_io_manager_stores_tables_in_the_bucket(s3_server: S3Server, s3_bucket: str) -> None:
    frame = pl.DataFrame({"entry_id": ["a", "b", "c"], "width": [128, 256, 512], "ok": [True, False, True]})
    seen: dict[str, pl.DataFrame] = {}

    @dg.asset
    def s3_frame() -> pl.DataFrame:
        return frame

    @dg.asset
    def s3_frame_summary(s3_frame: pl.DataFrame) -> pl.DataFrame:
        seen["input"] = s3_frame
        return s3_frame.group_by("ok").agg(pl.len().alias("n")).sort("ok")

    io_manager = PolarsParquetIOManager(base_path=f"{s3_bucket}/tables", endpoint_url=s3_server.endpoint_url)
    result = dg.materialize([s3_frame, s3_frame_summary], resources={"io_manager": io_manager})

    assert result.success
    assert_frame_equal(seen["input"], frame)
    fs = s3_server.filesystem()
    bucket = _bucket_name(s3_bucket)
    assert sorted(fs.find(f"{bucket}/tables")) == [
        f"{bucket}/tables/s3_frame.parquet", f"{bucket}/tables/s3_frame_summary.parquet"]  # fmt: skip
    with fs.open(f"{bucket}/tables/s3_frame.parquet", "rb") as f:
        assert_frame_equal(pl.read_parquet(f), frame)
    with fs.open(f"{bucket}/tables/s3_frame_summary.parquet", "rb") as f:
        assert_frame_equal(pl.read_parquet(f), pl.DataFrame({"ok": [False, True], "n": [1, 2]}),
                           check_dtypes=False)  # fmt: skip
    materialization = result.asset_materializations_for_node("s3_frame")[0]
    assert materialization.metadata["dagster/row_count"].value == 3
