import orjson

from segpipe.core.formats.coco import read_coco_instances
from segpipe.core.formats.cvat import read_cvat_images

CVAT = b"""<?xml version="1.0" encoding="utf-8"?>
<annotations><version>1.1</version>
<meta><task><labels><label><name>Sky</name></label><label><name>Car</name></label></labels></task></meta>
<image id="0" name="a.jpg" width="10" height="8">
  <polygon label="Car" occluded="0" points="1,1;5,1;5,5" z_order="-1"></polygon>
  <polygon label="Sky" occluded="0" points="0,0;9,0;9,3" z_order="2"></polygon>
</image>
<image id="1" name="b.jpg" width="10" height="8">
  <polygon label="Car" points="nan,1;5,1;5,5" z_order="0"></polygon>
</image>
<image id="2" name="c.jpg" width="10" height="8">
  <polygon label="Car" points="1,1;5,1" z_order="0"></polygon>
</image>
</annotations>"""


def test_cvat_reads_polygons_with_labels_and_z_order_in_document_order():
    images = {i.file_name: i for i in read_cvat_images(CVAT, "ann.xml")}
    good = images["a.jpg"]
    assert (good.width, good.height, good.error) == (10, 8, None)
    assert [(s.raw_label, s.z_order) for s in good.shapes] == [("Car", -1), ("Sky", 2)]
    assert good.shapes[0].rings == ((1.0, 1.0, 5.0, 1.0, 5.0, 5.0),)


def test_cvat_reports_bad_polygons_per_image_naming_file_and_rule():
    images = {i.file_name: i for i in read_cvat_images(CVAT, "ann.xml")}
    assert images["b.jpg"].error.rule == "non_finite_coordinates"
    assert "ann.xml" in str(images["b.jpg"].error) and "b.jpg" in str(images["b.jpg"].error)
    assert images["c.jpg"].error.rule == "degenerate_polygon"


def test_cvat_rejects_a_dtd_instead_of_expanding_entities():
    bomb = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><annotations>&x;</annotations>'
    try:
        read_cvat_images(bomb, "evil.xml")
    except ValueError as exc:
        assert getattr(exc, "rule", None) == "unparseable_annotations" and "evil.xml" in str(exc)
    else:
        raise AssertionError("a DTD must be refused")


def coco(annotations, categories=({"id": 5, "name": "car"}, {"id": 9, "name": "tree"})):
    return orjson.dumps({"images": [{"id": 1, "file_name": "sub/x.jpg", "width": 20, "height": 10}],
                         "categories": list(categories), "annotations": annotations})


def test_coco_reads_multi_part_polygons_with_non_contiguous_ids():
    [image] = read_coco_instances(coco([
        {"id": 1, "image_id": 1, "category_id": 9, "segmentation": [[0, 0, 4, 0, 4, 4], [10, 0, 14, 0, 14, 4]], "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 5, "segmentation": [[1, 1, 3, 1, 3, 3]], "iscrowd": 0},
    ]), "c.json")
    assert image.file_name == "sub/x.jpg" and image.error is None
    assert [s.raw_label for s in image.shapes] == ["tree", "car"]
    assert len(image.shapes[0].rings) == 2


def test_coco_names_unsupported_rle_and_unknown_categories():
    [rle] = read_coco_instances(coco([{"id": 1, "image_id": 1, "category_id": 5,
                                       "segmentation": {"size": [10, 20], "counts": "abc"}, "iscrowd": 1}]), "c.json")
    assert rle.error.rule == "unsupported_shape"
    [unknown] = read_coco_instances(coco([{"id": 1, "image_id": 1, "category_id": 77, "segmentation": [[0, 0, 1, 0, 1, 1]]}]), "c.json")
    assert unknown.error.rule == "unknown_category" and "77" in str(unknown.error)


def test_coco_unreadable_file_raises_an_input_error_naming_it():
    try:
        read_coco_instances(b"{not json", "broken.json")
    except ValueError as exc:
        assert exc.rule == "unparseable_annotations" and "broken.json" in str(exc)
    else:
        raise AssertionError("expected an InputError")
