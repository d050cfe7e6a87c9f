import json

import pytest

from segpipe.core.shared.errors import InputError
from segpipe.core.ingest.formats import READERS, select_reader

CVAT_HEAD = b'<?xml version="1.0"?><annotations><version>1.1</version><meta><task></task></meta><image name="a.jpg"'
COCO_HEAD = b'{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [], "categories": []}'
CITYSCAPES_NAME = "gtFine/val/x/x_000001_gtFine_polygons.json"
CITYSCAPES_PNG = "gtFine/val/x/x_000001_gtFine_instanceIds.png"
PANOPTIC_HEAD = b'{"images": [], "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": []}]}'

LISTINGS = {
    "cvat_images_1.1": ({"annotations.xml": CVAT_HEAD, "images/a.jpg": b""}, ["annotations.xml"]),
    "coco_instances": ({"annotations/instances_val.json": COCO_HEAD, "images/a.jpg": b""}, ["annotations/instances_val.json"]),
    "cityscapes_polygons": ({CITYSCAPES_NAME: b'{"imgHeight": 1, "imgWidth": 1, "objects": []}'}, [CITYSCAPES_NAME]),
    # A panoptic JSON whose head ends before `segments_info` is known by the PNG folder named after it.
    "coco_panoptic": ({"annotations/panoptic_val.json": COCO_HEAD, "annotations/panoptic_val/a.png": b"",
                       "images/a.jpg": b""}, ["annotations/panoptic_val.json", "annotations/panoptic_val/a.png"]),
    "cityscapes_label_pngs": ({CITYSCAPES_PNG: b"", CITYSCAPES_PNG.replace("instanceIds", "color"): b"",
                               "leftImg8bit/val/x/x_000001_leftImg8bit.png": b""},
                              [CITYSCAPES_PNG.replace("instanceIds", "color"), CITYSCAPES_PNG]),
}


def heads(files: dict[str, bytes]):
    return lambda name: files[name]


@pytest.mark.parametrize("format_name", sorted(LISTINGS))
def test_detection_picks_the_one_format_that_claims_files(format_name):
    files, expected = LISTINGS[format_name]
    choice = select_reader(sorted(files), heads(files), None, "mem://b")
    assert (choice.reader.name, choice.files, choice.passed_over) == (format_name, expected, {})


def test_several_matching_formats_are_an_error_asking_to_declare_one():
    files = {**LISTINGS["cvat_images_1.1"][0], **LISTINGS["coco_instances"][0]}
    with pytest.raises(InputError) as caught:
        select_reader(sorted(files), heads(files), None, "mem://b")
    assert caught.value.rule == "ambiguous_format"
    assert "cvat_images_1.1" in str(caught.value) and "coco_instances" in str(caught.value)
    assert 'declare "format" in batch.json' in str(caught.value)
    choice = select_reader(sorted(files), heads(files), "coco_instances", "mem://b")
    assert (choice.reader.name, choice.files) == ("coco_instances", ["annotations/instances_val.json"])
    assert choice.passed_over == {"cvat_images_1.1": ["annotations.xml"]}


def test_no_matching_format_lists_every_format_and_the_files_it_accepts():
    with pytest.raises(InputError) as caught:
        select_reader(["notes.txt", "photo.jpg"], heads({}), None, "mem://b")
    assert caught.value.rule == "unknown_format"
    for reader in READERS.values():
        assert f"{reader.name}: {reader.accepts}" in str(caught.value)


def test_a_declared_format_must_exist_and_find_its_files():
    with pytest.raises(InputError, match="'labelbox' is not one of") as unknown:
        select_reader(["a.json"], heads({}), "labelbox", "mem://b")
    assert unknown.value.rule == "unknown_format"
    files = LISTINGS["coco_instances"][0]
    with pytest.raises(InputError, match="no file of the batch is one it accepts") as missing:
        select_reader(sorted(files), heads(files), "cityscapes_polygons", "mem://b")
    assert missing.value.rule == "annotations_missing"


def test_a_panoptic_json_with_segments_info_in_its_head_is_panoptic_even_without_its_folder():
    files = {"panoptic.json": PANOPTIC_HEAD}
    choice = select_reader(sorted(files), heads(files), None, "mem://b")
    assert (choice.reader.name, choice.files) == ("coco_panoptic", ["panoptic.json"])


def test_panoptic_pngs_are_not_an_ade20k_scene_parsing_split():
    """`annotations/<split>/*.png` is ADE20K's layout too, unless `annotations/<split>.json` sits beside it."""
    files, _ = LISTINGS["coco_panoptic"]
    assert READERS["ade20k"].annotation_files(sorted(files), heads(files)) == []
    ade = {"annotations/validation/a.png": b"", "images/validation/a.jpg": b""}
    assert READERS["ade20k"].annotation_files(sorted(ade), heads(ade)) == ["annotations/validation/a.png"]


def test_cityscapes_pngs_beside_their_polygons_leave_the_batch_to_the_polygon_reader():
    files = {**LISTINGS["cityscapes_polygons"][0], **LISTINGS["cityscapes_label_pngs"][0],
             "gtFine/val/y/y_000002_gtFine_labelIds.png": b""}
    choice = select_reader(sorted(files), heads(files), None, "mem://b")
    assert (choice.reader.name, choice.files, choice.passed_over) == ("cityscapes_polygons", [CITYSCAPES_NAME], {})
    rendered = f"Cityscapes label PNG rendered from the polygons segpipe reads, {CITYSCAPES_NAME}"
    assert choice.companions == {
        CITYSCAPES_PNG: rendered, CITYSCAPES_PNG.replace("instanceIds", "color"): rendered,
        "gtFine/val/y/y_000002_gtFine_labelIds.png": (
            "Cityscapes label PNG without its polygons gtFine/val/y/y_000002_gtFine_polygons.json: a batch with "
            "polygon files is read from them alone; land the JSON, or the PNGs without any JSON as a batch of their own")}


def test_the_masks_voc_and_ade20k_exports_write_beside_the_ones_read_are_companions():
    voc = {"VOC/SegmentationClass/a.png": b"", "VOC/SegmentationObject/a.png": b"", "VOC/JPEGImages/a.jpg": b"",
           "other/SegmentationObject/b.png": b""}  # no SegmentationClass beside it: not a companion
    choice = select_reader(sorted(voc), heads(voc), None, "mem://b")
    assert choice.companions == {"VOC/SegmentationObject/a.png": "VOC instance masks: segpipe reads SegmentationClass"}
    ade = {"t/1.jpg": b"", "t/1_seg.png": b"", "t/1_parts_1.png": b"", "t/1/instance_000_ADE_train_1.png": b"",
           "t/2_parts_1.png": b"", "t/2/instance_000_ADE_train_2.png": b""}  # no 2_seg.png: not companions
    choice = select_reader(sorted(ade), heads(ade), "ade20k", "mem://b")
    assert choice.companions == {
        "t/1_parts_1.png": "ADE20K part masks: segpipe reads the object classes of t/1_seg.png",
        "t/1/instance_000_ADE_train_1.png": "ADE20K instance mask of one object: segpipe reads the object classes of "
                                            "t/1_seg.png"}


def test_cityscapes_train_id_or_colour_pngs_alone_are_not_claimed():
    only = {"gtFine/val/x/x_1_gtFine_labelTrainIds.png": b"", "gtFine/val/x/x_1_gtFine_color.png": b""}
    assert READERS["cityscapes_label_pngs"].annotation_files(sorted(only), heads(only)) == []


def labelme_json(image_path: str) -> bytes:
    return json.dumps({"version": "5.5.0", "flags": {}, "shapes": [{"label": "person", "points": [[1, 1], [5, 1], [5, 5]],
                       "group_id": None, "shape_type": "polygon", "flags": {}}], "imagePath": image_path,
                       "imageData": None, "imageHeight": 8, "imageWidth": 8}).encode()


def test_labelme_json_next_to_its_own_voc_output_is_read_as_labelme_saying_why():
    """labelme's examples/semantic_segmentation: the annotated JSONs and what labelme2voc made of them."""
    files = {
        "data_annotated/2011_000003.json": labelme_json("2011_000003.jpg"), "data_annotated/2011_000003.jpg": b"",
        "data_dataset_voc/class_names.txt": b"_background_\nperson\n",
        "data_dataset_voc/JPEGImages/2011_000003.jpg": b"",
        "data_dataset_voc/SegmentationClass/2011_000003.npy": b"",
        "data_dataset_voc/SegmentationClass/2011_000003.png": b"",
        "data_dataset_voc/SegmentationClassVisualization/2011_000003.jpg": b"",
    }
    choice = select_reader(sorted(files), heads(files), None, "mem://b")
    assert (choice.reader.name, choice.files) == ("labelme", ["data_annotated/2011_000003.json"])
    assert choice.passed_over == {"voc_segmentation": ["data_dataset_voc/SegmentationClass/2011_000003.png"]}
    assert choice.companions == {"data_dataset_voc/SegmentationClassVisualization/2011_000003.jpg": (
        "labelme2voc's overlay of a class mask on its image: segpipe reads SegmentationClass; and the batch is read as "
        "labelme, not voc_segmentation")}
    assert "labelme reads files that name images the batch holds ('data_annotated/2011_000003.jpg')" in choice.reason
    assert "voc_segmentation only pairs files with images by their names" in choice.reason


def test_a_coco_file_beside_an_info_json_and_panoptic_pngs_is_read_as_coco():
    """The info JSON is no format's file; the panoptic PNGs fit ADE20K's folder names but no image pairs with them."""
    instances = {"images": [{"id": 1, "file_name": "000000000139.jpg", "width": 8, "height": 8}],
                 "annotations": [], "categories": [{"id": 1, "name": "person"}]}
    files = {
        "annotations/instances_val2017.json": json.dumps(instances).encode(),
        "annotations/info.json": json.dumps({"info": {"year": 2017}, "licenses": [], "categories": [{"id": 1}]}).encode(),
        "annotations/panoptic_val2017/000000000139.png": b"",
        "val2017/000000000139.jpg": b"",
    }
    choice = select_reader(sorted(files), heads(files), None, "mem://b")
    assert (choice.reader.name, choice.files) == ("coco_instances", ["annotations/instances_val2017.json"])
    assert choice.passed_over == {"ade20k": ["annotations/panoptic_val2017/000000000139.png"]}
    assert "'val2017/000000000139.jpg'" in choice.reason
    without_images = {name: data for name, data in files.items() if not name.startswith("val2017/")}
    choice = select_reader(sorted(without_images), heads(without_images), None, "mem://b")
    assert choice.reader.name == "coco_instances"
    assert "ade20k only matches file names, and no image of the batch pairs with them" in choice.reason


def test_masks_that_pair_with_images_beat_a_json_that_names_none_of_them():
    coco = json.dumps({"images": [{"id": 1, "file_name": "elsewhere.jpg", "width": 8, "height": 8}],
                       "annotations": [], "categories": []}).encode()
    files = {"instances.json": coco, "VOC2012/SegmentationClass/a.png": b"", "VOC2012/JPEGImages/a.jpg": b""}
    choice = select_reader(sorted(files), heads(files), None, "mem://b")
    assert (choice.reader.name, choice.passed_over) == ("voc_segmentation", {"coco_instances": ["instances.json"]})
