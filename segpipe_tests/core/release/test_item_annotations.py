import dataclasses
import io

import numpy as np
import polars as pl
import pytest

from segpipe.core.rasterize.raster import rasterize_shapes
from segpipe.core.release import item_annotations
from segpipe.core.release.build import write_release
from segpipe.core.release.coco_annotations import released_shapes
from segpipe.core.release.item_annotations import remember_item_annotations, remember_mask_annotations, remember_outlines
from segpipe.core.release.packaging import ZipPackager
from segpipe.core.release.writers.coco import shapes_memo
from segpipe.core.release.writers import yolo as yolo_writer
from segpipe.core.release.writers.yolo import trace_outlines
from segpipe.core.release.yolo_labels import label_digest, yolo_label_text
from segpipe.core.shared.png import encode_mask_png
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.store import keys
from segpipe_tests.core.release.release_fixture import TAXONOMY, constructed_release, drawn_shapes


def drawn_release(workers: int):
    """The fixture's drawn release (polygons behind the train mask, a fused val mask), on `workers`."""
    fused = np.zeros((30, 40), np.uint8)
    fused[10:20, 5:15] = 1
    shapes = drawn_shapes()
    masks = {"train": rasterize_shapes(shapes, 320, 240, TAXONOMY.ignore_index), "val": fused}
    return constructed_release(masks=masks, mask_sources={"val": "fused"}, shapes=shapes, workers=workers)


@pytest.mark.parametrize("few_tasks", [1, item_annotations.FEW_TASKS], ids=["helper process", "few tasks here"])
def test_two_workers_write_the_release_one_process_writes_byte_for_byte(monkeypatch, few_tasks):
    monkeypatch.setattr(item_annotations, "FEW_TASKS", few_tasks)
    built = []
    for workers in (1, 2):
        release, items = drawn_release(workers)
        out = io.BytesIO()
        with ZipPackager(out) as packager:
            write_release(release, items, packager)
        built.append(out.getvalue())
    assert built[0] == built[1]


def test_the_annotations_not_remembered_are_computed_ahead_and_remembered_once(monkeypatch):
    monkeypatch.setattr(item_annotations, "FEW_TASKS", 1)  # a helper process even for two masks
    release, items = drawn_release(1)  # one worker: shape annotations made here, YOLO outlines left to the writer
    objects = release.store.read.__self__  # the fixture's in-memory store: a dict
    outlines = [keys.yolo_outlines_memo(mask_key, TAXONOMY.ignore_index) for mask_key in items["mask_key"]]
    assert not any(key in objects for key in outlines)
    train = items.row(by_predicate=pl.col("split") == "train", named=True)
    memo = shapes_memo(train["mask_key"], drawn_shapes(), TAXONOMY, train["width"], train["height"])
    assert memo in objects and release.coco_annotations.block(train["mask_key"]) is not None
    objects[memo] = b'[{"category_id": '  # partly written: made again
    assert remember_item_annotations(items, [drawn_shapes()], TAXONOMY, release.store, 2) == {train["mask_key"]: memo}
    assert all(key in objects for key in outlines)
    assert release.store.recall(memo) is not None
    made = dict(objects)
    assert remember_item_annotations(items, [drawn_shapes()], TAXONOMY, release.store, 2) == {train["mask_key"]: memo}
    assert objects == made  # nothing made again


def test_annotations_remembered_in_the_batch_run_are_those_the_release_recalls_and_packages_byte_for_byte(monkeypatch):
    monkeypatch.setattr(item_annotations, "FEW_TASKS", 1)  # the release computes every memo, on a helper too
    fused = np.zeros((30, 40), np.uint8)
    fused[10:20, 5:15] = 1
    masks = {"train": rasterize_shapes(drawn_shapes(), 320, 240, TAXONOMY.ignore_index), "val": fused}
    mapped = drawn_shapes().drop("mask_key")  # the batch's mapped_shapes
    annotation_masks = pl.DataFrame({"entry_id": ["e-train", "e-val"], "mask_key": ["masks/m0.png", "masks/m1.png"],
                                     "width": [320, 40], "height": [240, 30]})
    consensus = pl.DataFrame({"mask_key": ["masks/m0.png", "masks/m1.png"], "status": ["accepted", "accepted"],
                              "mask_source": ["single", "fused"]})
    as_built = released_shapes(consensus, annotation_masks, mapped)  # as build_release reads a batch's shapes
    release, items = constructed_release(masks=masks, mask_sources={"val": "fused"}, shapes=as_built, workers=2)
    objects = release.store.read.__self__
    memo_prefixes = ("yolo-exteriors/", "coco-mask-shapes/")
    made_by_release = {key: data for key, data in objects.items() if key.startswith(memo_prefixes)}
    assert len(made_by_release) == 3  # both masks' outlines, the drawn train mask's shape annotations
    batch_objects = {key: data for key, data in objects.items() if key not in made_by_release}
    batch_store = ArtefactStore.in_memory(batch_objects)
    assert remember_mask_annotations(annotation_masks, mapped, TAXONOMY, batch_store) == 3
    assert {key: data for key, data in batch_objects.items() if key.startswith(memo_prefixes)} == made_by_release
    assert remember_mask_annotations(annotation_masks, mapped, TAXONOMY, batch_store) == 0

    from_batch = dataclasses.replace(release, store=batch_store)
    held = dict(batch_objects)
    remembered_by_release = remember_item_annotations(items, [as_built], TAXONOMY, release.store, 2)
    assert remember_item_annotations(items, [as_built], TAXONOMY, batch_store, 2) == remembered_by_release
    assert batch_objects == held  # the release recalls every one and computes none
    built = []
    for context in (release, from_batch):
        out = io.BytesIO()
        with ZipPackager(out) as packager:
            write_release(context, items, packager)
        built.append(out.getvalue())
    assert built[0] == built[1]


def test_outlines_traced_from_pixels_at_hand_are_those_of_the_stored_mask_and_the_batch_run_does_not_trace_again():
    mask = rasterize_shapes(drawn_shapes(), 320, 240, TAXONOMY.ignore_index)
    objects = {"masks/m0.png": encode_mask_png(mask)}
    store = ArtefactStore.in_memory(objects)
    assert remember_outlines("masks/m0.png", mask, TAXONOMY, store)
    memo = keys.yolo_outlines_memo("masks/m0.png", TAXONOMY.ignore_index)
    traced = trace_outlines(objects["masks/m0.png"], TAXONOMY.ignore_index)
    assert store.recall(memo) == traced.to_json()
    label = keys.yolo_label_memo("masks/m0.png", label_digest(TAXONOMY, 320, 240))
    assert store.recall(label) == yolo_label_text(traced, TAXONOMY, 320, 240) != ""
    assert not remember_outlines("masks/m0.png", mask, TAXONOMY, store)
    alone = ArtefactStore.in_memory({label: objects[label]})  # neither the mask nor its outlines
    assert yolo_writer._label(alone, TAXONOMY, "masks/m0.png", 320, 240) == yolo_label_text(traced, TAXONOMY, 320, 240).encode()
    annotation_masks = pl.DataFrame({"entry_id": ["e-train"], "mask_key": ["masks/m0.png"], "width": [320],
                                     "height": [240]})
    # its outlines found remembered: only the shape annotations are computed, the mask is not read back
    assert remember_mask_annotations(annotation_masks, drawn_shapes().drop("mask_key"), TAXONOMY, store) == 1
