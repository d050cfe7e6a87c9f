import io

import numpy as np
import polars as pl
from PIL import Image

from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.shared.png import encode_mask_png
from segpipe.core.qa.polygon_checks import FINDINGS_SCHEMA
from segpipe.core.qa.pictures import THUMBNAIL_WIDTH, render_qa_thumbnails
from segpipe.core.taxonomy.model import parse_taxonomy

TAXONOMY = parse_taxonomy("name: t\nversion: 1\nunmapped: void\n"
                          "classes: [{id: 0, name: road, color: [0, 0, 200]}, {id: 1, name: car, color: [200, 0, 0]}]\n"
                          "mappings: {}\n", "t.yaml")


def photo(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (0, 200, 0)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_unlabelled_pixels_are_highlighted_and_a_rerun_draws_nothing():
    mask = np.zeros((60, 960), np.uint8)
    mask[:, :480] = 1
    mask[:, 900:] = 255  # unlabelled: the unlabeled_fraction failure
    objects = {"mask": encode_mask_png(mask), "image": photo(480, 30)}  # half the size: resized to the mask's
    writes: list[str] = []

    def write(key: str, data: bytes) -> None:
        writes.append(key)
        objects[key] = data

    store = ArtefactStore(objects.__getitem__, write, objects.__contains__)
    failures = pl.DataFrame({"entry_id": ["e"], "check_id": ["unlabeled_fraction"], "reason": ["6% unlabelled"],
                             "mask_key": ["mask"], "image_key": ["image"]})
    none = pl.DataFrame(schema=FINDINGS_SCHEMA)
    shapes = pl.DataFrame(schema={"entry_id": pl.String, "shape_index": pl.Int64, "rings": pl.List(pl.List(pl.Float64))})
    [key] = render_qa_thumbnails(failures, none, shapes, TAXONOMY, store)["thumbnail_key"].to_list()
    with Image.open(io.BytesIO(objects[key])) as thumbnail:
        pixels = np.asarray(thumbnail.convert("RGB")).astype(int)
    assert pixels.shape == (30, THUMBNAIL_WIDTH, 3)  # 960 wide shrunk to 480
    assert (pixels[:, 455:] == [255, 0, 255]).all()  # the unlabelled strip
    assert abs(pixels[15, 100] - [100, 100, 0]).max() <= 3  # car red over the green photo, half and half
    assert abs(pixels[15, 300] - [0, 100, 100]).max() <= 3  # road blue over green
    assert render_qa_thumbnails(failures, none, shapes, TAXONOMY, store)["thumbnail_key"].to_list() == [key]
    assert writes == [key]


def magenta_of(check_id: str, mask: np.ndarray, taxonomy=TAXONOMY, min_fragment_px: int = 0) -> np.ndarray:
    objects = {"mask": encode_mask_png(mask), "image": photo(mask.shape[1], mask.shape[0])}
    failures = pl.DataFrame({"entry_id": ["e"], "check_id": [check_id], "reason": ["r"], "mask_key": ["mask"],
                             "image_key": ["image"]})
    shapes = pl.DataFrame(schema={"entry_id": pl.String, "shape_index": pl.Int64, "rings": pl.List(pl.List(pl.Float64))})
    [key] = render_qa_thumbnails(failures, pl.DataFrame(schema=FINDINGS_SCHEMA), shapes, taxonomy,
                                 ArtefactStore.in_memory(objects), min_fragment_px)["thumbnail_key"].to_list()
    with Image.open(io.BytesIO(objects[key])) as thumbnail:
        return (np.asarray(thumbnail.convert("RGB")) == [255, 0, 255]).all(axis=-1)


def test_fragments_are_the_highlighted_pixels():
    mask = np.zeros((60, 960), np.uint8)
    mask[:, 480:] = 1
    mask[20, 100] = 1  # a 1-pixel car in the road: drawn as the thumbnail pixel it falls in
    mask[40:44, 700:704] = 255  # ignore is never a fragment
    expected = np.zeros((30, THUMBNAIL_WIDTH), bool)
    expected[10, 50] = True
    assert (magenta_of("tiny_fragments", mask, min_fragment_px=5) == expected).all()


def test_regions_enclosed_against_a_constraint_are_the_highlighted_pixels():
    taxonomy = parse_taxonomy("name: t\nversion: 1\nunmapped: void\n"
                              "classes: [{id: 0, name: road, color: [0, 0, 200]}, {id: 1, name: car, color: [200, 0, 0]}]\n"
                              "mappings: {}\nconstraints:\n  - {classes: [car, road], enclosed: false}\n", "t.yaml")
    mask = np.zeros((60, 960), np.uint8)
    mask[10:20, 100:140] = 1  # inside the road
    mask[40:, 600:700] = 1  # reaches the bottom: not enclosed
    expected = np.zeros((30, THUMBNAIL_WIDTH), bool)
    expected[5:10, 50:70] = True
    assert (magenta_of("class_constraints", mask, taxonomy) == expected).all()
    assert not magenta_of("class_constraints", mask).any()  # without an enclosed rule nothing is highlighted
