"""Hostile inputs at batch level: each bad item is quarantined with a clear reason and the rest of the
batch is still ingested; a hostile archive or annotation file that concerns the whole batch
quarantines the batch with its reason."""

import io
import json
import os
import resource
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import fsspec
import pytest
from PIL import Image

from segpipe.core.shared.errors import InputError
from segpipe.core.ingest.batch import ingest_batch, quarantine_unreadable_batch
from segpipe.core.ingest.formats.annotation import MAX_VERTICES
from segpipe.core.ingest.formats.coco import COCO_INSTANCES
from segpipe.core.ingest.formats.labelme import LABELME
from segpipe.core.ingest.formats.reader import ReaderOptions
from segpipe.core.ingest.formats.strict_json import MAX_DEPTH, MAX_ELEMENT_VALUES
from segpipe.core.ingest.sources import open_source
from segpipe_tests.core.ingest.formats.memory_source import MemorySource

KEY = b"hostile-test-key-0123"
W, H = 16, 8
FOLDER = "gtFine/val/city"
IMAGES = "leftImg8bit/val/city"


def png(width: int = W, height: int = H) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (9, 9, 9)).save(out, format="PNG")
    return out.getvalue()


def polygons_json(polygon: object = ((0, 0), (15, 0), (15, 7))) -> bytes:
    return json.dumps({"imgHeight": H, "imgWidth": W, "objects": [{"label": "road", "polygon": polygon}]}).encode()


def write_batch(root: Path, bad_json: bytes | None = None, bad_image: bytes | None = None) -> Path:
    """Two good images (good0, good1) and one item, bad, with whatever the test plants."""
    for stem in ("good0", "good1", "bad"):
        (root / FOLDER).mkdir(parents=True, exist_ok=True)
        (root / IMAGES).mkdir(parents=True, exist_ok=True)
        (root / FOLDER / f"{stem}_gtFine_polygons.json").write_bytes(
            bad_json if stem == "bad" and bad_json is not None else polygons_json())
        (root / IMAGES / f"{stem}_leftImg8bit.png").write_bytes(
            bad_image if stem == "bad" and bad_image is not None else png())
    return root


def ingest(path: Path):
    with open_source(fsspec.filesystem("file"), str(path)) as source:
        return ingest_batch(source, path.name, KEY)


def png_bomb(side: int) -> bytes:
    """A few hundred bytes that declare a side x side image."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")
    header = chunk(b"IHDR", side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0]))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


def truncated_png() -> bytes:
    noise = Image.frombytes("RGB", (W, H), bytes((i * 7919) % 251 for i in range(W * H * 3)))
    out = io.BytesIO()
    noise.save(out, format="PNG")
    return out.getvalue()[: len(out.getvalue()) // 2]


def tiff_named_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (W, H)).save(out, format="TIFF")
    return out.getvalue()


@pytest.mark.parametrize(("bad_json", "bad_image", "rule", "detail"), [
    (polygons_json().replace(b"15", b"NaN", 1), None, "unparseable_annotations", "NaN"),
    (polygons_json().replace(b"15", b"1e400", 1), None, "unparseable_annotations", "overflow near"),
    (polygons_json(((0, 0), (1e300, 0), (15, 7))), None, "coordinates_out_of_frame", "shape #0 ('road')"),
    (polygons_json(((0, 0), ("x", 0), (15, 7))), None, "malformed_polygon", "shape #0 ('road')"),
    (polygons_json("not a polygon"), None, "malformed_polygon", "shape #0 ('road')"),
    (polygons_json()[:30], None, "unparseable_annotations", "not valid JSON"),
    (b'{"imgHeight": 8, "imgHeight": 9, "imgWidth": 16, "objects": []}', None, "duplicate_key",
     "$ gives the key 'imgHeight' twice"),
    (b"[" * 200_000, None, "json_too_deep", "$[0][0][0]"),
    (polygons_json().replace(b'"polygon": ', b'"polygon": ' + b"[" * 200_000), None, "json_too_deep",
     "$.objects[0].polygon[0][0]"),
    (polygons_json([(i % W, i % H) for i in range(MAX_VERTICES + 1)]), None, "too_many_vertices",
     f"shape #0 ('road') has {MAX_VERTICES + 1} vertices"),
    (None, truncated_png(), "image_undecodable", "OSError"),
    (None, png_bomb(60000), "image_undecodable", "DecompressionBombError"),
    (None, png_bomb(12000), "image_undecodable", "DecompressionBombWarning"),
    (None, tiff_named_png(), "image_undecodable", "cannot identify"),
    (None, png(W + 1, H), "size_mismatch", "17x8"),
])
def test_a_hostile_item_is_quarantined_with_its_reason_and_the_rest_ingested(tmp_path, bad_json, bad_image, rule, detail):
    result = ingest(write_batch(tmp_path / "batch", bad_json, bad_image))
    assert sorted(result.images["file_name"]) == [f"{IMAGES}/good0_leftImg8bit.png", f"{IMAGES}/good1_leftImg8bit.png"]
    [row] = result.quarantine.to_dicts()
    assert (row["file_name"], row["rule"]) == (f"{IMAGES}/bad_leftImg8bit.png", rule)
    assert "bad_" in row["message"] and detail in row["message"]


def objects_json(*polygons: object) -> bytes:
    return json.dumps({"imgHeight": H, "imgWidth": W, "objects": [
        {"label": f"thing{i}", "polygon": polygon} for i, polygon in enumerate(polygons)]}).encode()


def test_every_problem_of_an_image_is_named_in_its_one_quarantine_row(tmp_path):
    good = ((0, 0), (15, 0), (15, 7))
    bad_json = objects_json(good, ((0, 0), (1e300, 0), (15, 7)), ((0, 0), ("x", 0), (15, 7)), good)
    result = ingest(write_batch(tmp_path / "batch", bad_json, truncated_png()))
    assert result.images.height == 2
    [row] = result.quarantine.to_dicts()
    assert (row["file_name"], row["rule"]) == (f"{IMAGES}/bad_leftImg8bit.png", "coordinates_out_of_frame")
    problems = row["message"].split("; also ")
    assert len(problems) == 3
    assert "shape #1 ('thing1') has a vertex more than one image size outside" in problems[0]
    assert problems[1].startswith(f"malformed_polygon: {tmp_path}/batch/{FOLDER}/bad_gtFine_polygons.json: ")
    assert "shape #2 ('thing2') has a coordinate that is not a number" in problems[1]
    assert problems[2].startswith(f"image_undecodable: {tmp_path}/batch/{IMAGES}/bad_leftImg8bit.png: ")


def test_an_image_with_many_problems_lists_the_first_twenty_and_counts_the_rest(tmp_path):
    bad_json = objects_json(*[((0, 0), (1, 1))] * 25)
    [row] = ingest(write_batch(tmp_path / "batch", bad_json)).quarantine.to_dicts()
    assert row["rule"] == "degenerate_polygon"
    assert row["message"].count("has fewer than 3 vertices") == 20
    assert "shape #19 ('thing19')" in row["message"] and "thing20" not in row["message"]
    assert row["message"].endswith("; and 5 more problems")


def test_a_symlinked_image_is_quarantined_not_followed(tmp_path):
    batch = write_batch(tmp_path / "batch")
    secret = tmp_path / "secret.png"
    secret.write_bytes(png())
    (batch / IMAGES / "bad_leftImg8bit.png").unlink()
    os.symlink(secret, batch / IMAGES / "bad_leftImg8bit.png")
    result = ingest(batch)
    assert result.images.height == 2
    assert result.quarantine.select("file_name", "rule").rows() == [(f"{IMAGES}/bad_leftImg8bit.png", "symlink")]


@pytest.mark.parametrize("target", ["settings.json", "absent.json"])
def test_a_batch_json_that_is_a_link_quarantines_the_batch_instead_of_reading_it_with_defaults(tmp_path, target):
    batch = write_batch(tmp_path / "batch")
    (tmp_path / "settings.json").write_text('{"format": "cityscapes_polygons", "gold": true, "licence": "CC-BY-4.0"}')
    os.symlink(tmp_path / target, batch / "batch.json")
    result = ingest(batch)
    assert result.images.is_empty() and result.source_format is None
    assert result.quarantine["file_name"].to_list() == [f"{IMAGES}/{stem}_leftImg8bit.png" for stem in ("bad", "good0", "good1")]
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


def test_an_annotation_without_image_and_an_image_without_annotation_are_both_reported(tmp_path):
    batch = write_batch(tmp_path / "batch")
    (batch / IMAGES / "bad_leftImg8bit.png").unlink()
    (batch / IMAGES / "orphan_leftImg8bit.png").write_bytes(png())
    result = ingest(batch)
    rules = dict(result.quarantine.select("file_name", "rule").rows())
    assert rules == {f"{IMAGES}/bad_leftImg8bit.png": "image_missing", f"{IMAGES}/orphan_leftImg8bit.png": "annotation_missing"}


def test_billion_laughs_in_a_cvat_file_quarantines_its_batch_and_expands_nothing(tmp_path):
    batch = tmp_path / "cvat"
    (batch / "images").mkdir(parents=True)
    (batch / "images" / "a.png").write_bytes(png())
    entities = "".join(f'<!ENTITY l{i} "{"&l%d;" % (i - 1) * 10 if i else "lol"}">' for i in range(10))
    (batch / "annotations.xml").write_text(
        f'<?xml version="1.0"?><!DOCTYPE annotations [{entities}]><annotations><image name="a.png">&l9;</image></annotations>')
    (batch / "batch.json").write_text('{"format": "cvat_images_1.1"}')
    result = ingest(batch)
    assert result.quarantine.select("file_name", "rule").rows() == [("images/a.png", "unparseable_annotations")]
    assert "annotations.xml" in result.quarantine["message"][0]


@pytest.mark.parametrize(("name", "attr", "rule"), [
    ("../escape.json", 0, "unsafe_archive_path"),
    ("C:\\windows.json", 0, "unsafe_archive_path"),
    ("link.png", 0o120777 << 16, "archive_symlink"),
])
def test_a_hostile_archive_is_refused_whole_with_its_reason(tmp_path, name, attr, rule):
    archive = tmp_path / "b.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr(f"{IMAGES}/good0_leftImg8bit.png", png())
        info = zipfile.ZipInfo(name)
        info.external_attr = attr
        out.writestr(info, b"/etc/passwd")
    with pytest.raises(InputError) as caught, open_source(fsspec.filesystem("file"), str(archive)):
        pass
    assert caught.value.rule == rule and "b.zip" in str(caught.value)


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
        out.writestr(f"{IMAGES}/good0_leftImg8bit.png", png())
        out.writestr(f"{FOLDER}/good0_gtFine_polygons.json", polygons_json())
        out.writestr("../escape.json", b"{}")
        link = zipfile.ZipInfo(f"{IMAGES}/link.png")
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
        (f"{FOLDER}/good0_gtFine_polygons.json", "other", "rejected", f"unsafe_archive_path: {escape}"),
        (f"{IMAGES}/good0_leftImg8bit.png", "image", "rejected", f"unsafe_archive_path: {escape}"),
        (f"{IMAGES}/link.png", "image", "rejected", f"archive_symlink: {archive}: entry '{IMAGES}/link.png' is a symbolic link"),
    ]


def test_an_archive_bomb_lists_its_members_and_an_unlistable_archive_is_its_one_rejected_file(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr(f"{IMAGES}/zeros_leftImg8bit.png", b"\0" * (64 * 1024 * 1024))
        out.writestr(f"{IMAGES}/good0_leftImg8bit.png", png())
    files = ingest_archive(bomb).files
    assert files.select("path", "role", "outcome").rows() == [
        (f"{IMAGES}/good0_leftImg8bit.png", "image", "rejected"), (f"{IMAGES}/zeros_leftImg8bit.png", "image", "rejected")]
    assert set(files["reason"].str.split(":").list.first()) == {"zip_bomb"}

    truncated = tmp_path / "cut.zip"
    truncated.write_bytes(bomb.read_bytes()[:5000])
    result = ingest_archive(truncated)
    assert result.quarantine.select("file_name", "rule").rows() == [("", "corrupt_archive")]
    assert result.files.to_dicts() == [{"batch_id": "cut", "path": "cut.zip", "role": "archive", "outcome": "rejected",
                                        "reason": f"corrupt_archive: {result.quarantine['message'][0]}"}]


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr(f"{IMAGES}/zeros_leftImg8bit.png", b"\0" * (64 * 1024 * 1024))
    assert archive.stat().st_size < 200_000
    with pytest.raises(InputError) as caught, open_source(fsspec.filesystem("file"), str(archive)):
        pass
    assert caught.value.rule == "zip_bomb" and "zeros_leftImg8bit.png" in str(caught.value)


def nested(depth: int) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


def coco_json(annotations: list | bytes, images: list | bytes | None = None, info: bytes = b"{}",
              categories: bytes = b'[{"id": 1, "name": "road"}, {"id": 2, "name": "car"}]') -> bytes:
    images = images if images is not None else [
        {"id": 1, "file_name": "a.png", "width": W, "height": H}, {"id": 2, "file_name": "b.png", "width": W, "height": H}]
    listed = [value if isinstance(value, bytes) else json.dumps(value).encode() for value in (images, annotations)]
    return (b'{"images": ' + listed[0] + b', "annotations": ' + listed[1] + b', "categories": ' + categories
            + b', "info": ' + info + b"}")  # info last, so detection sees the COCO keys in the file's head


def coco_annotation(id: int, image_id: int = 1, category_id: int = 1) -> dict:
    return {"id": id, "image_id": image_id, "category_id": category_id, "segmentation": [[0, 0, 9, 0, 9, 7]]}


def read_coco(document: bytes) -> dict:
    """The reader as ingest runs it, streaming the file: image file name -> image."""
    source = MemorySource({"annotations/instances_default.json": document}, streamed_only=True)
    images = COCO_INSTANCES.read(source, ["annotations/instances_default.json"], ReaderOptions(images_dir="images"))
    return {image.file_name: image for image in images}


def coco_refused(document: bytes) -> InputError:
    with pytest.raises(InputError) as caught:
        read_coco(document)
    assert "mem://batch/annotations/instances_default.json: " in str(caught.value)
    return caught.value


GOOD_ANNOTATIONS = [coco_annotation(1), coco_annotation(2, image_id=2)]


@pytest.mark.parametrize(("document", "rule", "detail"), [
    (coco_json(GOOD_ANNOTATIONS, info=nested(200_000)), "json_too_deep",
     "$.info" + ".a" * (MAX_DEPTH - 1) + f" nests deeper than {MAX_DEPTH} levels"),
    (coco_json(b'[{"id": 1, "image_id": 1, "category_id": 1, "segmentation": ' + b"[" * 40_000 + b"]"),
     "json_too_deep", "$.annotations[0].segmentation[0][0]"),
    (coco_json([coco_annotation(1), {**coco_annotation(2), "segmentation": [[0] * (MAX_ELEMENT_VALUES + 2)]}]),
     "json_element_too_large", f"the element at $.annotations[1] holds over {MAX_ELEMENT_VALUES} keys and values"),
    (coco_json(GOOD_ANNOTATIONS)[:-1] + b', "images": []}', "duplicate_key", "$ gives the key 'images' twice"),
    (coco_json(GOOD_ANNOTATIONS, info=b'{"year": 2017, "year": 2018}'), "duplicate_key",
     "$.info gives the key 'year' twice"),
    (coco_json(GOOD_ANNOTATIONS, categories=b'[{"id": 1, "name": "road", "name": "car"}]'), "duplicate_key",
     "$.categories[0] gives the key 'name' twice"),
])
def test_a_coco_file_over_a_bound_or_with_a_file_level_duplicate_key_is_refused_whole(document, rule, detail):
    error = coco_refused(document)
    assert error.rule == rule and detail in str(error)


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


def labelme_json(shape_points: bytes = b"[[1, 1], [9, 1], [9, 7]]") -> bytes:
    return (b'{"version": "5.4.1", "flags": {}, "shapes": [{"label": "road", "points": ' + shape_points
            + b', "shape_type": "polygon"}], "imagePath": "a.png", "imageData": null, "imageHeight": 8, "imageWidth": 16}')


@pytest.mark.parametrize(("document", "rule", "detail"), [
    (labelme_json(b"[" * 200_000), "json_too_deep", "$.shapes[0].points[0][0]"),
    (labelme_json().replace(b'"label": "road"', b'"label": "road", "label": "car"'), "duplicate_key",
     "$.shapes[0] gives the key 'label' twice"),
])
def test_a_labelme_file_over_a_bound_or_with_a_duplicate_key_quarantines_its_image(document, rule, detail):
    [image] = LABELME.read(MemorySource({"a.json": document, "a.png": png()}), ["a.json"], ReaderOptions())
    assert (image.file_name, image.error.rule) == ("a.png", rule)
    assert str(image.error).startswith("mem://batch/a.json: ") and detail in str(image.error)


SUBPROCESS = """
import json, resource, sys, time
import fsspec
from segpipe.core.ingest.batch import ingest_batch, quarantine_unreadable_batch
from segpipe.core.ingest.sources import open_source
start = time.monotonic()
with open_source(fsspec.filesystem("file"), sys.argv[1]) as source:
    result = ingest_batch(source, "deep", b"hostile-test-key-0123")
print(json.dumps({"rows": result.quarantine.select("rule", "message").rows(), "seconds": time.monotonic() - start,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


@pytest.mark.parametrize(("info", "annotations"), [
    (nested(200_000), GOOD_ANNOTATIONS),
    (b"{}", b'[{"id": 1, "image_id": 1, "category_id": 1, "segmentation": ' + b"[" * 40_000 + b"]"),
])
def test_a_deeply_nested_coco_batch_is_quarantined_within_1_gb_of_address_space(tmp_path, info, annotations):
    batch = tmp_path / "deep"
    (batch / "images").mkdir(parents=True)
    (batch / "annotations").mkdir()
    for name in ("a.png", "b.png"):
        (batch / "images" / name).write_bytes(png())
    (batch / "annotations" / "instances_default.json").write_bytes(coco_json(annotations, info=info))
    done = subprocess.run([sys.executable, "-c", SUBPROCESS, str(batch)], capture_output=True, text=True,
                          timeout=120, preexec_fn=limit_address_space, env={**os.environ, "POLARS_MAX_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert {rule for rule, _ in report["rows"]} == {"json_too_deep"} and len(report["rows"]) == 2
    assert all("annotations/instances_default.json: $." in message and f"deeper than {MAX_DEPTH} levels" in message
               for _, message in report["rows"])
