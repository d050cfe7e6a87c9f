"""Hostile COCO files read as ingest reads them, streamed: the exact scope of a duplicate key (one image,
not the file) and the bounds that must never refuse a large real file. The hostile batches themselves
are in the catalogue (segpipe_tests/hostile_inputs.py, tested by test_hostile_catalogue.py)."""

from segpipe.core.ingest.formats.coco import COCO_INSTANCES
from segpipe.core.ingest.formats.reader import ReaderOptions
from segpipe_tests.core.ingest.formats.memory_source import MemorySource
from segpipe_tests.hostile_inputs import GOOD_ANNOTATIONS, H, W, coco_annotation, coco_json


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
