import io

import numpy as np
import polars as pl
import pytest

from segpipe.core.rasterize.raster import rasterize_shapes
from segpipe.core.release import item_annotations
from segpipe.core.release.build import write_release
from segpipe.core.release.item_annotations import remember_item_annotations
from segpipe.core.release.packaging import ZipPackager
from segpipe.core.release.writers.coco import shapes_memo
from segpipe.store import keys
from segpipe_tests.core.release.release_fixture import TAXONOMY, constructed_release, drawn_shapes


def drawn_release(workers: int):
    """The fixture's drawn release (polygons behind the train mask, a fused val mask), on `workers`."""
    fused = np.zeros((30, 40), np.uint8)
    fused[10:20, 5:15] = 1
    shapes = drawn_shapes()
    masks = {"train": rasterize_shapes(shapes, 320, 240, TAXONOMY.ignore_index), "val": fused}
    release, items = constructed_release(masks=masks, mask_sources={"val": "fused"}, shapes=shapes)
    release.workers = workers
    return release, items


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
    release, items = drawn_release(2)
    objects = release.store.read.__self__  # the fixture's in-memory store: a dict
    assert remember_item_annotations(items, release.shapes, TAXONOMY, release.store, 2) == 2  # two masks
    for mask_key in items["mask_key"]:
        assert keys.yolo_outlines_memo(mask_key, TAXONOMY.ignore_index) in objects
    train = items.row(by_predicate=pl.col("split") == "train", named=True)
    assert shapes_memo(train["mask_key"], release.shapes, TAXONOMY, train["width"], train["height"]) in objects
    assert remember_item_annotations(items, release.shapes, TAXONOMY, release.store, 2) == 0
    assert remember_item_annotations(items, release.shapes, TAXONOMY, release.store, 1) == 0  # one: the writers do it
