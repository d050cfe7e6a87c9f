"""The project's storage code against a real S3 server (SeaweedFS on 127.0.0.1, see segpipe_tests/s3_server.py)."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from segpipe.io.object_store import ObjectStore
from segpipe.io.parquet_io_manager import PolarsParquetIOManager
from segpipe_tests.s3_server import S3Server

pytestmark = pytest.mark.s3


def _bucket_name(s3_bucket: str) -> str:
    return s3_bucket.removeprefix("s3://")


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
