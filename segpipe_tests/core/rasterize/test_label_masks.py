from pathlib import Path

import fsspec
import numpy as np
import polars as pl
import pytest

from segpipe.core.rasterize import label_masks as label_masks_module
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.ingest.batch import ingest_batch
from segpipe.core.rasterize.label_masks import rasterize_label_masks, render_class_masks
from segpipe.core.rasterize.raster import decode_mask_png, rasterize_shapes
from segpipe.core.ingest.sources import open_source
from segpipe.core.taxonomy.model import load_taxonomy, map_labels, parse_taxonomy
from segpipe.demo import DEMO_CONFIG

KEY = b"label-mask-test-key"


@pytest.fixture(scope="module")
def demo_batch(tiny_demo):
    with open_source(fsspec.filesystem("file"), str(Path(tiny_demo.landing_root) / "b002_vendor_b_bob")) as source:
        return ingest_batch(source, "b002_vendor_b_bob", KEY)


def render(batch, taxonomy, store):
    labels = rasterize_label_masks(batch.images, batch.shapes, ArtefactStore.in_memory(store))
    mapped = map_labels(batch.shapes, batch.images.select("entry_id", "source"), taxonomy)
    masks = render_class_masks(labels, mapped, batch.images, taxonomy, "grayscale", ArtefactStore.in_memory(store))
    return masks, mapped


def direct(batch, mapped, taxonomy, entry_id):
    row = batch.images.filter(pl.col("entry_id") == entry_id).row(0, named=True)
    box_ids = frozenset(c.id for c in taxonomy.classes if c.rasterize_boxes)
    return rasterize_shapes(mapped.filter(pl.col("entry_id") == entry_id), row["width"], row["height"],
                            taxonomy.ignore_index, box_ids)


def test_lookup_masks_equal_masks_drawn_directly(demo_batch):
    taxonomy, store = load_taxonomy(DEMO_CONFIG / "taxonomy.yaml"), {}
    masks, mapped = render(demo_batch, taxonomy, store)
    assert set(masks["rendered_by"]) == {"lookup"} and masks.height == demo_batch.images.height
    for entry_id, key, pixels in masks.select("entry_id", "mask_key", "class_pixels").iter_rows():
        drawn = direct(demo_batch, mapped, taxonomy, entry_id)
        assert np.array_equal(decode_mask_png(store[key]), drawn)
        assert pixels == np.bincount(drawn.ravel(), minlength=256).tolist()  # known without decoding


def test_a_mapping_change_remaps_without_redrawing(demo_batch):
    before = load_taxonomy(DEMO_CONFIG / "taxonomy.yaml")
    text = (DEMO_CONFIG / "taxonomy.yaml").read_text()
    after = parse_taxonomy(text.replace("    automobile: car", "    automobile: road"), "edited.yaml")
    store: dict[str, bytes] = {}
    labels = rasterize_label_masks(demo_batch.images, demo_batch.shapes, ArtefactStore.in_memory(store))
    drawn = dict(store)
    mapped_before = map_labels(demo_batch.shapes, demo_batch.images.select("entry_id", "source"), before)
    masks_before = render_class_masks(
        labels, mapped_before, demo_batch.images, before, "grayscale", ArtefactStore.in_memory(store))
    mapped_after = map_labels(demo_batch.shapes, demo_batch.images.select("entry_id", "source"), after)
    writes: list[str] = []

    def write(key: str, data: bytes) -> None:
        writes.append(key)
        store[key] = data

    store_view = ArtefactStore(store.__getitem__, write, store.__contains__)
    masks = render_class_masks(labels, mapped_after, demo_batch.images, after, "grayscale", store_view)
    assert before.taxonomy_version != after.taxonomy_version
    assert set(masks["rendered_by"]) == {"lookup"}
    assert {k: v for k, v in store.items() if k.startswith("label-masks/")} == drawn
    # Only the entries the edit touches get a new mask (in this vendor's batch: every entry has a car).
    with_automobile = set(mapped_after.filter(pl.col("raw_label") == "automobile")["entry_id"])
    keys_before = dict(masks_before.select("entry_id", "mask_key").iter_rows())
    changed = {e for e, key in masks.select("entry_id", "mask_key").iter_rows() if key != keys_before[e]}
    assert with_automobile and changed == with_automobile and len(writes) == len(changed)
    again = render_class_masks(labels, mapped_after, demo_batch.images, after, "grayscale", store_view)
    assert again.equals(masks) and len(writes) == len(changed)  # a rerun finds every mask and writes none
    # The same edit in palette encoding names different masks: the encoding is part of the name.
    palette = render_class_masks(labels, mapped_after, demo_batch.images, after, "palette", ArtefactStore.in_memory(store))
    assert set(palette["mask_key"]).isdisjoint(masks["mask_key"])
    car_ids = {c.id for c in after.classes if c.name == "car"}
    for entry_id, key in masks.select("entry_id", "mask_key").iter_rows():
        mask = decode_mask_png(store[key])
        assert np.array_equal(mask, direct(demo_batch, mapped_after, after, entry_id))
        assert not car_ids & set(np.unique(mask).tolist())  # vendor_b's only car label now means road


@pytest.mark.parametrize("edit", [
    lambda t: t.replace("    automobile: car", "    automobile: skip"),
    lambda t: t.replace("unmapped: void", "unmapped: ignore").replace("    automobile: car\n", ""),
])
def test_entries_with_shapes_that_must_not_paint_are_redrawn_exactly(demo_batch, edit):
    taxonomy = parse_taxonomy(edit((DEMO_CONFIG / "taxonomy.yaml").read_text()), "edited.yaml")
    store: dict[str, bytes] = {}
    masks, mapped = render(demo_batch, taxonomy, store)
    with_cars = set(mapped.filter(pl.col("raw_label") == "automobile")["entry_id"])
    assert with_cars and set(masks.filter(pl.col("rendered_by") == "redraw")["entry_id"]) == with_cars
    for entry_id, key in masks.select("entry_id", "mask_key").iter_rows():
        assert np.array_equal(decode_mask_png(store[key]), direct(demo_batch, mapped, taxonomy, entry_id))


def test_an_entry_with_more_labels_than_a_byte_holds_is_drawn_from_shapes(demo_batch, monkeypatch):
    monkeypatch.setattr(label_masks_module, "MAX_LABEL_KEYS", 2)
    taxonomy, store = load_taxonomy(DEMO_CONFIG / "taxonomy.yaml"), {}
    labels = rasterize_label_masks(demo_batch.images, demo_batch.shapes, ArtefactStore.in_memory(store))
    assert labels["label_mask_key"].null_count() == labels.height
    mapped = map_labels(demo_batch.shapes, demo_batch.images.select("entry_id", "source"), taxonomy)
    masks = render_class_masks(labels, mapped, demo_batch.images, taxonomy, "grayscale", ArtefactStore.in_memory(store))
    assert set(masks["rendered_by"]) == {"redraw"}


@pytest.mark.parametrize("edit", [lambda t: t, lambda t: t.replace("    automobile: car", "    automobile: skip")],
                         ids=["by lookup", "redrawn"])
def test_the_pixels_of_each_mask_made_are_handed_over_as_stored_and_none_of_a_mask_found(demo_batch, edit):
    taxonomy = parse_taxonomy(edit((DEMO_CONFIG / "taxonomy.yaml").read_text()), "edited.yaml")
    store: dict[str, bytes] = {}
    labels = rasterize_label_masks(demo_batch.images, demo_batch.shapes, ArtefactStore.in_memory(store))
    mapped = map_labels(demo_batch.shapes, demo_batch.images.select("entry_id", "source"), taxonomy)
    handed: dict[str, np.ndarray] = {}
    masks = render_class_masks(labels, mapped, demo_batch.images, taxonomy, "palette", ArtefactStore.in_memory(store),
                               drawn=lambda key, pixels: handed.setdefault(key, pixels))
    assert set(handed) == set(masks["mask_key"])
    for key, pixels in handed.items():
        assert np.array_equal(pixels, decode_mask_png(store[key]))
    again: dict[str, np.ndarray] = {}
    render_class_masks(labels, mapped, demo_batch.images, taxonomy, "palette", ArtefactStore.in_memory(store),
                       drawn=lambda key, pixels: again.setdefault(key, pixels))
    redrawn = set(masks.filter(pl.col("rendered_by") == "redraw")["mask_key"])
    assert set(again) == redrawn  # a looked-up mask found in the store is not decoded; a redrawn one is drawn anyway
