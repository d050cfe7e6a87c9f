"""The review queue's CVAT task reads back, with our own CVAT reader and with Datumaro's, as the
fused masks pixel for pixel, with the disputed pixels marked; and a review batch made of it maps
its class names back to the taxonomy's ids without rules of its own."""

import hashlib
import io
import zipfile
from pathlib import Path

import fsspec
import numpy as np
import polars as pl
from PIL import Image

from segpipe.core.consensus.review_task import ANNOTATIONS_FILE, ReviewImage, task_names, write_review_task
from segpipe.core.ingest.batch import ingest_batch
from segpipe.core.ingest.pseudonym import REVIEW_ANNOTATOR
from segpipe.core.ingest.sources import open_source
from segpipe.core.rasterize.raster import rasterize_shapes
from segpipe.core.taxonomy.model import DISPUTED_LABEL, load_taxonomy, map_labels
from segpipe.demo import DEMO_CONFIG

TAXONOMY = load_taxonomy(DEMO_CONFIG / "taxonomy.yaml")
ROAD, BUILDING, SKY, PERSON, IGNORE = 0, 2, 6, 7, 255


def queued_image(image_id_seed: int, file_name: str, width: int = 40, height: int = 24) -> ReviewImage:
    """A fused mask with four classes, a hole and unlabelled (ignore) pixels, over a PNG of its size."""
    rng = np.random.default_rng(image_id_seed)
    mask = np.full((height, width), SKY, dtype=np.uint8)
    mask[height // 2:, :] = ROAD
    mask[4:14, 5:20] = BUILDING
    mask[8:10, 9:12] = SKY  # a hole in the building
    mask[12:20, 30:34] = PERSON
    mask[0, :3] = IGNORE
    disputed = np.zeros_like(mask, dtype=bool)
    disputed[10:16, 18:36] = True
    pixels = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(pixels, format="PNG")
    data = pixels.getvalue()
    return ReviewImage(hashlib.sha256(data).hexdigest(), file_name, data, ".png", mask, disputed)


def landed_review(tmp_path: Path, archive: bytes) -> Path:
    """The task archive as a review batch: its files and a batch.json saying `"kind": "review"`."""
    batch = tmp_path / "review-1"
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        opened.extractall(batch)
    (batch / "batch.json").write_text('{"kind": "review", "format": "cvat_images_1.1"}')
    return batch


def test_the_task_reads_back_as_the_fused_masks_with_the_disputed_pixels_marked(tmp_path):
    images = [queued_image(1, "b1/frames/a.jpg"), queued_image(2, "b2/c.jpg", width=31, height=17)]
    images[1].disputed[:] = False
    images[1].disputed[3, 4] = True
    out = io.BytesIO()
    write_review_task(out, images, TAXONOMY, "review queue")
    batch = landed_review(tmp_path, out.getvalue())
    with open_source(fsspec.filesystem("file"), str(batch)) as source:
        ingested = ingest_batch(source, "review-1", b"k" * 16)

    assert ingested.quarantine.is_empty(), ingested.quarantine["message"].to_list()
    entries = ingested.images.sort("file_name")
    assert entries["file_name"].to_list() == ["images/a.png", "images/c.png"]
    assert entries["image_id"].to_list() == [image.image_id for image in images]  # found again by content
    assert set(entries["annotator"]) == {REVIEW_ANNOTATOR} and set(entries["source"]) == {"review"}
    mapped = map_labels(ingested.shapes, entries.select("entry_id", "source"), TAXONOMY)
    assert set(mapped.filter(pl.col("raw_label") == DISPUTED_LABEL)["mapping"]) == {"skip"}
    assert set(mapped.filter(pl.col("raw_label") != DISPUTED_LABEL)["mapping"]) == {"mapped"}
    for image, entry_id in zip(images, entries["entry_id"]):
        shapes = mapped.filter(pl.col("entry_id") == entry_id)
        height, width = image.mask.shape
        assert np.array_equal(rasterize_shapes(shapes, width, height, IGNORE), image.mask)
        [marked] = shapes.filter(pl.col("raw_label") == DISPUTED_LABEL).to_dicts()
        drawn = np.zeros((height, width), dtype=bool)
        left, top, box_width, box_height = marked["mask_box"]
        values = np.zeros(len(marked["mask_counts"]), dtype=bool)
        values[1::2] = True
        drawn[top:top + box_height, left:left + box_width] = np.repeat(values, marked["mask_counts"]).reshape(
            box_height, box_width)
        assert np.array_equal(drawn, image.disputed)


def test_every_taxonomy_class_and_the_disputed_label_are_the_tasks_labels():
    out = io.BytesIO()
    write_review_task(out, [queued_image(1, "a.jpg")], TAXONOMY, "review queue")
    with zipfile.ZipFile(out) as archive:
        xml = archive.read(ANNOTATIONS_FILE).decode()
        assert sorted(archive.namelist()) == [ANNOTATIONS_FILE, "images/a.png"]
    labels = [part.split("</name>")[0] for part in xml.split("<label>\n")[1:]]
    assert [label.split("<name>")[1] for label in labels] == [c.name for c in TAXONOMY.classes] + [DISPUTED_LABEL]


def test_two_queued_images_of_one_base_name_get_names_apart():
    first, second, third = queued_image(1, "b1/x.jpg"), queued_image(2, "b2/x.jpg"), queued_image(3, "b2/y.jpg")
    assert task_names([first, second, third]) == [f"{first.image_id[:12]}_x.png", f"{second.image_id[:12]}_x.png",
                                                  "y.png"]


def test_datumaro_imports_the_task_as_a_cvat_dataset_with_the_same_masks(tmp_path):
    import datumaro  # slow to import: only this test needs it
    images = [queued_image(1, "a.jpg"), queued_image(2, "c.jpg", width=31, height=17)]
    out = io.BytesIO()
    write_review_task(out, images, TAXONOMY, "review queue")
    with zipfile.ZipFile(out) as archive:
        archive.extractall(tmp_path / "task")
    dataset = datumaro.Dataset.import_from(str(tmp_path / "task"), "cvat")
    names = [label.name for label in dataset.categories()[datumaro.AnnotationType.label]]
    assert names == [c.name for c in TAXONOMY.classes] + [DISPUTED_LABEL]
    class_id = {c.name: c.id for c in TAXONOMY.classes}
    for image in images:
        [item] = [item for item in dataset if item.id == image.file_name.removesuffix(".jpg")]
        height, width = image.mask.shape
        painted = np.full((height, width), IGNORE, dtype=np.uint8)
        disputed = np.zeros((height, width), dtype=bool)
        for annotation in item.annotations:
            assert annotation.type == datumaro.AnnotationType.mask
            if names[annotation.label] == DISPUTED_LABEL:
                disputed |= annotation.image.astype(bool)
            else:
                painted[annotation.image.astype(bool)] = class_id[names[annotation.label]]
        assert np.array_equal(painted, image.mask)
        assert np.array_equal(disputed, image.disputed)
