import io

import numpy as np
import polars as pl
import pytest
from PIL import Image

from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.shared.pictures import colour_distance
from segpipe.core.shared.png import encode_mask_png
from segpipe.core.qa.polygon_checks import FINDINGS_SCHEMA
from segpipe.core.qa.pictures import (
    PANEL_GAP, PANEL_WIDTH, failure_pictures, problem_colour, qa_legend, render_qa_thumbnails,
)
from segpipe.core.taxonomy.model import load_taxonomy, parse_taxonomy
from segpipe.demo import DEMO_CONFIG
from segpipe.environment import PACKAGE_CONFIG

TAXONOMY = parse_taxonomy("name: t\nversion: 1\nunmapped: void\n"
                          "classes: [{id: 0, name: road, color: [0, 0, 200]}, {id: 1, name: car, color: [200, 0, 0]}]\n"
                          "mappings: {}\n", "t.yaml")
PROBLEM = problem_colour(TAXONOMY)
MASK_LEFT = PANEL_WIDTH + PANEL_GAP  # where the mask panel starts
TAXONOMIES = sorted([DEMO_CONFIG / "taxonomy.yaml", PACKAGE_CONFIG / "taxonomy.yaml",
                     *(PACKAGE_CONFIG / "presets").glob("*.yaml")])
NO_SHAPES = pl.DataFrame(schema={"entry_id": pl.String, "shape_index": pl.Int64, "rings": pl.List(pl.List(pl.Float64))})


def photo(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (0, 200, 0)).save(buffer, format="JPEG")
    return buffer.getvalue()


def thumbnail_pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as thumbnail:
        return np.asarray(thumbnail.convert("RGB")).astype(int)


@pytest.mark.parametrize("path", TAXONOMIES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_problem_colour_is_far_from_every_class_colour(path):
    """Cityscapes' sidewalk is magenta (244, 35, 232): a fixed magenta would read as a class there."""
    taxonomy = load_taxonomy(path)
    problem = problem_colour(taxonomy)
    nearest = min(colour_distance(problem, c.color) for c in taxonomy.classes)
    assert nearest > 25, (problem, nearest)  # CIE76: above about 20 a clearly different colour
    assert problem not in {c.color for c in taxonomy.classes}


def test_the_problem_colour_follows_the_taxonomy_and_the_legend_says_what_it_marks():
    cityscapes = load_taxonomy(PACKAGE_CONFIG / "presets" / "cityscapes.yaml")
    assert problem_colour(cityscapes) == (0, 255, 0)
    greens = parse_taxonomy("name: t\nversion: 1\nunmapped: void\nclasses: [{id: 0, name: grass, color: [0, 255, 0]}, "
                            "{id: 1, name: leaf, color: [40, 200, 40]}]\nmappings: {}\n", "t.yaml")
    other = problem_colour(greens)
    assert min(colour_distance(other, c.color) for c in greens.classes) > 60
    legend = qa_legend(greens)
    assert [(e.colour, e.name) for e in legend[:2]] == [((0, 255, 0), "grass"), ((40, 200, 40), "leaf")]
    assert legend[2].colour == other and "QA" in legend[2].name and "outline" in legend[2].marks
    assert legend[3].colour is None and "255" in legend[3].name


def test_unlabelled_pixels_are_filled_in_the_mask_outlined_in_the_photo_and_a_rerun_draws_nothing():
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
    [key] = render_qa_thumbnails(failures, none, NO_SHAPES, TAXONOMY, store)["thumbnail_key"].to_list()
    pixels = thumbnail_pixels(objects[key])
    assert pixels.shape == (30, 2 * PANEL_WIDTH + PANEL_GAP, 3)  # 960 wide shrunk to 480, twice
    assert (pixels[:, PANEL_WIDTH:MASK_LEFT] == 255).all()  # the white gap
    photo_panel, mask_panel = pixels[:, :PANEL_WIDTH], pixels[:, MASK_LEFT:]
    assert (mask_panel[:, 455:] == PROBLEM).all()  # the unlabelled strip, filled
    assert (mask_panel[15, 100] == [200, 0, 0]).all() and (mask_panel[15, 300] == [0, 0, 200]).all()  # classes as drawn
    assert (photo_panel[:, 450] == PROBLEM).all() and (photo_panel[15, 465] != PROBLEM).any()  # its outline only
    assert abs(photo_panel[15, 100] - [0, 200, 0]).max() <= 3  # the photo as it is
    assert render_qa_thumbnails(failures, none, NO_SHAPES, TAXONOMY, store)["thumbnail_key"].to_list() == [key]
    assert writes == [key]


def problem_pixels_of(check_id: str, mask: np.ndarray, taxonomy=TAXONOMY, min_fragment_px: int = 0) -> np.ndarray:
    """Where the mask panel of the rule's thumbnail shows the problem colour."""
    objects = {"mask": encode_mask_png(mask), "image": photo(mask.shape[1], mask.shape[0])}
    failures = pl.DataFrame({"entry_id": ["e"], "check_id": [check_id], "reason": ["r"], "mask_key": ["mask"],
                             "image_key": ["image"]})
    [key] = render_qa_thumbnails(failures, pl.DataFrame(schema=FINDINGS_SCHEMA), NO_SHAPES, taxonomy,
                                 ArtefactStore.in_memory(objects), min_fragment_px)["thumbnail_key"].to_list()
    return (thumbnail_pixels(objects[key])[:, MASK_LEFT:] == problem_colour(taxonomy)).all(axis=-1)


def test_fragments_are_the_highlighted_pixels():
    mask = np.zeros((60, 960), np.uint8)
    mask[:, 480:] = 1
    mask[20, 100] = 1  # a 1-pixel car in the road: drawn as the thumbnail pixel it falls in
    mask[40:44, 700:704] = 255  # ignore is never a fragment
    expected = np.zeros((30, PANEL_WIDTH), bool)
    expected[10, 50] = True
    assert (problem_pixels_of("tiny_fragments", mask, min_fragment_px=5) == expected).all()


def test_regions_enclosed_against_a_constraint_are_the_highlighted_pixels():
    taxonomy = parse_taxonomy("name: t\nversion: 1\nunmapped: void\n"
                              "classes: [{id: 0, name: road, color: [0, 0, 200]}, {id: 1, name: car, color: [200, 0, 0]}]\n"
                              "mappings: {}\nconstraints:\n  - {classes: [car, road], enclosed: false}\n", "t.yaml")
    mask = np.zeros((60, 960), np.uint8)
    mask[10:20, 100:140] = 1  # inside the road
    mask[40:, 600:700] = 1  # reaches the bottom: not enclosed
    expected = np.zeros((30, PANEL_WIDTH), bool)
    expected[5:10, 50:70] = True
    assert (problem_pixels_of("class_constraints", mask, taxonomy) == expected).all()
    assert not problem_pixels_of("class_constraints", mask).any()  # without an enclosed rule nothing is highlighted


def test_a_failing_polygon_is_outlined_in_both_panels():
    mask = np.zeros((40, 80), np.uint8)
    objects = {"mask": encode_mask_png(mask), "image": photo(80, 40)}
    failures = pl.DataFrame({"entry_id": ["e"], "check_id": ["polygon_self_intersection"], "reason": ["crossed"],
                             "mask_key": ["mask"], "image_key": ["image"]})
    findings = pl.DataFrame([{"entry_id": "e", "check_id": "polygon_self_intersection", "shape_index": 0,
                              "reason": "crossed"}], schema=FINDINGS_SCHEMA)
    shapes = pl.DataFrame({"entry_id": ["e"], "shape_index": [0], "rings": [[[10.0, 10.0, 70.0, 10.0, 70.0, 30.0]]]},
                          schema=NO_SHAPES.schema)
    [key] = render_qa_thumbnails(failures, findings, shapes, TAXONOMY, ArtefactStore.in_memory(objects))["thumbnail_key"]
    marked = (thumbnail_pixels(objects[key]) == PROBLEM).all(axis=-1)
    scale = PANEL_WIDTH / 80
    row = round(10 * scale)  # the ring's top edge, at y = 10
    assert marked[row, :PANEL_WIDTH].sum() > 40 * scale and marked[row, MASK_LEFT:].sum() > 40 * scale


def test_failure_pictures_show_each_rules_first_before_any_second():
    results = pl.DataFrame({
        "entry_id": ["a", "b", "c", "d", "e"], "batch_id": ["b1", "b1", "b2", "b1", "b1"],
        "file_name": ["x.jpg", "y.jpg", "z.jpg", "w.jpg", "v.jpg"],
        "check_id": ["rule_b", "rule_b", "rule_a", "rule_a", "rule_a"], "passed": [False, False, False, False, True],
        "thumbnail_key": ["ka", "kb", "kc", None, None]})
    assert failure_pictures(results) == [("rule_a: b2 / z.jpg", "kc"), ("rule_b: b1 / x.jpg", "ka"),
                                         ("rule_b: b1 / y.jpg", "kb")]
    assert failure_pictures(results, "rule_b") == [("rule_b: b1 / x.jpg", "ka"), ("rule_b: b1 / y.jpg", "kb")]
    assert failure_pictures(results, "rule_c") == []


def test_a_thumbnail_is_named_after_its_problem_colour_so_a_new_taxonomy_colour_draws_it_anew():
    mask = np.zeros((8, 16), np.uint8)
    objects = {"mask": encode_mask_png(mask), "image": photo(16, 8)}
    failures = pl.DataFrame({"entry_id": ["e"], "check_id": ["labels_mapped"], "reason": ["r"], "mask_key": ["mask"],
                             "image_key": ["image"]})
    green_road = parse_taxonomy("name: t\nversion: 1\nunmapped: void\nclasses: [{id: 0, name: road, color: [0, 255, 0]}, "
                                "{id: 1, name: car, color: [200, 0, 0]}]\nmappings: {}\n", "t.yaml")
    store = ArtefactStore.in_memory(objects)
    keys = {render_qa_thumbnails(failures, pl.DataFrame(schema=FINDINGS_SCHEMA), NO_SHAPES, t, store)["thumbnail_key"][0]
            for t in (TAXONOMY, green_road)}
    assert problem_colour(green_road) != PROBLEM and len(keys) == 2

