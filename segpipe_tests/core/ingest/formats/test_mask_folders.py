import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from segpipe.core.shared.errors import InputError
from segpipe.core.ingest.formats.annotation import AnnotatedImage
from segpipe.core.ingest.formats.mask_folders import ADE20K, IMAGE_MASK_FOLDERS, VOC_SEGMENTATION, voc_colour
from segpipe.core.ingest.formats.reader import FormatReader, ReaderOptions
from segpipe_tests.core.ingest.formats.memory_source import MemorySource


def png(pixels: np.ndarray, mode: str, palette: list[int] | None = None) -> bytes:
    image = Image.fromarray(pixels.astype(np.uint8), mode=mode)
    if palette is not None:
        image.putpalette(palette)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def grey_png(bit_depth: int, width: int, packed_row: bytes) -> bytes:
    """A one-row grayscale PNG at a bit depth Pillow cannot write."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, 1, bit_depth, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" + packed_row))
            + chunk(b"IEND", b""))


def read(reader: FormatReader, files: dict[str, bytes]) -> list[AnnotatedImage]:
    source = MemorySource(files)
    claimed = reader.annotation_files(source.names(), source.read)
    return list(reader.read(source, claimed, ReaderOptions()))


def one(reader: FormatReader, files: dict[str, bytes]) -> AnnotatedImage:
    [image] = read(reader, files)
    return image


def rebuilt(image: AnnotatedImage) -> dict[str, np.ndarray]:
    """Each shape's BoxMask placed back into a full frame, by label."""
    frames = {}
    for shape in image.shapes:
        frame = np.zeros((image.height, image.width), dtype=bool)
        box = shape.mask
        frame[box.top:box.top + box.height, box.left:box.left + box.width] = box.to_array()
        frames[shape.raw_label] = frame
    return frames


VOC_PALETTE = [c for index in range(256) for c in voc_colour(index)]


def voc_mask() -> np.ndarray:
    """A person with a hole, inside a void boundary, on background; 8x10."""
    mask = np.zeros((8, 10), dtype=np.uint8)
    mask[1:7, 2:8] = 255
    mask[2:6, 3:7] = 15
    mask[3:5, 4:6] = 0
    return mask


# --- decoding rules shared by the three readers ------------------------------------------------

def test_voc_palette_mask_gives_one_mask_shape_per_index_in_ascending_order_and_round_trips():
    mask = voc_mask()
    image = one(VOC_SEGMENTATION, {"SegmentationClass/a.png": png(mask, "P", VOC_PALETTE), "JPEGImages/a.jpg": b""})
    assert (image.file_name, image.width, image.height, image.error) == ("JPEGImages/a.jpg", 10, 8, None)
    assert [s.raw_label for s in image.shapes] == ["background", "person", "void"]
    assert {(s.kind, s.z_order) for s in image.shapes} == {("mask", 0)}
    frames = rebuilt(image)
    for label, value in [("background", 0), ("person", 15), ("void", 255)]:
        np.testing.assert_array_equal(frames[label], mask == value)
    assert frames["background"][3:5, 4:6].all()  # the hole in the person survives


def test_palette_colours_are_not_consulted_for_palette_masks():
    grey_palette = [c for index in range(256) for c in (index, index, index)]
    image = one(VOC_SEGMENTATION, {"SegmentationClass/a.png": png(voc_mask(), "P", grey_palette)})
    assert [s.raw_label for s in image.shapes] == ["background", "person", "void"]


def test_a_mask_without_its_image_is_still_yielded():
    image = one(VOC_SEGMENTATION, {"VOC2012/SegmentationClass/b.png": png(voc_mask(), "L")})
    assert image.file_name == "VOC2012/JPEGImages/b.jpg"
    assert image.error is None


@pytest.mark.parametrize(("bit_depth", "packed_row", "labels"), [
    (4, bytes([0x0F, 0x30]), ["background", "bird", "person"]),  # 0, 15, 3
    (2, bytes([0b00011000]), ["background", "aeroplane", "bicycle"]),  # 0, 1, 2
])
def test_low_bit_depth_grayscale_masks_keep_their_stored_indices(bit_depth: int, packed_row: bytes, labels: list):
    image = one(VOC_SEGMENTATION, {"SegmentationClass/a.png": grey_png(bit_depth, 3, packed_row)})
    assert [s.raw_label for s in image.shapes] == labels


def test_a_truncated_mask_is_an_error_on_its_image():
    data = png(voc_mask(), "P", VOC_PALETTE)
    images = read(VOC_SEGMENTATION, {"SegmentationClass/a.png": data[: len(data) // 2],
                                      "SegmentationClass/b.png": data})
    assert images[0].error.rule == "mask_undecodable"
    assert "mem://batch/SegmentationClass/a.png" in str(images[0].error)
    assert (images[0].file_name, images[0].shapes) == ("JPEGImages/a.jpg", [])
    assert images[1].error is None


def test_a_jpeg_mask_is_refused():
    out = io.BytesIO()
    Image.fromarray(voc_mask()).save(out, format="JPEG")
    image = one(VOC_SEGMENTATION, {"SegmentationClass/a.png": out.getvalue()})
    assert image.error.rule == "mask_undecodable"


def test_the_decompression_bomb_warning_is_an_error(monkeypatch: pytest.MonkeyPatch):
    data = png(np.zeros((4, 4)), "L")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    image = one(VOC_SEGMENTATION, {"SegmentationClass/a.png": data})
    assert image.error.rule == "mask_undecodable"
    assert "DecompressionBomb" in str(image.error)


def test_unsupported_modes_are_errors_on_the_image():
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    image = one(VOC_SEGMENTATION, {"SegmentationClass/a.png": png(rgba, "RGBA")})
    assert image.error.rule == "mask_mode_unsupported"
    assert "'RGBA'" in str(image.error)


# --- VOC --------------------------------------------------------------------------------------

LABELMAP = b"""# label:color_rgb:parts:actions
background:0,0,0::
road:128,64,128::
car:0,0,142::
"""


def test_voc_claims_class_masks_and_the_labelmap_beside_them_only():
    names = ["VOC/SegmentationClass/a.png", "VOC/SegmentationObject/a.png", "VOC/JPEGImages/a.jpg",
             "VOC/labelmap.txt", "VOC/ImageSets/Segmentation/train.txt", "labelmap.txt", "a.png"]
    assert VOC_SEGMENTATION.annotation_files(names, lambda name: b"") == [
        "VOC/SegmentationClass/a.png", "VOC/labelmap.txt"]


def test_voc_rgb_mask_decodes_through_the_default_voc_colours():
    mask = voc_mask()
    colours = np.array([voc_colour(i) for i in range(256)], dtype=np.uint8)[mask]
    image = one(VOC_SEGMENTATION, {"SegmentationClass/a.png": png(colours, "RGB")})
    assert [s.raw_label for s in image.shapes] == ["background", "person", "void"]
    np.testing.assert_array_equal(rebuilt(image)["void"], mask == 255)


def test_a_labelmap_overrides_names_and_colours():
    mask = np.array([[0, 1, 2, 2], [0, 1, 1, 7]], dtype=np.uint8)
    rgb = np.array([[0, 0, 0], [128, 64, 128], [0, 0, 142], [0, 0, 142]], dtype=np.uint8)[[[0, 1, 2, 2], [0, 1, 1, 3]]]
    files = {"SegmentationClass/a.png": png(mask, "L"), "SegmentationClass/b.png": png(rgb, "RGB"),
             "labelmap.txt": LABELMAP}
    index_image, rgb_image = read(VOC_SEGMENTATION, files)
    assert [s.raw_label for s in index_image.shapes] == ["background", "road", "car", "7"]
    assert [s.raw_label for s in rgb_image.shapes] == ["background", "road", "car"]


def test_an_unknown_colour_is_an_error_naming_the_colour_and_its_pixel_count():
    rgb = np.zeros((2, 4, 3), dtype=np.uint8)
    rgb[0, :3] = (1, 2, 3)
    rgb[1, 0] = (9, 9, 9)
    image = one(VOC_SEGMENTATION, {"SegmentationClass/a.png": png(rgb, "RGB"), "labelmap.txt": LABELMAP})
    assert image.error.rule == "unknown_mask_colour"
    assert "rgb(1, 2, 3) (3 px), rgb(9, 9, 9) (1 px)" in str(image.error)


def test_a_labelmap_without_colours_uses_the_voc_palette_by_index():
    rgb = np.array([[voc_colour(0), voc_colour(1), (224, 224, 192)]], dtype=np.uint8)
    image = one(VOC_SEGMENTATION, {"SegmentationClass/a.png": png(rgb, "RGB"), "labelmap.txt": b"bg:::\nroad:::\n"})
    assert [s.raw_label for s in image.shapes] == ["bg", "road", "void"]


@pytest.mark.parametrize("labelmap", [b"car:1,2::\n", b"car:1,2,300::\n", b"car:0,0,0\n", b"a:1,1,1::\na:2,2,2::\n",
                                      b"a:1,1,1::\nb:1,1,1::\n", b"# nothing\n", b":1,1,1::\n", b"\xff\xfe"])
def test_a_broken_labelmap_raises_for_the_batch(labelmap: bytes):
    with pytest.raises(InputError) as raised:
        read(VOC_SEGMENTATION, {"SegmentationClass/a.png": png(voc_mask(), "L"), "labelmap.txt": labelmap})
    assert raised.value.rule == "class_map_invalid"
    assert "mem://batch/labelmap.txt" in str(raised.value)


# --- ADE20K -----------------------------------------------------------------------------------

def test_ade_full_dataset_seg_png_decodes_r_over_10_times_256_plus_g_and_ignores_instances():
    classes = np.array([[0, 1234, 1234], [7, 7, 3000]])
    rgb = np.stack([classes // 256 * 10 + 3, classes % 256, np.array([[0, 1, 2], [3, 4, 5]])], axis=-1)
    image = one(ADE20K, {"ADE/training/a/abbey/ADE_train_00000001_seg.png": png(rgb, "RGB")})
    assert image.file_name == "ADE/training/a/abbey/ADE_train_00000001.jpg"
    assert [s.raw_label for s in image.shapes] == ["0", "7", "1234", "3000"]
    np.testing.assert_array_equal(rebuilt(image)["1234"], classes == 1234)


def test_ade_seg_png_must_be_rgb():
    image = one(ADE20K, {"x_seg.png": png(np.zeros((2, 2)), "L")})
    assert image.error.rule == "mask_mode_unsupported"


def test_ade_scene_parsing_grayscale_indices_are_labels():
    mask = np.array([[0, 150, 150], [12, 0, 150]])
    image = one(ADE20K, {"ADEChallengeData2016/annotations/training/ADE_train_00000001.png": png(mask, "L")})
    assert image.file_name == "ADEChallengeData2016/images/training/ADE_train_00000001.jpg"
    assert [s.raw_label for s in image.shapes] == ["0", "12", "150"]


def test_ade_claims_its_two_layouts_only():
    names = ["a_seg.png", "a.jpg", "a_parts_1.png", "annotations/training/b.png", "images/training/b.jpg",
             "annotations/b.png", "objectInfo150.csv"]
    assert ADE20K.annotation_files(names, lambda name: b"") == ["a_seg.png", "annotations/training/b.png"]


def test_ade_scene_parsing_rgb_mask_has_no_colours_to_decode():
    image = one(ADE20K, {"annotations/validation/b.png": png(np.zeros((2, 2, 3)), "RGB")})
    assert image.error.rule == "mask_mode_unsupported"


# --- images/ + masks/ folders -----------------------------------------------------------------

META = {"labels": ["background", "car"], "label_map": {"0": "background", "1": "car", "255": "ignore"},
        "segmentation_colors": [[0, 0, 0], [0, 0, 142], [255, 255, 255]], "background_label": "0"}


def meta(**changes) -> bytes:
    return json.dumps({**META, **changes}).encode()


def test_folders_claim_masks_and_their_class_map():
    names = ["train/masks/a.png", "train/images/a.jpg", "train/dataset_meta.json", "val/masks/b.png",
             "val/class_map.json", "class_map.json", "train/masks/notes.txt"]
    assert IMAGE_MASK_FOLDERS.annotation_files(names, lambda name: b"") == [
        "train/dataset_meta.json", "train/masks/a.png", "val/class_map.json", "val/masks/b.png"]


def test_grayscale_index_masks_are_named_by_the_class_map_and_unnamed_values_keep_their_number():
    mask = np.array([[0, 1, 1], [255, 4, 0]])
    image = one(IMAGE_MASK_FOLDERS, {"masks/a.png": png(mask, "L"), "images/a.png": b"", "class_map.json": meta()})
    assert image.file_name == "images/a.png"
    assert [s.raw_label for s in image.shapes] == ["background", "car", "4", "ignore"]
    np.testing.assert_array_equal(rebuilt(image)["car"], mask == 1)


def test_an_unnamed_ignore_value_keeps_its_number():
    mask = np.array([[0, 255]])
    image = one(IMAGE_MASK_FOLDERS, {"masks/a.png": png(mask, "P", VOC_PALETTE),
                                     "dataset_meta.json": json.dumps({"labels": ["background"]}).encode()})
    assert [s.raw_label for s in image.shapes] == ["background", "255"]


def test_rgb_masks_decode_through_segmentation_colors():
    rgb = np.array([[[0, 0, 0], [0, 0, 142]], [[255, 255, 255], [0, 0, 142]]], dtype=np.uint8)
    files = {"data/masks/sub/a.png": png(rgb, "RGB"), "data/images/sub/a.jpeg": b"", "data/dataset_meta.json": meta()}
    image = one(IMAGE_MASK_FOLDERS, files)
    assert image.file_name == "data/images/sub/a.jpeg"
    assert [s.raw_label for s in image.shapes] == ["background", "car", "ignore"]
    np.testing.assert_array_equal(rebuilt(image)["car"], [[False, True], [False, True]])


def test_rgb_mask_with_an_unknown_colour_is_an_error_on_its_image():
    rgb = np.array([[[0, 0, 0], [10, 20, 30]]], dtype=np.uint8)
    image = one(IMAGE_MASK_FOLDERS, {"masks/a.png": png(rgb, "RGB"), "class_map.json": meta()})
    assert image.error.rule == "unknown_mask_colour"
    assert "rgb(10, 20, 30) (1 px)" in str(image.error)
    assert image.file_name == "images/a.jpg"


def test_rgb_mask_needs_colours_in_the_class_map():
    image = one(IMAGE_MASK_FOLDERS, {"masks/a.png": png(np.zeros((1, 2, 3)), "RGB"),
                                     "class_map.json": meta(segmentation_colors=None)})
    assert image.error.rule == "mask_mode_unsupported"


def test_binary_one_bit_masks_are_indices():
    image = Image.fromarray(np.array([[0, 255, 255]], dtype=np.uint8)).convert("1")
    out = io.BytesIO()
    image.save(out, format="PNG")
    result = one(IMAGE_MASK_FOLDERS, {"masks/a.png": out.getvalue(), "class_map.json": meta()})
    assert [s.raw_label for s in result.shapes] == ["background", "car"]


@pytest.mark.parametrize(("files", "rule"), [
    ({}, "class_map_missing"),
    ({"class_map.json": meta(), "dataset_meta.json": meta()}, "class_map_ambiguous"),
    ({"class_map.json": meta(labels=["background", "truck"])}, "class_map_invalid"),
    ({"class_map.json": meta(segmentation_colors=[[0, 0, 0]])}, "class_map_invalid"),
    ({"class_map.json": meta(segmentation_colors=[[0, 0, 0], [0, 0, 0], [1, 1, 1]])}, "class_map_invalid"),
    ({"class_map.json": meta(segmentation_colors=[[0, 0, 0], [0, 0, 256], [1, 1, 1]])}, "class_map_invalid"),
    ({"class_map.json": meta(label_map={"one": "car"}, segmentation_colors=None)}, "class_map_invalid"),
    ({"class_map.json": json.dumps({"labels": [], "label_map": {}}).encode()}, "class_map_invalid"),
    ({"class_map.json": b"[]"}, "class_map_invalid"),
    ({"class_map.json": b'{"labels": ["a"], "labels": ["b"]}'}, "duplicate_key"),
])
def test_a_missing_ambiguous_or_broken_class_map_raises_for_the_batch(files: dict[str, bytes], rule: str):
    with pytest.raises(InputError) as raised:
        read(IMAGE_MASK_FOLDERS, {"masks/a.png": png(np.zeros((2, 2)), "L"), **files})
    assert raised.value.rule == rule
