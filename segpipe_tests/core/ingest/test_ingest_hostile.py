"""Hostile inputs at batch level: each bad item is quarantined with a clear reason and the rest of the
batch is still ingested; a hostile archive or annotation file that concerns the whole batch
quarantines the batch with its reason."""

import io
import json
import os
import zipfile
import zlib
from pathlib import Path

import fsspec
import pytest
from PIL import Image

from segpipe.core.shared.errors import InputError
from segpipe.core.ingest.batch import ingest_batch
from segpipe.core.ingest.sources import open_source

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


def test_a_symlinked_image_is_quarantined_not_followed(tmp_path):
    batch = write_batch(tmp_path / "batch")
    secret = tmp_path / "secret.png"
    secret.write_bytes(png())
    (batch / IMAGES / "bad_leftImg8bit.png").unlink()
    os.symlink(secret, batch / IMAGES / "bad_leftImg8bit.png")
    result = ingest(batch)
    assert result.images.height == 2
    assert result.quarantine.select("file_name", "rule").rows() == [(f"{IMAGES}/bad_leftImg8bit.png", "symlink")]


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


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr(f"{IMAGES}/zeros_leftImg8bit.png", b"\0" * (64 * 1024 * 1024))
    assert archive.stat().st_size < 200_000
    with pytest.raises(InputError) as caught, open_source(fsspec.filesystem("file"), str(archive)):
        pass
    assert caught.value.rule == "zip_bomb" and "zeros_leftImg8bit.png" in str(caught.value)
