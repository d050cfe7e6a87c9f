"""COCO instances: streamed, every annotation kind, and every fault reported where it belongs."""

import json

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from segpipe.core.shared.errors import InputError
from segpipe.core.ingest.formats.annotation import AnnotatedImage, BoxMask
from segpipe.core.ingest.formats.coco import COCO_INSTANCES
from segpipe.core.ingest.formats.reader import ReaderOptions
from segpipe_tests.core.ingest.formats.memory_source import MemorySource

CATEGORIES = [{"id": 0, "name": "road"}, {"id": 5, "name": "car"}, {"id": 90, "name": "tree", "supercategory": "plant"}]
IMAGES = [
    {"id": 1, "file_name": "city/a.jpg", "width": 20, "height": 10},
    {"id": 7, "file_name": "b.jpg", "width": 8, "height": 6},
]


def coco(annotations: list, images: list = IMAGES, categories: list = CATEGORIES) -> bytes:
    return json.dumps({"info": {}, "images": images, "annotations": annotations, "categories": categories}).encode()


def read(*documents: bytes, images_dir: str = "images") -> list[AnnotatedImage]:
    files = {f"annotations/part{i}.json": doc for i, doc in enumerate(documents)}
    return list(COCO_INSTANCES.read(MemorySource(files, streamed_only=True), sorted(files), ReaderOptions(images_dir=images_dir)))


def by_name(images: list[AnnotatedImage]) -> dict[str, AnnotatedImage]:
    return {image.file_name: image for image in images}


def annotation(id: int, image_id: int = 1, category_id: int = 5, **fields) -> dict:
    return {"id": id, "image_id": image_id, "category_id": category_id, "iscrowd": 0, **fields}


def placed(mask: BoxMask, width: int, height: int) -> np.ndarray:
    frame = np.zeros((height, width), dtype=bool)
    frame[mask.top:mask.top + mask.height, mask.left:mask.left + mask.width] = mask.to_array()
    return frame


def test_multi_part_polygons_with_non_contiguous_ids_category_zero_and_subfolders():
    images = read(coco([
        annotation(1, category_id=90, segmentation=[[0, 0, 4, 0, 4, 4], [10, 0, 14, 0, 14, 4, 10, 4]]),
        annotation(2, category_id=0, segmentation=[[1, 1, 3, 1, 3, 3]]),
        annotation(3, image_id=7, category_id=5, segmentation=[[1, 1, 5, 1, 5, 5]]),
    ]))
    assert [i.file_name for i in images] == ["images/city/a.jpg", "images/b.jpg"]
    a, b = images
    assert (a.width, a.height, a.error) == (20, 10, None)
    assert [(s.raw_label, s.kind, len(s.rings)) for s in a.shapes] == [("tree", "polygon", 2), ("road", "polygon", 1)]
    ring = a.shapes[0].rings[1]
    assert isinstance(ring, np.ndarray) and ring.dtype == np.float64
    assert ring.tolist() == [10, 0, 14, 0, 14, 4, 10, 4]
    assert [s.raw_label for s in b.shapes] == ["car"]
    assert all(s.attributes == {"iscrowd": "0"} and s.z_order == 0 for s in a.shapes + b.shapes)


def test_images_dir_is_the_prefix_of_every_file_name():
    [image, _] = read(coco([]), images_dir="photos/2024")
    assert image.file_name == "photos/2024/city/a.jpg"


def test_compressed_rle_written_by_pycocotools_becomes_a_mask_with_its_holes():
    binary = np.zeros((10, 20), dtype=bool)
    binary[2:8, 3:15] = True
    binary[4:6, 6:9] = False
    written = coco_mask.encode(np.asfortranarray(binary.astype(np.uint8)))
    rle = {"size": [10, 20], "counts": written["counts"].decode()}
    [image, _] = read(coco([annotation(1, segmentation=rle, iscrowd=1)]))
    [shape] = image.shapes
    assert (shape.kind, shape.raw_label, shape.attributes["iscrowd"]) == ("mask", "car", "1")
    assert (shape.mask.left, shape.mask.top, shape.mask.width, shape.mask.height) == (3, 2, 12, 6)
    assert np.array_equal(placed(shape.mask, 20, 10), binary)


def test_uncompressed_rle_is_column_major():
    binary = np.zeros((6, 8), dtype=bool)
    binary[0, 1:4] = True  # a horizontal run: row-major decoding would put it in a column
    flat = binary.ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist()
    [_, image] = read(coco([annotation(1, image_id=7, segmentation={"size": [6, 8], "counts": counts}, iscrowd=1)]))
    assert image.error is None
    assert np.array_equal(placed(image.shapes[0].mask, 8, 6), binary)


def test_iscrowd_annotations_are_kept_as_shapes_for_the_taxonomy_to_judge():
    [image, _] = read(coco([annotation(1, segmentation=[[0, 0, 4, 0, 4, 4]], iscrowd=1), annotation(2, segmentation=[[0, 0, 4, 0, 4, 4]])]))
    assert [s.attributes["iscrowd"] for s in image.shapes] == ["1", "0"]


def test_bbox_only_annotations_are_boxes():
    [image, _] = read(coco([
        annotation(1, bbox=[2, 3, 4, 5]),
        annotation(2, bbox=[1.5, 1, 2, 2], segmentation=[]),
        annotation(3, bbox=[0, 0, 1, 1], segmentation=None),
    ]))
    assert [s.kind for s in image.shapes] == ["box", "box", "box"]
    assert image.shapes[0].rings[0].tolist() == [2, 3, 6, 3, 6, 8, 2, 8]


def test_key_order_does_not_matter_and_an_empty_annotation_list_is_images_without_shapes():
    annotations_first = json.dumps({"annotations": [annotation(1, segmentation=[[0, 0, 4, 0, 4, 4]])],
                                    "images": IMAGES, "categories": CATEGORIES}).encode()
    [a, _] = read(annotations_first)
    assert len(a.shapes) == 1
    empty = read(coco([]))
    assert [(i.error, i.shapes) for i in empty] == [(None, []), (None, [])]


def test_a_byte_order_mark_is_skipped():
    assert len(read(b"\xef\xbb\xbf" + coco([]))) == 2


def test_several_files_are_read_one_after_another():
    second = coco([], images=[{"id": 1, "file_name": "c.jpg", "width": 4, "height": 4}])
    assert [i.file_name for i in read(coco([]), second)] == ["images/city/a.jpg", "images/b.jpg", "images/c.jpg"]


@pytest.mark.parametrize(("bad", "rule", "says"), [
    ({"segmentation": [["1", "2", "3", "4", "5", "6"]]}, "malformed_polygon", "not a number"),
    ({"segmentation": [[0, 0, 4, 0, 4]]}, "malformed_polygon", "odd number"),
    ({"segmentation": [[0, 0, 4, 0]]}, "degenerate_polygon", "fewer than 3"),
    ({"segmentation": [0, 0, 4, 0, 4, 4]}, "malformed_polygon", "part #0"),
    ({"segmentation": 7}, "malformed_annotation", "neither a list of rings nor an RLE"),
    ({"segmentation": [[0, 0, 1e300, 0, 4, 4]]}, "coordinates_out_of_frame", "part #0"),
    ({"segmentation": None, "bbox": [0, 0, "4", 4]}, "malformed_annotation", "bbox"),
    ({"segmentation": None}, "malformed_annotation", "bbox None"),
    ({"segmentation": None, "bbox": [0, 0, 0, 4]}, "degenerate_box", "empty box"),
    ({"category_id": "5", "segmentation": [[0, 0, 4, 0, 4, 4]]}, "malformed_annotation", "category_id '5'"),
    ({"category_id": 6, "segmentation": [[0, 0, 4, 0, 4, 4]]}, "unknown_category", "category_id 6"),
    ({"iscrowd": "no", "segmentation": [[0, 0, 4, 0, 4, 4]]}, "malformed_annotation", "iscrowd"),
    ({"segmentation": {"size": [6, 8], "counts": [48]}}, "size_mismatch", "[6, 8]"),
    ({"segmentation": {"size": [10, 20], "counts": [150]}}, "malformed_mask", "summing to 150"),
    ({"segmentation": {"size": [10, 20], "counts": "abc"}}, "malformed_mask", "annotation id 1"),
    ({"segmentation": {"size": [10, 20], "counts": [200]}}, "empty_mask", "no foreground"),
])
def test_a_bad_annotation_is_an_error_on_its_image_naming_file_image_and_annotation(bad, rule, says):
    images = by_name(read(coco([annotation(1, **bad), annotation(2, image_id=7, segmentation=[[0, 0, 4, 0, 4, 4]])])))
    error = images["images/city/a.jpg"].error
    assert error is not None and error.rule == rule, error
    message = str(error)
    assert "mem://batch/annotations/part0.json" in message and "'images/city/a.jpg'" in message
    assert "annotation id 1" in message and says in message
    assert images["images/city/a.jpg"].shapes == []
    assert images["images/b.jpg"].error is None and len(images["images/b.jpg"].shapes) == 1


@pytest.mark.parametrize(("image", "says"), [
    ({"id": 1, "file_name": "a.jpg", "width": "abc", "height": 10}, "width is 'abc'"),
    ({"id": 1, "file_name": "a.jpg", "width": 20}, "height is None"),
    ({"id": 1, "file_name": "a.jpg", "width": 20.0, "height": 10}, "width is 20.0"),
    ({"id": "1", "file_name": "a.jpg", "width": 20, "height": 10}, "id is '1'"),
])
def test_an_image_with_wrong_types_is_an_error_on_that_image(image, says):
    images = by_name(read(coco([annotation(1, segmentation=[[0, 0, 4, 0, 4, 4]])], images=[image, IMAGES[1]])))
    error = images["images/a.jpg"].error
    assert error.rule == "malformed_annotation" and says in str(error) and "part0.json" in str(error)
    assert images["images/b.jpg"].error is None


def test_an_image_without_a_file_name_is_named_by_its_position():
    [bad, _] = read(coco([], images=[{"id": 3, "width": 2, "height": 2}, IMAGES[1]]))
    assert bad.file_name == "annotations/part0.json#images[0]" and bad.error.rule == "malformed_annotation"


def test_a_file_name_leaving_the_batch_is_refused_and_its_annotations_still_read():
    images = [{"id": 1, "file_name": "../../etc/passwd", "width": 8, "height": 8}]
    [bad] = read(coco([annotation(1, segmentation=[[0, 0, 4, 0, 4, 4]])], images=images))
    assert bad.error is None and [s.raw_label for s in bad.shapes] == ["car"]
    assert bad.image_error.rule == "unsafe_path" and "'../../etc/passwd'" in str(bad.image_error)


def test_annotations_of_a_missing_image_id_are_reported_not_dropped():
    images = read(coco([
        annotation(1, segmentation=[[0, 0, 4, 0, 4, 4]]),
        annotation(8, image_id=99, segmentation=[[0, 0, 4, 0, 4, 4]]),
        annotation(9, image_id=99, segmentation=[[0, 0, 4, 0, 4, 4]]),
        annotation(10, image_id="1", segmentation=[[0, 0, 4, 0, 4, 4]]),
    ]))
    missing = by_name(images)
    assert len(images) == 4 and missing["images/city/a.jpg"].error is None
    ninety_nine = missing["annotations/part0.json#image_id=99"]
    assert (ninety_nine.width, ninety_nine.height, ninety_nine.error.rule) == (0, 0, "image_missing")
    assert "annotation id 8, annotation id 9" in str(ninety_nine.error) and "image id 99" in str(ninety_nine.error)
    assert missing["annotations/part0.json#image_id='1'"].error.rule == "image_missing"


def test_duplicate_image_ids_are_an_error_on_both_images():
    images = read(coco([annotation(1, segmentation=[[0, 0, 4, 0, 4, 4]])], images=[
        IMAGES[0], {"id": 1, "file_name": "other.jpg", "width": 20, "height": 10}, IMAGES[1]]))
    assert [i.error.rule if i.error else None for i in images] == ["duplicate_image_id", "duplicate_image_id", None]
    assert "'images/other.jpg'" in str(images[0].error)


@pytest.mark.parametrize(("document", "says"), [
    (b'{"images": [], "annotations": [{"id": 1, "bbox": [NaN, 0, 1, 1]}], "categories": []}', "not valid JSON"),
    (b'{"images": [{"id": 1, "width": Infinity}], "annotations": [], "categories": []}', "not valid JSON"),
    (b'{"images": [{"id": 1, "width": 1e400}], "annotations": [], "categories": []}', "overflow"),
    (coco([annotation(1, segmentation=[[0, 0, 4, 0, 4, 4]])])[:-30], "not valid JSON"),
    (b"", "not valid JSON"),
    (b"images,annotations", "not valid JSON"),
    (b'{"images": []} trailing', "not valid JSON"),
    (b"[]", "`images` is missing"),
    (b'{"annotations": [], "categories": []}', "`images` is missing"),
    (b'{"images": [], "annotations": []}', "`categories` is missing"),
    (b'{"images": [], "categories": []}', "`annotations` is missing"),
    (b'{"images": [], "categories": [], "annotations": {}}', "`annotations` is a JSON object, not a list"),
    (b'{"images": {}, "categories": [], "annotations": []}', "`images` is a JSON object, not a list"),
    (b'{"images": [], "categories": [{"id": "1", "name": "car"}], "annotations": []}', "categories[0]"),
    (b'{"images": [], "categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}], "annotations": []}', "defined twice"),
])
def test_a_file_that_cannot_be_read_whole_raises_naming_it(document, says):
    with pytest.raises(InputError) as caught:
        read(document)
    assert caught.value.rule == "unparseable_annotations"
    assert "mem://batch/annotations/part0.json" in str(caught.value) and says in str(caught.value)


def test_detector_claims_coco_json_at_the_root_or_under_annotations_only():
    heads = {
        "instances.json": b'{"info": {}, "images": [',
        "annotations/train.json": b'{"categories": [{"id": 1',
        "annotations/deep/val.json": b'{"annotations": [',
        "images/sub/stray.json": b'{"images": []}',
        "labelme.json": b'{"version": "5", "shapes": [{"label": "images"}], "imagePath": "a.jpg"}',
        "city_polygons.json": b'{"imgHeight": 1, "objects": [{"label": "annotations"}]}',
        "readme.txt": b'"images"',
        "other.json": b'{"foo": 1}',
    }
    assert COCO_INSTANCES.annotation_files(sorted(heads), heads.__getitem__) == [
        "annotations/deep/val.json", "annotations/train.json", "instances.json"]


def test_every_bad_annotation_of_an_image_is_named_and_its_good_ones_dropped():
    a, b = read(coco([
        annotation(1, segmentation=[[0, 0, 4, 0, 4, 4]]),
        annotation(2, category_id=404, segmentation=[[0, 0, 4, 0, 4, 4]]),
        annotation(3, segmentation=[[0, 0, 1e9, 0, 4, 4]]),
        annotation(4, image_id=7, segmentation=[[1, 1, 5, 1, 5, 5]]),
    ]))
    assert a.error.rule == "unknown_category" and a.shapes == []
    where = "mem://batch/annotations/part0.json: image 'images/city/a.jpg'"
    assert str(a.error) == (
        f"{where}: annotation id 2 has category_id 404, which is not in categories; also coordinates_out_of_frame: "
        f"{where}: annotation id 3 ('car') part #0 has a vertex more than one image size outside the 20x10 frame "
        "(x 0..1e+09, y 0..4)")
    assert (b.error, [s.raw_label for s in b.shapes]) == (None, ["car"])
