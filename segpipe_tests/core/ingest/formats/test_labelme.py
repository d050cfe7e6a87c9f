"""LabelMe JSON: shapes as labelme2voc paints them, and one error per bad file, never a raise."""

import base64
import io
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from segpipe.core.ingest.formats.annotation import AnnotatedImage, BoxMask
from segpipe.core.ingest.formats.labelme import LABELME
from segpipe.core.ingest.formats.reader import ReaderOptions
from segpipe_tests.core.ingest.formats.memory_source import MemorySource

WIDTH, HEIGHT = 40, 30


def document(*shapes: dict, **fields) -> dict:
    """A LabelMe file as labelme 5 writes it."""
    return {"version": "5.5.0", "flags": {}, "shapes": list(shapes), "imagePath": "a.jpg", "imageData": None,
            "imageHeight": HEIGHT, "imageWidth": WIDTH, **fields}


def shape(shape_type: str, points: list, label: str = "car", **fields) -> dict:
    return {"label": label, "points": points, "group_id": None, "description": "", "shape_type": shape_type,
            "flags": {}, "mask": None, **fields}


def read_files(files: dict[str, bytes]) -> list[AnnotatedImage]:
    source = MemorySource(files)
    return list(LABELME.read(source, LABELME.annotation_files(source.names(), source.read), ReaderOptions()))


def read_one(doc: dict, name: str = "a.json") -> AnnotatedImage:
    [image] = read_files({name: json.dumps(doc).encode()})
    return image


def placed(mask: BoxMask) -> np.ndarray:
    frame = np.zeros((HEIGHT, WIDTH), dtype=bool)
    frame[mask.top:mask.top + mask.height, mask.left:mask.left + mask.width] = mask.to_array()
    return frame


def png_base64(binary: np.ndarray) -> str:
    out = io.BytesIO()
    Image.fromarray(binary.astype(np.uint8)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def labelme_circle(cx: float, cy: float, px: float, py: float) -> np.ndarray:
    """labelme.utils.shape_to_mask for shape_type "circle", on the whole frame."""
    canvas = Image.fromarray(np.zeros((HEIGHT, WIDTH), dtype=np.uint8))
    d = math.sqrt((cx - px) ** 2 + (cy - py) ** 2)
    ImageDraw.Draw(canvas).ellipse([cx - d, cy - d, cx + d, cy + d], outline=1, fill=1)
    return np.array(canvas, dtype=bool)


def test_polygon_with_group_id_flags_and_description():
    image = read_one(document(
        shape("polygon", [[1, 1], [10, 1], [10.5, 8]], group_id=3, flags={"occluded": True, "truncated": False},
              description="behind the bus"),
        shape(None, [[0, 0], [4, 0], [4, 4]], label="road"),
        flags={"night": True}))
    assert (image.file_name, image.width, image.height, image.error) == ("a.jpg", WIDTH, HEIGHT, None)
    assert image.attributes == {"flag:night": "1"}
    car, road = image.shapes
    assert (car.raw_label, car.kind, car.group_id, car.z_order) == ("car", "polygon", 3, 0)
    assert car.rings[0].dtype == np.float64 and car.rings[0].tolist() == [1, 1, 10, 1, 10.5, 8]
    assert car.attributes == {"flag:occluded": "1", "flag:truncated": "0", "description": "behind the bus"}
    assert (road.raw_label, road.kind, road.group_id, road.attributes) == ("road", "polygon", None, {})


def test_rectangle_is_a_filled_polygon_of_its_corners_in_any_order():
    [rect] = read_one(document(shape("rectangle", [[12, 9], [2, 3]]))).shapes
    assert rect.kind == "polygon"
    assert rect.rings[0].tolist() == [2, 3, 12, 3, 12, 9, 2, 9]


@settings(max_examples=60, deadline=None)
@given(st.floats(-10, 50), st.floats(-10, 40), st.floats(0, 40), st.floats(0, 30))
def test_circle_is_the_disc_labelme_draws(cx, cy, px, py):
    image = read_one(document(shape("circle", [[cx, cy], [px, py]])))
    expected = labelme_circle(cx, cy, px, py)
    if image.error is not None:
        radius_zero = math.sqrt((cx - px) ** 2 + (cy - py) ** 2) == 0
        assert (image.error.rule, True) in (("degenerate_polygon", radius_zero), ("empty_mask", not expected.any()))
        return
    [circle] = image.shapes
    assert circle.kind == "mask"
    assert np.array_equal(placed(circle.mask), expected)


def test_mask_shape_is_its_png_placed_at_the_inclusive_box():
    binary = np.zeros((5, 7), dtype=bool)
    binary[1:4, 2:6] = True
    binary[2, 3] = False
    [mask] = read_one(document(shape("mask", [[10, 20], [16, 24]], mask=png_base64(binary)))).shapes
    assert mask.kind == "mask"
    expected = np.zeros((HEIGHT, WIDTH), dtype=bool)
    expected[20:25, 10:17] = binary
    assert np.array_equal(placed(mask.mask), expected)


def test_lines_and_points_are_kept_unpainted_kinds():
    image = read_one(document(
        shape("line", [[0, 0], [5, 5]]), shape("linestrip", [[0, 0], [5, 5], [9, 1]]),
        shape("point", [[3, 3]]), shape("points", [[3, 3], [4, 4]])))
    assert [s.kind for s in image.shapes] == ["polyline", "polyline", "points", "points"]


def test_image_path_is_relative_to_the_json_folder_with_windows_separators():
    doc = document(shape("polygon", [[1, 1], [5, 1], [5, 5]]), imagePath="..\\images\\day\\a.jpg")
    assert read_one(doc, "labels/day/a.json").file_name == "labels/images/day/a.jpg"


@pytest.mark.parametrize("path", ["../../a.jpg", "/etc/passwd", "C:\\data\\a.jpg", "..", "../.."])
def test_an_image_path_outside_the_batch_without_image_data_is_refused_saying_both_were_tried(path):
    image = read_one(document(shape("polygon", [[1, 1], [5, 1], [5, 5]]), imagePath=path), "labels/a.json")
    assert image.error is None and [s.raw_label for s in image.shapes] == ["car"]
    assert image.image_error.rule == "unsafe_path" and "labels/a.json" in str(image.image_error)
    assert "imageData is null" in str(image.image_error)


def test_an_absolute_windows_image_path_falls_back_to_the_embedded_image():
    jpeg = b"\xff\xd8\xff\xe0 embedded"
    doc = document(imagePath="C:\\Users\\ann\\Pictures\\street 01.jpg", imageData=base64.b64encode(jpeg).decode())
    image = read_one(doc, "labels/street 01.json")
    assert (image.file_name, image.image_data, image.image_error) == ("labels/street 01.jpg", jpeg, None)


def test_an_absolute_image_path_finds_the_image_by_its_file_name_in_the_batch():
    doc = document(imagePath="D:\\export\\a.JPG")
    [image] = read_files({"labels/a.json": json.dumps(doc).encode(), "photos/a.jpg": b"jpeg"})
    assert (image.file_name, image.image_error) == ("photos/a.jpg", None)


def test_embedded_image_data_is_decoded():
    jpeg = b"\xff\xd8\xff\xe0 not really a jpeg"
    image = read_one(document(imageData=base64.b64encode(jpeg).decode()))
    assert image.image_data == jpeg
    assert read_one(document(imageData="%%%")).error.rule == "malformed_annotation"


def test_duplicate_keys_make_the_file_an_error_on_the_image_beside_it():
    text = json.dumps(document(shape("polygon", [[1, 1], [5, 1], [5, 5]])))
    duplicated = text.replace('"imageWidth": 40', '"imageWidth": 40, "imageWidth": 400').encode()
    images = read_files({"scans/a.json": duplicated, "scans/a.png": b"png", "scans/b.json": json.dumps(document()).encode()})
    broken = images[0]
    assert broken.file_name == "scans/a.png"
    assert broken.error.rule == "duplicate_key" and "$ gives the key 'imageWidth' twice" in str(broken.error)
    assert images[1].error is None


@pytest.mark.parametrize(("data", "rule"), [
    (b'{"shapes": [{"label": "car", "points": [[NaN, 1], [5, 1], [5, 5]]}], "imagePath": "a.jpg"}', "unparseable_annotations"),
    (b'{"shapes": [], "imagePath": "a.jpg", "imageWidth": Infinity}', "unparseable_annotations"),
    (b'{"shapes": [], "imagePath": "a.jpg", "imageWidth": 1e400}', "unparseable_annotations"),
    (json.dumps(document(shape("polygon", [[1, 1], [5, 1], [5, 5]]))).encode()[:-20], "unparseable_annotations"),
])
def test_unreadable_files_are_errors_named_after_the_guessed_image(data, rule):
    [image] = read_files({"x/a.json": data, "x/a.jpg": b"jpg", "x/a.txt.bak": b""})
    assert (image.file_name, image.error.rule) == ("x/a.jpg", rule)
    assert "mem://batch/x/a.json" in str(image.error)


def test_a_broken_file_without_a_namesake_image_is_named_after_itself():
    [image] = read_files({"a.json": b'{"shapes": [], "imagePath": "a.jpg", "oops'})
    assert image.file_name == "a.json" and image.error.rule == "unparseable_annotations"


@pytest.mark.parametrize(("changes", "rule", "says"), [
    ({"imageHeight": None}, "malformed_annotation", "imageHeight is None"),
    ({"imageWidth": "40"}, "malformed_annotation", "imageWidth is '40'"),
    ({"imagePath": None}, "malformed_annotation", "imagePath is None"),
    ({"shapes": {}}, "malformed_annotation", "`shapes` is not a list"),
    ({"flags": {"night": "yes"}}, "malformed_annotation", "flags"),
    ({"shapes": [shape("polygon", [["1", "1"], [5, 1], [5, 5]])]}, "malformed_polygon", "shape #0 ('car')"),
    ({"shapes": [shape("polygon", [[1, 1, 1], [5, 1], [5, 5]])]}, "malformed_polygon", "point #0"),
    ({"shapes": [shape("polygon", [[1, 1], [5, 1]])]}, "degenerate_polygon", "fewer than 3"),
    ({"shapes": [shape("polygon", [[1, 1], [1e300, 1], [5, 5]])]}, "coordinates_out_of_frame", "shape #0 ('car')"),
    ({"shapes": [shape("rectangle", [[1, 1], [5, 1], [5, 5]])]}, "malformed_polygon", "3 points, not 2"),
    ({"shapes": [shape("rectangle", [[1, 1], [5, 1]])]}, "degenerate_box", "empty box"),
    ({"shapes": [shape("circle", [[3, 3], [3, 3]])]}, "degenerate_polygon", "radius 0"),
    ({"shapes": [shape("ellipse", [[3, 3], [5, 5]])]}, "unsupported_shape", "'ellipse'"),
    ({"shapes": [shape(["polygon"], [[3, 3], [5, 5]])]}, "unsupported_shape", "['polygon']"),
    ({"shapes": [shape("polygon", [[1, 1], [5, 1], [5, 5]], group_id="2")]}, "malformed_annotation", "group_id '2'"),
    ({"shapes": [shape("polygon", [[1, 1], [5, 1], [5, 5]], label=7)]}, "malformed_annotation", "label string"),
    ({"shapes": [shape("polygon", [[1, 1], [5, 1], [5, 5]], description=3)]}, "malformed_annotation", "description"),
    ({"shapes": ["polygon"]}, "malformed_annotation", "shape #0"),
    ({"shapes": [shape("mask", [[0, 0], [2, 2]], mask=None)]}, "malformed_mask", "no base64 PNG"),
    ({"shapes": [shape("mask", [[0, 0], [2, 2]], mask="not base64!")]}, "malformed_mask", "not a base64 PNG"),
    ({"shapes": [shape("mask", [[0, 0], [2, 2]], mask=base64.b64encode(b"GIF89a").decode())]}, "malformed_mask", "not a base64 PNG"),
    ({"shapes": [shape("mask", [[0, 0], [2, 2]], mask=png_base64(np.ones((2, 3), dtype=bool)))]}, "size_mismatch", "3x2 mask PNG for a 3x3 box"),
    ({"shapes": [shape("mask", [[38, 0], [41, 2]], mask=png_base64(np.ones((3, 4), dtype=bool)))]}, "coordinates_out_of_frame", "mask box"),
    ({"shapes": [shape("mask", [[0, 0], [2, 2]], mask=png_base64(np.zeros((3, 3), dtype=bool)))]}, "empty_mask", "covers no pixel"),
])
def test_a_wrong_file_is_an_error_on_its_image_naming_file_image_and_shape(changes, rule, says):
    image = read_one(document(**changes))
    assert image.error is not None and image.error.rule == rule, image.error
    assert image.file_name == "a.jpg" or "imagePath" in changes
    assert "mem://batch/a.json" in str(image.error) and says in str(image.error)


def test_an_rgb_mask_png_is_refused():
    out = io.BytesIO()
    Image.new("RGB", (3, 3), (255, 255, 255)).save(out, format="PNG")
    image = read_one(document(shape("mask", [[0, 0], [2, 2]], mask=base64.b64encode(out.getvalue()).decode())))
    assert image.error.rule == "malformed_mask" and "single-channel" in str(image.error)


def test_every_file_yields_exactly_one_image_even_when_broken():
    files = {
        "a.json": json.dumps(document(shape("polygon", [[1, 1], [5, 1], [5, 5]]))).encode(),
        "b.json": json.dumps(document(imagePath="b.jpg", imageWidth="wide")).encode(),
        "c.json": b'{"shapes": [], "imagePath": "c.jpg", "imageWidth": NaN}',
    }
    images = read_files(files)
    assert [(i.file_name, i.error.rule if i.error else None) for i in images] == [
        ("a.jpg", None), ("b.jpg", "malformed_annotation"), ("c.json", "unparseable_annotations")]


def test_detector_claims_labelme_json_only():
    big_mask_first = b'{"version": "5", "flags": {}, "shapes": [{"label": "x", "points": [[0, 0], [1, 1]], "mask": "' + b"A" * 70000
    heads = {
        "a.json": json.dumps(document()).encode(),
        "deep/b.json": big_mask_first[:65536],
        "coco.json": b'{"images": [], "annotations": [], "categories": []}',
        "city_polygons.json": b'{"imgHeight": 1, "imgWidth": 1, "objects": []}',
        "shapes.txt": b'"shapes" "imagePath"',
    }
    assert LABELME.annotation_files(sorted(heads), heads.__getitem__) == ["a.json", "deep/b.json"]
