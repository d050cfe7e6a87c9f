"""A small release built from constructed inputs, for tests that open the ZIP."""

import io
import zipfile
from dataclasses import dataclass

import numpy as np
import polars as pl
from PIL import Image

from segpipe.core.artefact_keys import ArtefactStore
from segpipe.core.png import encode_mask_png
from segpipe.core.release import BuildStamp, ReleaseContents, write_release_archive
from segpipe.core.taxonomy import Taxonomy, parse_taxonomy

TAXONOMY = parse_taxonomy(
    "name: t\nversion: 1\nignore_index: 255\nunmapped: void\n"
    "classes: [{id: 0, name: road, color: [128, 64, 128]}, {id: 1, name: car, color: [0, 0, 142]},"
    " {id: 2, name: sky, color: [70, 130, 180]}]\nmappings: {}\n", "test.yaml")
QA_COLUMNS = {"entry_id": pl.String, "batch_id": pl.String, "file_name": pl.String, "check_id": pl.String,
              "severity": pl.String, "passed": pl.Boolean, "excludes_entry": pl.Boolean, "reason": pl.String,
              "thumbnail_key": pl.String}


def constructed_masks() -> dict[str, np.ndarray]:
    """Three 6x4 masks, one per split: road below, sky or car above, some ignored pixels."""
    train = np.zeros((4, 6), np.uint8)
    train[:2] = 2
    train[0, 0] = 255
    val = np.zeros((4, 6), np.uint8)
    val[1:3, 1:4] = 1
    test = np.full((4, 6), 255, np.uint8)
    test[3] = 0
    return {"train": train, "val": val, "test": test}


@dataclass
class BuiltRelease:
    data: bytes
    contents: ReleaseContents
    masks: dict[str, np.ndarray]  # by split

    def archive(self) -> zipfile.ZipFile:
        return zipfile.ZipFile(io.BytesIO(self.data))


def build_release(run_id: str = "run-1", created_at: str = "2026-12-01T22:00:00Z",
                  taxonomy: Taxonomy = TAXONOMY) -> BuiltRelease:
    objects: dict[str, bytes] = {}
    store = ArtefactStore.in_memory(objects)
    masks = constructed_masks()
    rows = []
    for n, (split, mask) in enumerate(masks.items()):
        image = io.BytesIO()
        Image.fromarray(np.full((4, 6, 3), 40 * n, np.uint8)).save(image, format="PNG")
        image_id = f"{n:064d}"
        objects[f"images/{image_id}.png"] = image.getvalue()
        objects[f"masks/m{n}.png"] = encode_mask_png(mask)
        rows.append({
            "image_id": image_id, "split": split, "mask_key": f"masks/m{n}.png", "instance_mask_key": None,
            "mask_source": "single", "agreement": None,
            "class_pixels": np.bincount(mask.ravel(), minlength=256).tolist(),
            "source_uri": f"file:///b{n}/{split}.png", "image_key": f"images/{image_id}.png",
            "file_name": f"images/{split}.png", "width": 6, "height": 4, "source_batches": f"batch-{n % 2}",
            "annotators": "annotator-x", "camera": None, "city": "a", "time_of_day": "day", "weather": None,
            "sequence_id": f"s{n}", "qa_warnings": "labels_mapped" if split == "val" else None,
        })
    items = pl.DataFrame(rows, schema_overrides={"agreement": pl.Float64, "instance_mask_key": pl.String,
                                                 "camera": pl.String, "weather": pl.String,
                                                 "class_pixels": pl.List(pl.Int64)})
    qa = pl.DataFrame([{"entry_id": "e1", "batch_id": "batch-1", "file_name": "images/val.png",
                        "check_id": "labels_mapped", "severity": "WARN", "passed": False, "excludes_entry": False,
                        "reason": "label 'lorry' is not mapped", "thumbnail_key": None}], schema=QA_COLUMNS)
    out = io.BytesIO()
    contents = write_release_archive(
        out, items, store, taxonomy, "demo", "grayscale", {"input": 3, "released": 3, "filtered": 0, "quarantined": 0},
        qa, BuildStamp(run_id, created_at), {"sampling/distribution.png": b"not really a png"})
    return BuiltRelease(out.getvalue(), contents, masks)
