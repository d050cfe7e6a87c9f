"""COCO results: a model's predictions, thresholded by score, overlaps won by the higher score, and every
bad prediction reported naming the file and the prediction."""

import json

import numpy as np
from pycocotools import mask as coco_mask

from segpipe.core.ingest.formats import READERS, select_reader
from segpipe.core.ingest.formats.coco_results import COCO_RESULTS
from segpipe.core.ingest.formats.reader import ReaderOptions
from segpipe.core.ingest.model_settings import ModelSettings
from segpipe_tests.core.ingest.formats.memory_source import MemorySource

CATEGORIES = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]
IMAGES = [{"id": 42, "file_name": "a.jpg", "width": 8, "height": 6}, {"id": 73, "file_name": "b.jpg", "width": 8, "height": 6}]
INSTANCES = json.dumps({"images": IMAGES, "categories": CATEGORIES, "annotations": []}).encode()


def rle(box: tuple[int, int, int, int], height: int = 6, width: int = 8) -> dict:
    mask = np.zeros((height, width), dtype=np.uint8, order="F")
    left, top, right, bottom = box
    mask[top:bottom, left:right] = 1
    encoded = coco_mask.encode(mask)
    return {"size": encoded["size"], "counts": encoded["counts"].decode()}


def result(image_id: int = 42, category_id: int = 1, score: object = 0.9, **fields) -> dict:
    return {"image_id": image_id, "category_id": category_id, "score": score,
            "segmentation": fields.pop("segmentation", rle((0, 0, 4, 4))), **fields}


def read(results: list, models: ModelSettings = ModelSettings()) -> dict:
    files = {"instances.json": INSTANCES, "results.json": json.dumps(results).encode()}
    source = MemorySource(files, streamed_only=True)
    return {image.file_name: image for image in COCO_RESULTS.read(source, sorted(files), ReaderOptions(models=models))}


def test_predictions_below_the_labels_threshold_are_dropped_and_counted():
    images = read([result(score=0.9), result(score=0.3, category_id=3), result(score=0.6, category_id=3)],
                  ModelSettings(score_threshold=0.5, label_score_thresholds={"car": 0.7}))
    a = images["images/a.jpg"]
    assert [s.raw_label for s in a.shapes] == ["person"]
    assert a.attributes == {"predictions": "3", "counted": "1"}
    assert images["images/b.jpg"].shapes == [] and images["images/b.jpg"].error is None


def test_overlapping_predictions_paint_in_score_order():
    images = read([result(score=0.95, segmentation=rle((0, 0, 6, 6))), result(score=0.6, category_id=3),
                   result(score=0.8, segmentation=[[0, 0, 4, 0, 4, 4, 0, 4]], category_id=3)])
    shapes = images["images/a.jpg"].shapes
    assert [(s.raw_label, s.kind, s.z_order) for s in shapes] == [("car", "mask", 0), ("car", "polygon", 1),
                                                                  ("person", "mask", 2)]


def test_an_uncompressed_rle_and_an_empty_mask():
    counts = {"size": [6, 8], "counts": [0, 6, 42]}  # column-major: the first column
    images = read([result(segmentation=counts), result(segmentation={"size": [6, 8], "counts": [48]})])
    a = images["images/a.jpg"]
    assert len(a.shapes) == 1 and a.shapes[0].mask.to_array().sum() == 6
    assert a.attributes["predictions"] == "2" and a.attributes["counted"] == "1"


def test_bad_predictions_name_the_file_and_the_prediction():
    images = read([result(image_id=99), result(category_id=7), result(image_id=73, score=1.5),
                   result(image_id=73, category_id=3, segmentation={"size": [6, 8], "counts": "@@"}), "oops"])
    missing = images["results.json#image_id=99"].error
    assert missing.rule == "image_missing" and "results.json: 1 prediction(s) (results[0]) name image id 99" in str(missing)
    unknown = images["images/a.jpg"].error
    assert unknown.rule == "unknown_category" and "results.json: results[1] (image 'images/a.jpg')" in str(unknown)
    b = images["images/b.jpg"].error
    assert b.rule == "invalid_score" and "results[2]" in str(b) and "score 1.5" in str(b)
    assert "results[3]" in str(b) and "malformed_mask" in str(b)
    assert images["results.json#results[4]"].error.rule == "malformed_annotation"


def test_results_need_one_instances_file_beside_them():
    source = MemorySource({"results.json": json.dumps([result()]).encode()}, streamed_only=True)
    try:
        list(COCO_RESULTS.read(source, ["results.json"], ReaderOptions()))
    except Exception as exc:  # noqa: BLE001 - the reader's InputError, checked by rule
        assert exc.rule == "annotations_missing" and "exactly one COCO instances file" in str(exc)
    else:
        raise AssertionError("results without an instances file were read")


def test_detected_beside_its_instances_file_only_when_declared():
    files = {"instances.json": INSTANCES, "results.json": json.dumps([result()]).encode()}
    assert READERS["coco_results"].annotation_files(sorted(files), lambda n: files[n]) == ["instances.json", "results.json"]
    choice = select_reader(sorted(files), lambda n: files[n], "coco_results", "batch")
    assert choice.files == ["instances.json", "results.json"]
