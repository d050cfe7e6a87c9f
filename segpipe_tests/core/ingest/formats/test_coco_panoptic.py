import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segpipe.core.ingest.formats.coco_panoptic import COCO_PANOPTIC
from segpipe.core.ingest.formats.reader import ReaderOptions
from segpipe.core.shared.errors import InputError
from segpipe_tests.core.ingest.formats.memory_source import MemorySource

SAMPLE = Path(__file__).parents[3] / "fixtures" / "exports" / "coco_panoptic_datumaro"


def read(files: dict[str, bytes]):
    source = MemorySource(files)
    claimed = COCO_PANOPTIC.annotation_files(source.names(), lambda name: files[name][:65536])
    return {image.file_name: image for image in COCO_PANOPTIC.read(source, claimed, ReaderOptions())}


def full_frame(image, shape) -> np.ndarray:
    frame = np.zeros((image.height, image.width), dtype=bool)
    box = shape.mask
    frame[box.top:box.top + box.height, box.left:box.left + box.width] = box.to_array()
    return frame


def test_datumaros_sample_gives_one_mask_per_segment_with_its_pixels_and_refuses_the_png_of_the_wrong_size():
    files = {p.relative_to(SAMPLE).as_posix(): p.read_bytes() for p in SAMPLE.rglob("*") if p.is_file()}
    images = read(files)
    # Datumaro writes images/<subset>/ for panoptic_<subset>.json: the image lookup finds them there.
    assert set(images) == {"images/train/a.jpg", "images/val/b.jpg"}
    assert all(image.image_error is None for image in images.values())
    assert images["images/train/a.jpg"].error.rule == "size_mismatch"
    assert "annotations/panoptic_train/a.png" in str(images["images/train/a.jpg"].error)
    b = images["images/val/b.jpg"]
    rgb = np.asarray(Image.open(SAMPLE / "annotations/panoptic_val/b.png")).astype(np.int64)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    segments = json.loads((SAMPLE / "annotations/panoptic_val.json").read_text())["annotations"][0]["segments_info"]
    assert [(s.raw_label, s.kind, dict(s.attributes)) for s in b.shapes] == [
        ("a", "mask", {"iscrowd": "0", "isthing": "0"}), ("b", "mask", {"iscrowd": "1", "isthing": "0"})]
    for shape, segment in zip(b.shapes, segments, strict=True):
        np.testing.assert_array_equal(full_frame(b, shape), ids == segment["id"])


def rgb_png(ids: np.ndarray) -> bytes:
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(out, format="PNG")
    return out.getvalue()


def export(segments: list, png: bytes | None, categories: list | None = None) -> dict[str, bytes]:
    doc = {"images": [{"id": 1, "file_name": "x.jpg", "width": 3, "height": 2}],
           "categories": categories or [{"id": 5, "name": "car", "isthing": 1}, {"id": 6, "name": "road"}],
           "annotations": [{"image_id": 1, "file_name": "x.png", "segments_info": segments}]}
    files = {"annotations/panoptic.json": json.dumps(doc).encode()}
    if png is not None:
        files["annotations/panoptic/x.png"] = png
    return files


IDS = np.array([[0, 300, 300], [70000, 70000, 300]])


def test_segment_ids_are_decoded_from_all_three_channels_and_unlabeled_pixels_are_no_shape():
    [image] = read(export([{"id": 300, "category_id": 5}, {"id": 70000, "category_id": 6, "iscrowd": 1}], rgb_png(IDS))).values()
    assert image.error is None
    assert image.image_error.rule == "image_missing"  # no x.jpg in the batch: the segments are read all the same
    assert [(s.raw_label, dict(s.attributes)) for s in image.shapes] == [
        ("car", {"iscrowd": "0", "isthing": "1"}), ("road", {"iscrowd": "1", "isthing": "0"})]
    np.testing.assert_array_equal(full_frame(image, image.shapes[0]), IDS == 300)
    np.testing.assert_array_equal(full_frame(image, image.shapes[1]), IDS == 70000)


@pytest.mark.parametrize(("segments", "png", "rule", "named"), [
    ([{"id": 300, "category_id": 5}], rgb_png(IDS), "unknown_mask_colour", "id 70000 (2 px)"),
    ([{"id": 300, "category_id": 5}, {"id": 70000, "category_id": 6}, {"id": 9, "category_id": 6}], rgb_png(IDS),
     "empty_mask", "segment id 9"),
    ([{"id": 300, "category_id": 7}, {"id": 70000, "category_id": 6}], rgb_png(IDS), "unknown_category", "category_id 7"),
    ([{"id": 300, "category_id": 5}, {"id": 300, "category_id": 5}], rgb_png(IDS), "malformed_annotation", "listed twice"),
    ([{"id": 300, "category_id": 5}], None, "file_missing", "annotations/panoptic/x.png"),
    ([{"id": 300, "category_id": 5}], b"not a png", "mask_undecodable", "annotations/panoptic/x.png"),
    ([{"id": 300, "category_id": 5}], rgb_png(np.zeros((3, 3), dtype=np.int64)), "size_mismatch", "3x3"),
])
def test_a_bad_segment_or_png_is_an_error_on_its_image_naming_it(segments, png, rule, named):
    [image] = read(export(segments, png)).values()
    assert image.error.rule == rule
    assert named in str(image.error) and "'images/x.jpg'" in str(image.error)
    assert image.shapes == []


def test_every_bad_segment_of_an_image_is_named_and_a_bad_segments_pixels_are_not_called_unlisted():
    segments = [{"id": 300, "category_id": 7}, {"id": 70000, "category_id": 6, "iscrowd": 5}, {"id": 9, "category_id": 6}]
    [image] = read(export(segments, rgb_png(IDS))).values()
    assert [problem.rule for problem in image.error.problems] == ["unknown_category", "malformed_annotation", "empty_mask"]
    assert "segments_info[1] (segment id 70000, 'road') has iscrowd 5" in str(image.error)
    assert image.shapes == []


def test_an_annotation_for_an_unknown_image_id_is_reported_not_dropped():
    files = export([{"id": 300, "category_id": 5}], rgb_png(IDS))
    doc = json.loads(files["annotations/panoptic.json"])
    doc["annotations"].append({"image_id": 42, "file_name": "y.png", "segments_info": []})
    files["annotations/panoptic.json"] = json.dumps(doc).encode()
    images = read(files)
    assert images["annotations/panoptic.json#image_id=42"].error.rule == "image_missing"


def test_a_broken_categories_table_refuses_the_file():
    files = export([], rgb_png(IDS), categories=[{"id": 5, "name": "car", "isthing": 2}])
    with pytest.raises(InputError) as caught:
        read(files)
    assert caught.value.rule == "unparseable_annotations" and "isthing" in str(caught.value)
