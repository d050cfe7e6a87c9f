import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from segpipe.core.ingest.formats.cityscapes import CITYSCAPES
from segpipe.core.ingest.formats.reader import ReaderOptions
from segpipe_tests.core.ingest.formats.memory_source import MemorySource

FINE = "gtFine/train/aachen/aachen_000000_000019_gtFine_polygons.json"
FINE_IMAGE = "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png"
W, H = 40, 20


def obj(label: str, polygon: list, **extra) -> dict:
    return {"label": label, "polygon": polygon, **extra}


def doc(*objects: dict, width: int = W, height: int = H) -> bytes:
    return json.dumps({"imgHeight": height, "imgWidth": width, "objects": list(objects)}).encode()


FULL = [[0, 0], [W, 0], [W, H], [0, H]]
CITY_DOC = doc(
    obj("ego vehicle", [[0, 15], [W, 15], [W, H], [0, H]]),
    obj("road", FULL),
    obj("car", [[2, 2], [8, 2], [8, 8]], deleted=1),
    obj("out of roi", [[0, 0], [W, 0], [W, 2], [0, 2]]),
    obj("cargroup", [[10, 4], [30, 4], [30, 14], [10, 14]]),
    obj("person", [[12, 6], [16, 6], [16, 12]], deleted=True, user="alice"),
    obj("car", [[20, 5], [28, 5], [28, 12], [20, 12]], user="bob", verified=1),
)


def read(files: dict[str, bytes]) -> list:
    source = MemorySource(files)
    claimed = CITYSCAPES.annotation_files(source.names(), source.read)
    return list(CITYSCAPES.read(source, claimed, ReaderOptions()))


def one(files: dict[str, bytes]):
    [image] = read(files)
    return image


def test_claims_every_polygons_json_and_nothing_else():
    names = [FINE, FINE_IMAGE, "gtCoarse/val/x/x_1_gtCoarse_polygons.json", "gtFine/train/aachen/a_gtFine_labelIds.png",
             "other.json", "batch.json"]
    assert CITYSCAPES.annotation_files(names, lambda name: b"") == [
        "gtCoarse/val/x/x_1_gtCoarse_polygons.json", FINE]
    assert CITYSCAPES.annotation_files(["a.json", "b.png"], lambda name: b"") == []


def test_objects_are_polygons_in_document_order_with_void_labels_in_place_and_deleted_ones_skipped():
    image = one({FINE: CITY_DOC, FINE_IMAGE: b""})
    assert (image.file_name, image.width, image.height, image.error) == (FINE_IMAGE, W, H, None)
    assert [s.raw_label for s in image.shapes] == ["ego vehicle", "road", "out of roi", "cargroup", "car"]
    assert {(s.kind, s.z_order) for s in image.shapes} == {("polygon", 0)}
    assert image.attributes == {"deleted_objects": "2"}
    assert image.annotator is None
    np.testing.assert_array_equal(image.shapes[4].rings[0], [20, 5, 28, 5, 28, 12, 20, 12])


def test_group_labels_keep_their_raw_label_and_record_the_base_label():
    shapes = one({FINE: CITY_DOC}).shapes
    assert shapes[3].raw_label == "cargroup"
    assert shapes[3].attributes == {"group": "1", "base_label": "car"}
    assert shapes[4].attributes == {}


def test_no_deleted_objects_is_counted_as_zero():
    assert one({FINE: doc(obj("road", FULL))}).attributes == {"deleted_objects": "0"}


def test_flat_layout_finds_the_image_beside_the_json():
    image = one({"drop/x_gtFine_polygons.json": doc(obj("road", FULL)), "drop/x_leftImg8bit.png": b""})
    assert image.file_name == "drop/x_leftImg8bit.png"
    flat_beside_fine = FINE.replace("_gtFine_polygons.json", "_leftImg8bit.png")
    assert one({FINE: CITY_DOC, flat_beside_fine: b""}).file_name == flat_beside_fine
    assert one({FINE: CITY_DOC, flat_beside_fine: b"", FINE_IMAGE: b""}).file_name == FINE_IMAGE


def test_missing_image_is_named_where_the_dataset_layout_keeps_it():
    assert one({FINE: doc(obj("road", FULL))}).file_name == FINE_IMAGE
    assert one({"x_gtFine_polygons.json": doc(obj("road", FULL))}).file_name == "x_leftImg8bit.png"
    assert one({"a/x_polygons.json": doc(obj("road", FULL))}).file_name == "a/x_leftImg8bit.png"


def test_coarse_annotations_map_to_the_same_images():
    image = one({"cs/gtCoarse/val/bonn/bonn_1_gtCoarse_polygons.json": doc(obj("road", FULL))})
    assert image.file_name == "cs/leftImg8bit/val/bonn/bonn_1_leftImg8bit.png"


def test_a_huge_coordinate_is_an_error_naming_the_file_image_and_shape():
    image = one({FINE: doc(obj("road", FULL), obj("car", [[1, 1], [1e300, 1], [5, 5]]))})
    assert image.error.rule == "coordinates_out_of_frame"
    assert image.shapes == []
    message = str(image.error)
    assert f"mem://batch/{FINE}" in message and FINE_IMAGE in message and "shape #1 ('car')" in message


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"1e400"])
def test_non_finite_numbers_make_the_file_an_error_on_its_image(token: bytes):
    data = doc(obj("car", [[1, 1], [7, 1], [5, 5]])).replace(b"7", token, 1)
    image = one({FINE: data})
    assert image.error.rule == "unparseable_annotations"
    assert image.file_name == FINE_IMAGE


def test_a_huge_integer_coordinate_is_an_error_not_a_crash():
    data = doc(obj("car", [[1, 1], [7, 1], [5, 5]])).replace(b"7", b"1" + b"0" * 400, 1)
    image = one({FINE: data})
    assert image.error.rule == "unparseable_annotations"  # yajl refuses integers beyond 64 bits, as in COCO
    assert "integer overflow near" in str(image.error) and "[[1, 1], [1000" in str(image.error)


@pytest.mark.parametrize(("polygon", "rule"), [
    ([[1, 1], [5, "1"], [5, 5]], "malformed_polygon"),
    ([[1, 1, 2], [5, 1], [5, 5]], "malformed_polygon"),
    ([1, 1, 5, 1, 5, 5], "malformed_polygon"),
    ("1,1 5,1 5,5", "malformed_polygon"),
    ([[1, 1], [5, 1]], "degenerate_polygon"),
    ([[1, 1], [True, 1], [5, 5]], "malformed_polygon"),
])
def test_wrong_point_types_are_errors_naming_the_shape(polygon, rule: str):
    image = one({FINE: doc(obj("sky", FULL), obj("pole", polygon))})
    assert image.error.rule == rule
    assert "shape #1 ('pole')" in str(image.error)


@pytest.mark.parametrize("document", [
    b"[]",
    json.dumps({"imgHeight": H, "imgWidth": "40", "objects": []}).encode(),
    json.dumps({"imgHeight": 0, "imgWidth": W, "objects": []}).encode(),
    json.dumps({"imgHeight": H, "imgWidth": W}).encode(),
    json.dumps({"imgHeight": H, "imgWidth": W, "objects": ["road"]}).encode(),
    json.dumps({"imgHeight": H, "imgWidth": W, "objects": [{"label": 7, "polygon": FULL}]}).encode(),
])
def test_malformed_documents_are_errors_on_their_image(document: bytes):
    image = one({FINE: document})
    assert image.error.rule == "malformed_annotation"
    assert FINE in str(image.error)


def test_a_deleted_object_is_skipped_before_it_is_validated():
    image = one({FINE: doc(obj("road", FULL), obj("car", "junk", deleted=1))})
    assert image.error is None
    assert image.attributes == {"deleted_objects": "1"}


def test_a_truncated_file_is_an_error_on_its_image_and_the_other_files_are_still_read():
    other = "gtFine/train/aachen/aachen_000001_000019_gtFine_polygons.json"
    images = {i.file_name: i for i in read({FINE: CITY_DOC[:50], other: doc(obj("road", FULL))})}
    broken = images[FINE_IMAGE]
    assert broken.error.rule == "unparseable_annotations"
    assert (broken.width, broken.height, broken.shapes) == (0, 0, [])
    assert images["leftImg8bit/train/aachen/aachen_000001_000019_leftImg8bit.png"].error is None


def test_an_unreadable_file_is_an_error_on_its_image():
    source = MemorySource({})
    [image] = CITYSCAPES.read(source, [FINE], ReaderOptions())
    assert image.error.rule == "file_missing"
    assert image.file_name == FINE_IMAGE


def test_painting_the_shapes_in_order_matches_json2labelImg():
    json2label = pytest.importorskip("cityscapesscripts.preparation.json2labelImg")
    annotation_module = pytest.importorskip("cityscapesscripts.helpers.annotation")
    from cityscapesscripts.helpers.labels import name2label

    annotation = annotation_module.Annotation()
    annotation.fromJsonText(CITY_DOC.decode())
    expected = np.asarray(json2label.createLabelImage(annotation, "ids"))
    image = one({FINE: CITY_DOC})
    painted = Image.new("L", (image.width, image.height), name2label["unlabeled"].id)
    for shape in image.shapes:
        label = shape.attributes.get("base_label", shape.raw_label)
        painted_ring = [(float(x), float(y)) for x, y in shape.rings[0].reshape(-1, 2)]
        ImageDraw.Draw(painted).polygon(painted_ring, fill=name2label[label].id)
    np.testing.assert_array_equal(np.asarray(painted), expected)
