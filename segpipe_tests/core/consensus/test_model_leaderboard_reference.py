"""Acceptance (issue 21): a real model output, cocoapi's segmentation results (compressed RLEs with scores,
segpipe_tests/fixtures/models/cocoapi_fakesegm), lands as a model batch and gets a leaderboard row beside the
people whose mean IoU is the one pycocotools gives for the same file.

The reference decodes with pycocotools' own maskUtils, keeps the predictions at or above the default score
threshold, paints them in score order (the higher wins an overlap) and scores them as the leaderboard
defines IoU: per image, the IoU of each class either mask uses over the pixels both label, averaged; then
averaged over the honeypots. The honeypots' gold masks are made here (the val2014 ground truth is not
within reach, see the fixture's README): per prediction, its box shrunk by a tenth, as an RLE."""

import io
import json
import shutil
from pathlib import Path

import fsspec
import numpy as np
import polars as pl
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from segpipe.core.consensus.fusion import build_consensus
from segpipe.core.consensus.settings import ConsensusSettings
from segpipe.core.ingest.batch import ingest_batch
from segpipe.core.ingest.model_settings import ModelSettings
from segpipe.core.ingest.sources import open_source
from segpipe.core.rasterize.label_masks import rasterize_label_masks, render_class_masks
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.taxonomy.model import load_taxonomy, map_labels

FIXTURE = Path(__file__).parents[2] / "fixtures" / "models" / "cocoapi_fakesegm"
PRESET = Path(__file__).parents[3] / "segpipe" / "config" / "presets" / "coco_stuff.yaml"
KEY = b"model-leaderboard-reference-key"
MODEL = {"name": "cocoapi-fakesegm", "version": "48b633e"}


def stand_in_jpeg(image_id: int, width: int, height: int) -> bytes:
    """An image of the declared size, distinct per image (COCO's photos are not within reach)."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), (image_id % 256, 90, 160)).save(out, format="JPEG")
    return out.getvalue()


def gold_annotations(results: list[dict]) -> list[dict]:
    """Per prediction, its box shrunk by a tenth on each side, as an RLE of the prediction's category."""
    annotations = []
    for index, result in enumerate(results, start=1):
        height, width = result["segmentation"]["size"]
        x, y, w, h = mask_utils.toBbox(result["segmentation"]).tolist()
        box = np.zeros((height, width), dtype=np.uint8, order="F")
        box[round(y + h / 10):round(y + h * 9 / 10), round(x + w / 10):round(x + w * 9 / 10)] = 1
        rle = mask_utils.encode(box)
        annotations.append({"id": index, "image_id": result["image_id"], "category_id": result["category_id"],
                            "iscrowd": 0, "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
    return annotations


def land(landing: Path, instances: dict, results: list[dict]) -> None:
    for batch in ("gold", "model"):
        for image in instances["images"]:
            path = landing / batch / "images" / image["file_name"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(stand_in_jpeg(image["id"], image["width"], image["height"]))
    (landing / "gold" / "instances.json").write_text(json.dumps({**instances, "annotations": gold_annotations(results)}))
    (landing / "gold" / "batch.json").write_text(json.dumps({"format": "coco_instances", "gold": True, "source": "coco"}))
    shutil.copy(FIXTURE / "instances.json", landing / "model" / "instances.json")
    shutil.copy(FIXTURE / "results.json", landing / "model" / "results.json")
    (landing / "model" / "batch.json").write_text(json.dumps(
        {"format": "coco_results", "kind": "model", "model": MODEL, "source": "coco", "licence": "BSD-2-Clause"}))


def pipeline_board(landing: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The leaderboard as the pipeline makes it: ingest, label masks, class masks, consensus."""
    taxonomy, objects = load_taxonomy(PRESET), {}
    store = ArtefactStore.in_memory(objects)
    masks, images = [], []
    for batch in ("gold", "model"):
        with open_source(fsspec.filesystem("file"), str(landing / batch)) as source:
            ingested = ingest_batch(source, batch, KEY, models=ModelSettings())
        assert ingested.quarantine.is_empty(), ingested.quarantine.to_dicts()
        labels = rasterize_label_masks(ingested.images, ingested.shapes, store)
        mapped = map_labels(ingested.shapes, ingested.images.select("entry_id", "source"), taxonomy)
        masks.append(render_class_masks(labels, mapped, ingested.images, taxonomy, "grayscale", store))
        images.append(ingested.images)
    _, board, _, _ = build_consensus(pl.concat(masks), store, ConsensusSettings(), taxonomy.ignore_index)
    return board, pl.concat(images)


def reference_mean_iou(instances: dict, results: list[dict], class_of: dict[str, int]) -> float:
    """pycocotools decodes; IoU as the leaderboard defines it (see the module docstring)."""
    names = {c["id"]: c["name"] for c in instances["categories"]}
    threshold = ModelSettings().score_threshold
    gold = gold_annotations(results)
    per_image = []
    for image in instances["images"]:
        shape = (image["height"], image["width"])
        model, truth = np.full(shape, -1), np.full(shape, -1)
        kept = [(r["score"], position, r) for position, r in enumerate(results)
                if r["image_id"] == image["id"] and r["score"] >= threshold]
        for _, _, r in sorted(kept, key=lambda k: (k[0], k[1])):
            model[mask_utils.decode(r["segmentation"]) > 0] = class_of[names[r["category_id"]]]
        for annotation in (a for a in gold if a["image_id"] == image["id"]):
            truth[mask_utils.decode(annotation["segmentation"]) > 0] = class_of[names[annotation["category_id"]]]
        both = (model >= 0) & (truth >= 0)
        classes = set(np.unique(model[both]).tolist()) | set(np.unique(truth[both]).tolist())
        ious = [((model == c) & (truth == c) & both).sum() / (((model == c) | (truth == c)) & both).sum() for c in classes]
        per_image.append(float(np.mean(ious)) if ious else 0.0)
    return float(np.mean(per_image))


def test_a_real_model_output_gets_the_leaderboard_iou_pycocotools_gives(tmp_path):
    instances = json.loads((FIXTURE / "instances.json").read_text())
    results = json.loads((FIXTURE / "results.json").read_text())
    land(tmp_path, instances, results)
    board, images = pipeline_board(tmp_path)
    model_images = images.filter(pl.col("batch_id") == "model")
    assert set(model_images["annotator"]) == {"model:cocoapi-fakesegm"}
    assert {json.loads(a)["model_version"] for a in model_images["image_attributes"]} == {"48b633e"}
    [row] = board.filter(pl.col("annotator") == "model:cocoapi-fakesegm").to_dicts()
    class_of = {c.name: c.id for c in load_taxonomy(PRESET).classes}
    expected = reference_mean_iou(instances, results, class_of)
    assert 0.0 < expected < 1.0  # the shrunk boxes neither match the masks nor miss them
    assert (row["is_model"], row["n_honeypots"]) == (True, len(instances["images"]))
    assert row["mean_iou"] == pytest.approx(expected, abs=1e-12)
