"""Model batches at ingest: any format lands as a model's predictions when batch.json says so, its entries
credited to model:<name> (readable: a model's name is not personal data); COCO results must say so."""

import io
import json
from pathlib import Path

import fsspec
import numpy as np
from PIL import Image

from segpipe.core.ingest.batch import ingest_batch
from segpipe.core.ingest.model_settings import ModelSettings
from segpipe.core.ingest.sources import open_source

KEY = b"model-batch-test-key"
MODEL = {"name": "segformer-b0", "version": "2024-05"}


def png(array: np.ndarray, mode: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, format="PNG")
    return out.getvalue()


def ingest(path: Path, models: ModelSettings = ModelSettings()):
    with open_source(fsspec.filesystem("file"), str(path)) as source:
        return ingest_batch(source, path.name, KEY, models=models)


def test_a_mask_folder_model_batch_is_credited_to_its_model(tmp_path):
    batch = tmp_path / "preds"
    (batch / "images").mkdir(parents=True)
    (batch / "masks").mkdir()
    (batch / "images" / "a.png").write_bytes(png(np.full((4, 6, 3), 120, np.uint8), "RGB"))
    mask = np.zeros((4, 6), np.uint8)
    mask[:, 3:] = 1
    (batch / "masks" / "a.png").write_bytes(png(mask, "L"))
    (batch / "class_map.json").write_text(json.dumps({"labels": ["background", "car"]}))
    (batch / "batch.json").write_text(json.dumps({"kind": "model", "model": MODEL, "format": "image_mask_folders"}))
    ingested = ingest(batch)
    assert ingested.quarantine.is_empty(), ingested.quarantine.to_dicts()
    [row] = ingested.images.to_dicts()
    assert row["annotator"] == "model:segformer-b0" and row["is_gold"] is False
    assert json.loads(row["image_attributes"]) == {"model_version": "2024-05"}
    assert sorted(ingested.shapes["raw_label"]) == ["background", "car"]


def test_coco_results_are_quarantined_unless_the_batch_is_a_models(tmp_path):
    batch = tmp_path / "unmarked"
    (batch / "images").mkdir(parents=True)
    (batch / "images" / "a.png").write_bytes(png(np.zeros((4, 6, 3), np.uint8), "RGB"))
    (batch / "instances.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": 6, "height": 4}],
        "categories": [{"id": 1, "name": "car"}], "annotations": []}))
    (batch / "results.json").write_text(json.dumps([
        {"image_id": 1, "category_id": 1, "score": 0.9, "segmentation": [[0, 0, 3, 0, 3, 3, 0, 3]]}]))
    (batch / "batch.json").write_text(json.dumps({"format": "coco_results"}))
    refused = ingest(batch)
    assert refused.images.is_empty()
    assert set(refused.quarantine["rule"]) == {"invalid_batch_manifest"}
    assert all("batch.json: the batch holds COCO results" in m for m in refused.quarantine["message"])

    (batch / "batch.json").write_text(json.dumps({"format": "coco_results", "kind": "model", "model": MODEL}))
    accepted = ingest(batch, ModelSettings(score_threshold=0.95))
    [row] = accepted.images.to_dicts()
    assert row["annotator"] == "model:segformer-b0" and row["source_format"] == "coco_results"
    assert json.loads(row["image_attributes"]) == {"counted": "0", "model_version": "2024-05", "predictions": "1"}
    assert accepted.shapes.is_empty()  # 0.9 is below the 0.95 threshold
    files = dict(accepted.files.select("path", "outcome").iter_rows())
    assert files["results.json"] == files["instances.json"] == "read"
