"""Hostile inputs that need assertions of their own, beyond the catalogue's (segpipe_tests/hostile_inputs.py,
tested by test_hostile_catalogue.py): the exact scope of a COCO duplicate key (one image, not the file),
the bounds that must never refuse a large real file, every problem of an image in its one quarantine
row, a batch.json that is not a regular file, and the members a refused archive lists."""

import json
import os
import zipfile
from pathlib import Path

import fsspec
import pytest

from segpipe.core.ingest.batch import ingest_batch, quarantine_unreadable_batch
from segpipe.core.ingest.formats.coco import COCO_INSTANCES
from segpipe.core.ingest.formats.reader import ReaderOptions
from segpipe.core.ingest.sources import open_source
from segpipe.core.shared.errors import InputError
from segpipe_tests.core.ingest.formats.memory_source import MemorySource
from segpipe_tests.hostile_inputs import (
    CITY,
    GOOD_ANNOTATIONS,
    LEFT,
    H,
    W,
    city_files,
    city_json,
    coco_annotation,
    coco_json,
    noisy_png,
    png,
    write_files,
)

KEY = b"hostile-test-key-0123"


def write_batch(root: Path, bad_json: bytes | None = None, bad_image: bytes | None = None) -> Path:
    """A Cityscapes export: good0, good1, and an item bad with whatever the test plants."""
    root.mkdir(parents=True, exist_ok=True)
    write_files(root, city_files(bad_json, bad_image))
    return root


def ingest(path: Path):
    with open_source(fsspec.filesystem("file"), str(path)) as source:
        return ingest_batch(source, path.name, KEY)


def read_coco(document: bytes) -> dict:
    """The reader as ingest runs it, streaming the file: image file name -> image."""
    source = MemorySource({"annotations/instances_default.json": document}, streamed_only=True)
    images = COCO_INSTANCES.read(source, ["annotations/instances_default.json"], ReaderOptions(images_dir="images"))
    return {image.file_name: image for image in images}


def test_a_duplicate_key_in_a_coco_annotation_quarantines_its_image_not_the_file():
    document = coco_json(GOOD_ANNOTATIONS).replace(b'"category_id": 1', b'"category_id": 1, "category_id": 2', 1)
    images = read_coco(document)
    a, b = images["images/a.png"], images["images/b.png"]
    assert (a.error.rule, a.shapes) == ("duplicate_key", [])
    assert str(a.error) == ("mem://batch/annotations/instances_default.json: image 'images/a.png': annotation id 1: "
                            "$.annotations[0] gives the key 'category_id' twice")
    assert b.error is None and [s.raw_label for s in b.shapes] == ["road"]


def test_a_duplicate_key_in_a_coco_image_entry_quarantines_that_image_only():
    images = [{"id": 1, "file_name": "a.png", "width": W, "height": H},
              {"id": 2, "file_name": "b.png", "width": W, "height": H}]
    document = coco_json(GOOD_ANNOTATIONS, images).replace(b'"width": 16', b'"width": 16, "width": 32', 1)
    read = read_coco(document)
    assert read["images/a.png"].error.rule == "duplicate_key"
    assert "image 'images/a.png': $.images[0] gives the key 'width' twice" in str(read["images/a.png"].error)
    assert read["images/b.png"].error is None and len(read["images/b.png"].shapes) == 1


def test_the_bounds_never_refuse_a_large_coco_file_which_is_still_streamed():
    count = 50_000
    annotations = [coco_annotation(i, image_id=1 + i % 2, category_id=1 + i % 2) for i in range(count)]
    images = read_coco(coco_json(annotations))
    assert [len(image.shapes) for image in images.values()] == [count // 2, count // 2]
    assert all(image.error is None for image in images.values())


def objects_json(*polygons: object) -> bytes:
    return json.dumps({"imgHeight": H, "imgWidth": W, "objects": [
        {"label": f"thing{i}", "polygon": polygon} for i, polygon in enumerate(polygons)]}).encode()


def truncated_png() -> bytes:
    whole = noisy_png()
    return whole[: len(whole) // 2]


def test_every_problem_of_an_image_is_named_in_its_one_quarantine_row(tmp_path):
    good = ((0, 0), (15, 0), (15, 7))
    bad_json = objects_json(good, ((0, 0), (1e300, 0), (15, 7)), ((0, 0), ("x", 0), (15, 7)), good)
    result = ingest(write_batch(tmp_path / "batch", bad_json, truncated_png()))
    assert result.images.height == 2
    [row] = result.quarantine.to_dicts()
    assert (row["file_name"], row["rule"]) == (f"{LEFT}/bad_leftImg8bit.png", "coordinates_out_of_frame")
    problems = row["message"].split("; also ")
    assert len(problems) == 3
    assert "shape #1 ('thing1') has a vertex more than one image size outside" in problems[0]
    assert problems[1].startswith(f"malformed_polygon: {tmp_path}/batch/{CITY}/bad_gtFine_polygons.json: ")
    assert "shape #2 ('thing2') has a coordinate that is not a number" in problems[1]
    assert problems[2].startswith(f"image_undecodable: {tmp_path}/batch/{LEFT}/bad_leftImg8bit.png: ")


def test_an_image_with_many_problems_lists_the_first_twenty_and_counts_the_rest(tmp_path):
    bad_json = objects_json(*[((0, 0), (1, 1))] * 25)
    [row] = ingest(write_batch(tmp_path / "batch", bad_json)).quarantine.to_dicts()
    assert row["rule"] == "degenerate_polygon"
    assert row["message"].count("has fewer than 3 vertices") == 20
    assert "shape #19 ('thing19')" in row["message"] and "thing20" not in row["message"]
    assert row["message"].endswith("; and 5 more problems")


@pytest.mark.parametrize("target", ["settings.json", "absent.json"])
def test_a_batch_json_that_is_a_link_quarantines_the_batch_instead_of_reading_it_with_defaults(tmp_path, target):
    batch = write_batch(tmp_path / "batch")
    (tmp_path / "settings.json").write_text('{"format": "cityscapes_polygons", "gold": true, "licence": "CC-BY-4.0"}')
    os.symlink(tmp_path / target, batch / "batch.json")
    result = ingest(batch)
    assert result.images.is_empty() and result.source_format is None
    assert result.quarantine["file_name"].to_list() == [f"{LEFT}/{stem}_leftImg8bit.png" for stem in ("bad", "good0", "good1")]
    assert set(result.quarantine["rule"]) == {"invalid_batch_manifest"}
    assert result.quarantine["message"][0] == (
        f"{batch}/batch.json: is a symbolic link or special file; links are never followed; batch.json must be a "
        "regular file, so the batch is quarantined rather than read without its settings")
    manifest = result.files.filter(result.files["path"] == "batch.json").to_dicts()
    assert [(m["role"], m["outcome"], m["reason"].split(":")[0]) for m in manifest] == [("manifest", "rejected", "symlink")]


def test_a_batch_json_that_is_a_folder_quarantines_the_batch(tmp_path):
    batch = write_batch(tmp_path / "batch")
    (batch / "batch.json").mkdir()
    (batch / "batch.json" / "settings.json").write_text("{}")
    result = ingest(batch)
    assert result.images.is_empty() and set(result.quarantine["rule"]) == {"invalid_batch_manifest"}
    assert result.quarantine["message"][0].startswith(f"{batch}/batch.json: is a folder; batch.json must be a regular file")


def ingest_archive(archive: Path):
    """What the ingest asset and check-source make of a landed archive, refused or not."""
    try:
        return ingest(archive)
    except InputError as exc:
        return quarantine_unreadable_batch(archive.stem, exc)


def test_a_refused_archive_lists_each_member_as_a_rejected_file_with_its_own_problem_or_the_archives(tmp_path):
    archive = tmp_path / "b.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("batch.json", "{}")
        out.writestr(f"{LEFT}/good0_leftImg8bit.png", png())
        out.writestr(f"{CITY}/good0_gtFine_polygons.json", city_json())
        out.writestr("../escape.json", b"{}")
        link = zipfile.ZipInfo(f"{LEFT}/link.png")
        link.external_attr = 0o120777 << 16
        out.writestr(link, b"/etc/passwd")
    result = ingest_archive(archive)
    [entry] = result.quarantine.to_dicts()
    assert (entry["file_name"], entry["rule"]) == ("", "unsafe_archive_path")
    escape = f"{archive}: entry '../escape.json' has an empty, '.' or '..' path component"
    assert entry["message"] == escape
    assert result.files.select("path", "role", "outcome", "reason").rows() == [
        ("../escape.json", "other", "rejected", f"unsafe_archive_path: {escape}"),
        ("batch.json", "manifest", "rejected", f"unsafe_archive_path: {escape}"),
        (f"{CITY}/good0_gtFine_polygons.json", "other", "rejected", f"unsafe_archive_path: {escape}"),
        (f"{LEFT}/good0_leftImg8bit.png", "image", "rejected", f"unsafe_archive_path: {escape}"),
        (f"{LEFT}/link.png", "image", "rejected", f"archive_symlink: {archive}: entry '{LEFT}/link.png' is a symbolic link"),
    ]


def test_an_archive_bomb_lists_its_members_and_an_unlistable_archive_is_its_one_rejected_file(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr(f"{LEFT}/zeros_leftImg8bit.png", b"\0" * (64 * 1024 * 1024))
        out.writestr(f"{LEFT}/good0_leftImg8bit.png", png())
    files = ingest_archive(bomb).files
    assert files.select("path", "role", "outcome").rows() == [
        (f"{LEFT}/good0_leftImg8bit.png", "image", "rejected"), (f"{LEFT}/zeros_leftImg8bit.png", "image", "rejected")]
    assert set(files["reason"].str.split(":").list.first()) == {"zip_bomb"}

    truncated = tmp_path / "cut.zip"
    truncated.write_bytes(bomb.read_bytes()[:5000])
    result = ingest_archive(truncated)
    assert result.quarantine.select("file_name", "rule").rows() == [("", "corrupt_archive")]
    assert result.files.to_dicts() == [{"batch_id": "cut", "path": "cut.zip", "role": "archive", "outcome": "rejected",
                                        "reason": f"corrupt_archive: {result.quarantine['message'][0]}"}]
