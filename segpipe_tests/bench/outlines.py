"""Release outlines per 2048x1024 mask: YOLO class outlines traced by segpipe against the shapely
union they replaced, their label text, and the COCO shape annotations of the same entry against
the implementation they replaced.

Run with `python -m segpipe_tests.bench.outlines [--scenes N] [--rounds R]`. Data: N Cityscapes-style
scenes (segpipe_tests/bench/cityscapes_scenes.py, default 6, ~100 polygons each) ingested, mapped
with the Cityscapes taxonomy and rasterized by segpipe, as the pipeline does. Per mask and round,
each case runs once in a shuffled order; the table gives the median ms over mask x round and the
median of the paired old/new ratios. Every traced result is checked against shapely's, every COCO
shape annotation against framed_shape_annotations'. Results: $SEGPIPE_HOME/bench/outlines.json.

shapely_polygons is also the reference of segpipe_tests/core/test_pixel_outlines.py: the union of a
value's row runs (unit-height boxes), simplified with tolerance 0 (drops collinear vertices) and
normalized (fixed ring direction, start vertex and order of parts). framed_shape_annotations is the
reference of the shape annotation parity tests in segpipe_tests/core/test_coco_annotations.py.
"""

import argparse
import math
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import fsspec
import numpy as np
import orjson
import polars as pl
import shapely

from segpipe.core.rasterize.raster import paint_in_order, painted_in_order
from segpipe.core.shared.rle import encode_rle
from segpipe.core.taxonomy.model import Taxonomy
from segpipe_tests.bench.cityscapes_scenes import cityscapes_taxonomy, write_dataset

Ring = list[tuple[float, float]]


def shapely_polygons(mask: np.ndarray, ignore_index: int) -> dict[int, list[tuple[Ring, list[Ring]]]]:
    """Mask value -> (exterior, holes) of each polygon of the normalized union of its pixels."""
    height, width = mask.shape
    edges = np.ones((height, width + 1), bool)
    edges[:, 1:-1] = mask[:, 1:] != mask[:, :-1]
    rows, starts_and_ends = np.nonzero(edges)
    per_row = np.split(starts_and_ends, np.flatnonzero(np.diff(rows)) + 1)
    x0 = np.concatenate([cuts[:-1] for cuts in per_row])
    x1 = np.concatenate([cuts[1:] for cuts in per_row])
    y0 = np.repeat(np.arange(height), [len(cuts) - 1 for cuts in per_row])
    values = mask[y0, x0]
    polygons = {}
    for value in np.unique(values).tolist():
        if value == ignore_index:
            continue
        chosen = values == value
        union = shapely.union_all(shapely.box(x0[chosen], y0[chosen], x1[chosen], y0[chosen] + 1))
        canonical = shapely.normalize(shapely.simplify(union, 0))
        parts = canonical.geoms if isinstance(canonical, shapely.MultiPolygon) else [canonical]
        polygons[value] = [(_ring(part.exterior), [_ring(hole) for hole in part.interiors]) for part in parts]
    return polygons


def shapely_class_outlines(mask: np.ndarray, ignore_index: int) -> dict[int, list[Ring]]:
    """What segpipe's class_outlines returned before it traced the rings itself."""
    return {value: [exterior for exterior, _ in parts] for value, parts in shapely_polygons(mask, ignore_index).items()}


def _ring(ring: shapely.LinearRing) -> Ring:
    return [(float(x), float(y)) for x, y in ring.coords[:-1]]


def framed_shape_annotations(shapes: pl.DataFrame, taxonomy: Taxonomy, width: int, height: int) -> list[dict]:
    """What segpipe's shape_annotations returned before it drew each window itself and encoded a
    crowd from its window: each window painted through paint_in_order from a one-row frame, bbox
    from np.nonzero, a crowd's RLE by encode_rle of the whole frame."""
    box_class_ids = frozenset(c.id for c in taxonomy.classes if c.rasterize_boxes)
    found = []
    for kind, rings, class_id, mapping, is_crowd in painted_in_order(shapes, box_class_ids).select(
            "kind", "rings", "class_id", "mapping", "is_crowd").iter_rows():
        if mapping != "mapped" or class_id not in taxonomy.class_ids:
            continue
        pixels, left, top = _framed_shape_pixels(kind, rings, width, height)
        if not pixels.any():
            continue
        rows, columns = np.nonzero(pixels)
        bbox = [int(left + columns.min()), int(top + rows.min()),
                int(columns.max() - columns.min() + 1), int(rows.max() - rows.min() + 1)]
        if is_crowd:
            frame = np.zeros((height, width), dtype=bool)
            frame[top:top + pixels.shape[0], left:left + pixels.shape[1]] = pixels
            segmentation: dict | list = encode_rle(frame)
        else:
            segmentation = [list(ring) for ring in rings]
        found.append({"category_id": class_id, "segmentation": segmentation, "area": int(pixels.sum()),
                      "bbox": bbox, "iscrowd": int(is_crowd)})
    return found


def _framed_shape_pixels(kind: str, rings: list[list[float]], width: int, height: int) -> tuple[np.ndarray, int, int]:
    xs = [x for ring in rings for x in ring[0::2]]
    ys = [y for ring in rings for y in ring[1::2]]
    left, top = max(0, math.floor(min(xs)) - 1), max(0, math.floor(min(ys)) - 1)
    right, bottom = min(width, math.ceil(max(xs)) + 2), min(height, math.ceil(max(ys)) + 2)
    if right <= left or bottom <= top:
        return np.zeros((0, 0), dtype=bool), 0, 0
    shifted = [[v - (left if i % 2 == 0 else top) for i, v in enumerate(ring)] for ring in rings]
    window = pl.DataFrame({"kind": [kind], "fill": [1], "rings": [shifted], "mask_box": [None], "mask_counts": [None]},
                          schema={"kind": pl.String, "fill": pl.Int64, "rings": pl.List(pl.List(pl.Float64)),
                                  "mask_box": pl.List(pl.Int64), "mask_counts": pl.List(pl.UInt32)})
    return paint_in_order(window, right - left, bottom - top, 0) == 1, left, top


def scene_masks(root: Path, count: int, seed: int) -> list[tuple[np.ndarray, pl.DataFrame]]:
    """Each generated scene's mask as segpipe rasterizes it, and its mapped shapes."""
    from segpipe.core.ingest.batch import ingest_batch
    from segpipe.core.rasterize.raster import rasterize_shapes
    from segpipe.core.ingest.sources import open_source
    from segpipe.core.taxonomy.model import map_labels

    dataset = write_dataset(root, count, 2048, 1024, seed, images=True)
    taxonomy, _, source_key = cityscapes_taxonomy()
    with open_source(fsspec.filesystem("file"), str(dataset.cityscapes_root)) as source:
        batch = ingest_batch(source, "outlines", b"outlines-bench-key-0123456789")
    mapped = map_labels(batch.shapes, batch.images.select("entry_id", pl.lit(source_key).alias("source")), taxonomy)
    scenes = []
    for row in batch.images.sort("file_name").iter_rows(named=True):
        shapes = mapped.filter(pl.col("entry_id") == row["entry_id"])
        scenes.append((rasterize_shapes(shapes, row["width"], row["height"], taxonomy.ignore_index), shapes))
    return scenes


def main() -> None:
    from segpipe.core.release.coco_annotations import shape_annotations
    from segpipe.core.release.yolo_labels import class_exteriors, class_outlines, yolo_label_text

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    taxonomy = cityscapes_taxonomy()[0]
    ignore = taxonomy.ignore_index
    with tempfile.TemporaryDirectory() as tmp:
        scenes = [(mask, shapes, class_outlines(mask, ignore)) for mask, shapes in scene_masks(Path(tmp), args.scenes, args.seed)]
    exteriors = {id(mask): class_exteriors(mask, ignore) for mask, _, _ in scenes}  # label_text formats only
    cases = {
        "shapely": lambda mask, shapes, traced: shapely_class_outlines(mask, ignore),
        "traced": lambda mask, shapes, traced: class_exteriors(mask, ignore),
        "label_text": lambda mask, shapes, traced: yolo_label_text(exteriors[id(mask)], taxonomy,
                                                                   mask.shape[1], mask.shape[0]),
        "coco_framed": lambda mask, shapes, traced: framed_shape_annotations(shapes, taxonomy, mask.shape[1], mask.shape[0]),
        "coco_shapes": lambda mask, shapes, traced: shape_annotations(shapes, taxonomy, mask.shape[1], mask.shape[0]),
    }
    times: dict[str, list[float]] = {case: [] for case in cases}
    ratios, coco_ratios = [], []
    rng = random.Random(args.seed)
    for _ in range(args.rounds):
        for scene in scenes:
            order = list(cases)
            rng.shuffle(order)
            took = {}
            for case in order:
                start = time.perf_counter()
                cases[case](*scene)
                took[case] = (time.perf_counter() - start) * 1000
                times[case].append(took[case])
            ratios.append(took["shapely"] / took["traced"])
            coco_ratios.append(took["coco_framed"] / took["coco_shapes"])
    identical = all(traced == shapely_class_outlines(mask, ignore) for mask, _, traced in scenes)
    coco_identical = all(shape_annotations(shapes, taxonomy, mask.shape[1], mask.shape[0])
                         == framed_shape_annotations(shapes, taxonomy, mask.shape[1], mask.shape[0])
                         for mask, shapes, _ in scenes)
    rings = [sum(len(rings) for rings in traced.values()) for _, _, traced in scenes]
    result = {
        "scenes": args.scenes, "rounds": args.rounds, "frame": "2048x1024", "identical_to_shapely": identical,
        "exterior_rings_median": statistics.median(rings),
        "median_ms": {case: round(statistics.median(ms), 1) for case, ms in times.items()},
        "speedup_median": round(statistics.median(ratios), 1),
        "coco_identical_to_framed": coco_identical, "coco_speedup_median": round(statistics.median(coco_ratios), 1),
    }
    for case, ms in result["median_ms"].items():
        print(f"{case:12s} {ms:8.1f} ms per mask")
    print(f"traced vs shapely: {result['speedup_median']}x faster (paired median), identical: {identical}")
    print(f"coco_shapes vs coco_framed: {result['coco_speedup_median']}x faster (paired median), identical: {coco_identical}")
    out = Path(os.environ.get("SEGPIPE_HOME", Path.cwd() / ".segpipe")) / "bench" / "outlines.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
