"""Batches on a real S3 server (SeaweedFS): readiness, and ingestion identical to local sources."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import fsspec
import orjson
import polars as pl
import pytest

from segpipe.core.ingest.batch import IngestedBatch, ingest_batch
from segpipe.core.ingest.landing import BATCH_MANIFEST, find_ready_batches, list_ready_batches
from segpipe.core.ingest.sources import open_landed_batch, open_source
from segpipe.core.release.released_names import ReleasedNames
from segpipe.io.object_store import LandingZone
from segpipe_tests.s3_server import S3Server

pytestmark = pytest.mark.s3
KEY = b"s3-test-key-0123456789"


def test_only_marked_folders_and_whole_archives_are_ready(s3_server: S3Server, s3_bucket: str) -> None:
    landing = LandingZone(root=f"{s3_bucket}/landing", endpoint_url=s3_server.endpoint_url)
    fs, root = landing.location()
    assert landing.ready_batches() == []  # nothing uploaded yet: the prefix does not exist
    manifest = orjson.dumps({"format": "coco_instances", "annotation_file": "annotations.json"})
    fs.pipe({
        f"{root}/b001_ready/images/scene_00001.jpg": b"\xff\xd8 jpeg",
        f"{root}/b001_ready/annotations.json": b"{}",
        f"{root}/b001_ready/{BATCH_MANIFEST}": manifest,
        f"{root}/b002_uploading/images/scene_00002.jpg": b"\xff\xd8 jpeg",
        f"{root}/b002_uploading/annotations.json": b"{}",
        f"{root}/b003_archive.zip": b"PK\x05\x06" + b"\0" * 18,
        f"{root}/b004_archive.zip.part": b"PK",
    })  # fmt: skip
    ready = find_ready_batches(fs, root)
    assert list(ready) == ["b001_ready", "b003_archive"]
    assert ready["b003_archive"].is_archive and ready["b003_archive"].ready_at > 0

    fs.pipe_file(f"{root}/b002_uploading/{BATCH_MANIFEST}", manifest)  # the upload finishes
    assert list_ready_batches(fs, root) == ["b001_ready", "b002_uploading", "b003_archive"]


def _zip_folder(folder: Path, archive: Path) -> None:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(folder).as_posix())


def _ingest(fs: fsspec.AbstractFileSystem, root: str, batch_id: str, stored: dict[str, bytes]) -> IngestedBatch:
    with open_landed_batch(fs, root, batch_id) as (source, landed):
        return ingest_batch(source, batch_id, KEY, stored.__setitem__, landed_at=landed.ready_at)


def _comparable(batch: IngestedBatch) -> dict:
    """The tables, minus the columns that say where and when the files landed."""
    return {
        "images": batch.images.drop("source_uri", "landed_at"), "shapes": batch.shapes,
        "quarantine": batch.quarantine.drop("message"), "files": batch.files.drop("reason"),
    }


def test_a_batch_gives_identical_tables_from_a_folder_a_zip_and_an_s3_prefix(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path,
) -> None:
    from segpipe.demo import generate_demo

    demo = generate_demo(tmp_path / "demo", n_scenes=16, width=128, height=64, seed=1)
    truth = orjson.loads(demo.ground_truth_path.read_bytes())
    (corrupt,) = [d for d in truth["defects"] if d["kind"] == "corrupt_image"]
    zips = tmp_path / "zips"
    zips.mkdir()
    for batch_id in demo.batch_ids:
        _zip_folder(demo.landing_root / batch_id, zips / f"{batch_id}.zip")
    s3 = LandingZone(root=f"{s3_bucket}/landing", endpoint_url=s3_server.endpoint_url)
    s3_fs, s3_root = s3.location()
    s3_fs.put(f"{demo.landing_root}/", s3_root, recursive=True)
    s3_zips = LandingZone(root=f"{s3_bucket}/zips", endpoint_url=s3_server.endpoint_url)
    zip_fs, zip_root = s3_zips.location()
    zip_fs.put(f"{zips}/", zip_root, recursive=True)
    local = fsspec.filesystem("file")

    assert s3.ready_batches() == s3_zips.ready_batches() == demo.batch_ids
    for batch_id in demo.batch_ids:
        stored: dict[str, dict[str, bytes]] = {"folder": {}, "zip": {}, "s3": {}, "s3zip": {}}
        results = {
            "folder": _ingest(local, str(demo.landing_root), batch_id, stored["folder"]),
            "zip": _ingest(local, str(zips), batch_id, stored["zip"]),
            "s3": _ingest(s3_fs, s3_root, batch_id, stored["s3"]),
            "s3zip": _ingest(zip_fs, zip_root, batch_id, stored["s3zip"]),
        }
        reference = _comparable(results["folder"])
        for name, result in results.items():
            for table, frame in _comparable(result).items():
                assert frame.equals(reference[table]), f"{batch_id}: {table} from {name} differs from the folder's"
            assert stored[name] == stored["folder"]
        image_files = sorted(p.relative_to(demo.landing_root / batch_id).as_posix()
                             for p in (demo.landing_root / batch_id / "images").rglob("*") if p.is_file())
        s3_result = results["s3"]
        assert sorted(s3_result.images["file_name"].to_list() + s3_result.quarantine["file_name"].to_list()) == image_files
        for row in s3_result.images.iter_rows(named=True):  # the bytes hashed are the bytes in the bucket
            assert row["source_uri"].startswith("s3://")
            assert hashlib.sha256(s3_fs.cat_file(row["source_uri"])).hexdigest() == row["image_id"]
        assert results["s3zip"].images["source_uri"].str.contains(r"\.zip!/images/").all()
        if batch_id == corrupt["batch_id"]:
            rules = dict(zip(s3_result.quarantine["file_name"], s3_result.quarantine["rule"], strict=True))
            assert rules[f"images/{corrupt['file_name']}"] == "image_undecodable"
            for landing, name in ((s3, "s3"), (s3_zips, "s3zip")):  # a release names the file in its batch
                released = ReleasedNames.of([batch_id], landing.uri(), b"k" * 32).table(results[name].quarantine, "message")
                [message] = released.filter(pl.col("rule") == "image_undecodable")["message"]
                assert message.startswith(f"images/{corrupt['file_name']}: cannot decode image"), message


def test_an_unsafe_archive_on_s3_is_refused_whole(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("images/a.jpg", b"x")
        out.writestr("../../escape.json", b"{}")
    fs = s3_server.filesystem()
    bucket = s3_bucket.removeprefix("s3://")
    fs.put_file(str(archive), f"{bucket}/evil/evil.zip")
    with pytest.raises(Exception) as caught, open_source(fs, f"{bucket}/evil/evil.zip"):
        pass
    assert getattr(caught.value, "rule", None) == "unsafe_archive_path"
    assert "escape.json" in str(caught.value)
