import numpy as np
import orjson
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.release.coco_annotations import SHAPE_COLUMNS, released_shapes, shape_annotations
from segpipe.core.rasterize.raster import rasterize_shapes
from segpipe.core.release.writers.coco import _shape_annotations
from segpipe.core.shared.rle import decode_rle
from segpipe.core.taxonomy.model import parse_taxonomy
from segpipe_tests.bench.cityscapes_scenes import cityscapes_taxonomy
from segpipe_tests.bench.outlines import framed_shape_annotations, scene_masks
from segpipe_tests.core.release.release_fixture import TAXONOMY, build_drawn_release, drawn_shapes


def _painted_alone(shape_index: int) -> np.ndarray:
    shapes = drawn_shapes().filter(pl.col("shape_index") == shape_index)
    return rasterize_shapes(shapes, 320, 240, TAXONOMY.ignore_index) != TAXONOMY.ignore_index


def test_a_drawn_image_has_one_polygon_annotation_per_painted_shape_and_crowds_as_rle():
    coco = orjson.loads(build_drawn_release().archive().read("coco/coco.json"))
    drawn = [a for a in coco["annotations"] if a["image_id"] == 1]
    car = _painted_alone(2)
    rows, columns = np.nonzero(car)
    assert [{k: v for k, v in a.items() if k != "id"} for a in drawn[:3]] == [
        # the frame clips the road's last row
        {"image_id": 1, "category_id": 0, "segmentation": [[0.0, 120.0, 320.0, 120.0, 320.0, 240.0, 0.0, 240.0]],
         "area": 320 * 120, "bbox": [0, 120, 320, 120], "iscrowd": 0},
        # Pillow fills both edges of a ring: 161 x 81 and 160 x 97 pixels, column 160 shared
        {"image_id": 1, "category_id": 2, "segmentation": [[0.0, 0.0, 160.0, 0.0, 160.0, 80.0, 0.0, 80.0],
                                                           [160.0, 0.0, 320.0, 0.0, 320.0, 96.0, 160.0, 96.0]],
         "area": 161 * 81 + 160 * 97 - 81, "bbox": [0, 0, 320, 97], "iscrowd": 0},
        {"image_id": 1, "category_id": 1, "segmentation": [[40.0, 144.0, 160.0, 128.0, 148.0, 216.0, 48.0, 208.0]],
         "area": int(car.sum()), "iscrowd": 0,
         "bbox": [int(columns.min()), int(rows.min()), int(np.ptp(columns)) + 1, int(np.ptp(rows)) + 1]},
    ]
    crowd = drawn[3]
    expected = np.zeros((240, 320), bool)
    expected[144:209, 200:281] = True
    assert (crowd["category_id"], crowd["iscrowd"], crowd["area"], crowd["bbox"]) == (1, 1, 81 * 65, [200, 144, 81, 65])
    assert np.array_equal(decode_rle(crowd["segmentation"], "crowd"), expected)
    # the unpainted box, the polyline and the skipped polygon have no annotation
    assert len(drawn) == 4
    assert [c["id"] for c in coco["categories"]] == [0, 1, 2]


def test_a_fused_image_keeps_one_rle_per_class():
    coco = orjson.loads(build_drawn_release().archive().read("coco/coco.json"))
    fused = [a for a in coco["annotations"] if a["image_id"] == 2]
    assert [(a["category_id"], a["area"], a["bbox"], a["iscrowd"]) for a in fused] == [
        (0, 40 * 29 - 100, [0, 1, 40, 29], 0), (1, 100, [5, 10, 10, 10], 0)]
    assert all(isinstance(a["segmentation"], dict) for a in fused)


def test_shapes_outside_the_frame_or_of_untrainable_classes_have_no_annotation():
    shapes = drawn_shapes().filter(pl.col("shape_index") == 2).with_columns(
        rings=pl.lit([[50.0, 50.0, 60.0, 50.0, 60.0, 60.0]], pl.List(pl.List(pl.Float64))))
    assert shape_annotations(shapes, TAXONOMY, 40, 30) == []
    assert shape_annotations(drawn_shapes().filter(pl.col("shape_index") == 2).with_columns(
        class_id=pl.lit(7, pl.Int64)), TAXONOMY, 320, 240) == []


def test_released_shapes_are_those_of_the_entry_whose_mask_single_and_gold_images_release():
    consensus = pl.DataFrame({
        "image_id": ["a", "b", "c", "d", "e"], "mask_key": ["m-a1", "m-b", "fused-c", "m-d", "m-e"],
        "mask_source": ["single", "gold", "fused", "single", "single"],
        "status": ["accepted", "accepted", "accepted", "low_agreement", "accepted"]})
    annotation_masks = pl.DataFrame({"entry_id": ["a1", "a2", "b", "c1", "d", "e"],
                                     "mask_key": ["m-a1", "m-a2", "m-b", "m-c1", "m-d", "m-e"]})
    shape = drawn_shapes().filter(pl.col("shape_index") == 2).select(SHAPE_COLUMNS)
    mapped = pl.concat([
        shape.with_columns(entry_id=pl.lit(entry), kind=pl.lit(kind), shape_index=pl.lit(index, pl.Int64))
        for entry, kind, index in [("a1", "polygon", 1), ("a1", "box", 0), ("a2", "polygon", 0), ("b", "polygon", 0),
                                   ("c1", "polygon", 0), ("d", "polygon", 0), ("e", "polygon", 0), ("e", "mask", 1)]])
    found = released_shapes(consensus, annotation_masks, mapped)
    # a2 is not the released entry, c is fused, d not accepted; e's mask shape is kept beside its polygon
    assert found.select("mask_key", "entry_id", "shape_index", "kind").rows() == [
        ("m-a1", "a1", 0, "box"), ("m-a1", "a1", 1, "polygon"), ("m-b", "b", 0, "polygon"),
        ("m-e", "e", 0, "polygon"), ("m-e", "e", 1, "mask")]


def test_a_shape_that_arrived_as_pixels_keeps_its_crowd_flag_and_is_an_rle_of_its_own_pixels():
    """A COCO export's crowd RLE stays a crowd in the release; a non-crowd RLE object stays one object."""
    box_pixels = np.array([[0, 1, 1, 0], [1, 1, 1, 1]], bool)  # over the box left 6, top 3, 4 x 2
    counts = [1, 2, 1, 4]  # row-major runs over the box, first run background
    shapes = pl.DataFrame(
        [{"shape_index": i, "kind": "mask", "rings": None, "mask_box": box, "mask_counts": counts, "class_id": 1,
          "mapping": "mapped", "is_crowd": crowd, "z_order": 0}
         for i, (box, crowd) in enumerate([([6, 3, 4, 2], True), ([8, 9, 4, 2], False)])],
        schema={"shape_index": pl.Int64, "kind": pl.String, "rings": pl.List(pl.List(pl.Float64)),
                "mask_box": pl.List(pl.Int64), "mask_counts": pl.List(pl.UInt32), "class_id": pl.Int64,
                "mapping": pl.String, "is_crowd": pl.Boolean, "z_order": pl.Int64})
    crowd, clipped = shape_annotations(shapes, TAXONOMY, 10, 10)
    expected = np.zeros((10, 10), bool)
    expected[3:5, 6:10] = box_pixels
    assert (crowd["category_id"], crowd["iscrowd"], crowd["area"], crowd["bbox"]) == (1, 1, 6, [6, 3, 4, 2])
    assert np.array_equal(decode_rle(crowd["segmentation"], "crowd"), expected)
    # the second box hangs over the frame's right and bottom edges: only its pixels inside count
    expected = np.zeros((10, 10), bool)
    expected[9, 8:10] = [False, True]
    assert (clipped["iscrowd"], clipped["area"], clipped["bbox"]) == (0, 1, [9, 9, 1, 1])
    assert np.array_equal(decode_rle(clipped["segmentation"], "object"), expected)


def test_a_masks_shape_annotations_are_remembered_and_redrawn_only_when_its_shapes_change():
    objects: dict[str, bytes] = {}
    store = ArtefactStore.in_memory(objects)
    shapes = drawn_shapes()
    memo = _shape_annotations("masks/m0.png", shapes, TAXONOMY, 320, 240, store)
    assert store.recall(memo) == shape_annotations(shapes, TAXONOMY, 320, 240)
    assert [key for key in objects if key.startswith("coco-mask-shapes/")] == [memo]
    objects[memo] = b'[{"remembered": true}]'
    assert store.recall(_shape_annotations("masks/m0.png", shapes, TAXONOMY, 320, 240, store)) == [{"remembered": True}]
    objects[memo] = b'[{"partly wri'  # a damaged memo is made again
    assert store.recall(_shape_annotations("masks/m0.png", shapes, TAXONOMY, 320, 240, store)) == \
        shape_annotations(shapes, TAXONOMY, 320, 240)
    moved = shapes.with_columns(pl.col("z_order") + 1)
    assert store.recall(_shape_annotations("masks/m0.png", moved, TAXONOMY, 320, 240, store)) == \
        shape_annotations(moved, TAXONOMY, 320, 240)


BOXED = parse_taxonomy(
    "name: t\nversion: 1\nignore_index: 255\nunmapped: void\n"
    "classes: [{id: 0, name: road, color: [128, 64, 128]}, {id: 1, name: car, color: [0, 0, 142], rasterize_boxes: true},"
    " {id: 2, name: sky, color: [70, 130, 180], trainable: false}]\nmappings: {}\n", "boxed.yaml")
COORDINATE = st.one_of(st.integers(-4, 20).map(float), st.floats(-4.0, 20.0, allow_nan=False))
RING = st.lists(st.tuples(COORDINATE, COORDINATE), min_size=2, max_size=6).map(lambda points: [v for p in points for v in p])
SHAPE = st.tuples(st.sampled_from(["polygon", "box", "polyline"]), st.lists(RING, min_size=1, max_size=3),
                  st.sampled_from([0, 1, 0, 1, 2, 7, None]),
                  st.sampled_from(["mapped", "mapped", "mapped", "void", "skip"]),
                  st.booleans(), st.integers(0, 2))


@settings(max_examples=300, deadline=None)
@given(st.lists(SHAPE, min_size=1, max_size=6), st.integers(1, 16), st.integers(1, 16))
def test_small_shapes_annotate_as_the_framed_implementation_did(drawn, width, height):
    shapes = pl.DataFrame(
        [{"shape_index": index, "kind": kind, "rings": rings, "mask_box": None, "mask_counts": None, "class_id": class_id,
          "mapping": mapping, "is_crowd": is_crowd, "z_order": z_order}
         for index, (kind, rings, class_id, mapping, is_crowd, z_order) in enumerate(drawn)],
        schema={"shape_index": pl.Int64, "kind": pl.String, "rings": pl.List(pl.List(pl.Float64)),
                "mask_box": pl.List(pl.Int64), "mask_counts": pl.List(pl.UInt32), "class_id": pl.Int64,
                "mapping": pl.String, "is_crowd": pl.Boolean, "z_order": pl.Int64})
    assert shape_annotations(shapes, BOXED, width, height) == framed_shape_annotations(shapes, BOXED, width, height)


def test_generated_street_scenes_annotate_as_the_framed_implementation_did(tmp_path):
    taxonomy = cityscapes_taxonomy()[0]
    for mask, shapes in scene_masks(tmp_path, 3, 13):
        height, width = mask.shape
        found = shape_annotations(shapes, taxonomy, width, height)
        assert sum(a["iscrowd"] for a in found) >= 1 and len(found) >= 50
        assert orjson.dumps(found) == orjson.dumps(framed_shape_annotations(shapes, taxonomy, width, height))
