"""A small release built from constructed inputs, for tests that open the ZIP."""

import io
import zipfile
from dataclasses import dataclass

import numpy as np
import polars as pl
from PIL import Image, PngImagePlugin

from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.shared.png import encode_instance_png, encode_mask_png
from segpipe.core.rasterize.raster import rasterize_shapes
from segpipe.core.release.build import write_release
from segpipe.core.release.coco_fragments import frame_shape_batch, shelve_class_annotations, shelve_shape_annotations
from segpipe.core.release.packaging import ZipPackager
from segpipe.core.release.provenance import BatchProvenance
from segpipe.core.release.writers import BuildStamp, ReleaseContext
from segpipe.core.taxonomy.model import Taxonomy, parse_taxonomy

TAXONOMY = parse_taxonomy(
    "name: t\nversion: 1\nignore_index: 255\nunmapped: void\n"
    "classes: [{id: 0, name: road, color: [128, 64, 128]}, {id: 1, name: car, color: [0, 0, 142]},"
    " {id: 2, name: sky, color: [70, 130, 180]}]\nmappings: {}\n", "test.yaml")
AUTHOR = PngImagePlugin.PngInfo()  # the stored images say who took them, as a photo's metadata can
AUTHOR.add_text("Author", "Alice Example")
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
    contents: ReleaseContext
    masks: dict[str, np.ndarray]  # by split

    def archive(self) -> zipfile.ZipFile:
        return zipfile.ZipFile(io.BytesIO(self.data))


def constructed_release(run_id: str = "run-1", created_at: str = "2026-12-01T22:00:00Z",
                        taxonomy: Taxonomy = TAXONOMY, masks: dict[str, np.ndarray] | None = None,
                        mask_sources: dict[str, str] | None = None, shapes: pl.DataFrame | None = None,
                        every_output: bool = False, provenance: dict[str, BatchProvenance] | None = None,
                        exports: tuple[str, ...] = (), cityscapes_city: str = "batch", workers: int = 1,
                        ) -> tuple[ReleaseContext, pl.DataFrame]:
    """A fresh release context (a build fills it, so one per build) and its items: one image per split
    of `masks` (constructed_masks by default); shapes, keyed by mask_key (masks/m<n>.png for the n-th
    split), are the polygons behind them. every_output adds what the default leaves out: an instance
    mask for the first image and a thumbnail for the QA failure. The images come from two batches,
    batch-0 (train and test) and batch-1 (val), whose batch.json `provenance` states. The stored images
    carry an Author text chunk. `exports` and `cityscapes_city` are release.exports and its city rule;
    the per-image annotations are made ahead on `workers` processes (release.workers), as a build does."""
    objects: dict[str, bytes] = {}
    store = ArtefactStore.in_memory(objects)
    masks = constructed_masks() if masks is None else masks
    rows = []
    for n, (split, mask) in enumerate(masks.items()):
        image = io.BytesIO()
        Image.fromarray(np.full((*mask.shape, 3), 40 * n, np.uint8)).save(image, format="PNG", pnginfo=AUTHOR)
        image_id = f"{n:064d}"
        objects[f"images/{image_id}.png"] = image.getvalue()
        objects[f"masks/m{n}.png"] = encode_mask_png(mask)
        instance_key = None
        if every_output and n == 0:
            instance_key = f"instance-masks/m{n}.png"
            objects[instance_key] = encode_instance_png(mask.astype(np.uint16))
        rows.append({
            "image_id": image_id, "split": split, "mask_key": f"masks/m{n}.png", "instance_mask_key": instance_key,
            "mask_source": (mask_sources or {}).get(split, "single"), "agreement": None,
            "class_pixels": np.bincount(mask.ravel(), minlength=256).tolist(),
            "source_uri": f"file:///b{n}/{split}.png", "image_key": f"images/{image_id}.png",
            "file_name": f"images/{split}.png", "width": mask.shape[1], "height": mask.shape[0], "source_batches": f"batch-{n % 2}",
            "annotators": "annotator-x", "camera": None, "city": "a", "time_of_day": "day", "weather": None,
            "sequence_id": f"s{n}", "qa_warnings": "labels_mapped" if split == "val" else None,
        })
    items = pl.DataFrame(rows, schema_overrides={"agreement": pl.Float64, "instance_mask_key": pl.String,
                                                 "camera": pl.String, "weather": pl.String,
                                                 "class_pixels": pl.List(pl.Int64)})
    thumbnail_key = None
    if every_output:
        thumbnail_key = "qa-thumbnails/labels_mapped/e1.png"
        objects[thumbnail_key] = encode_mask_png(np.zeros((2, 2), np.uint8))
    qa = pl.DataFrame([{"entry_id": "e1", "batch_id": "batch-1", "file_name": "images/val.png",
                        "check_id": "labels_mapped", "severity": "WARN", "passed": False, "excludes_entry": False,
                        "reason": "label 'lorry' is not mapped", "thumbnail_key": thumbnail_key}], schema=QA_COLUMNS)
    drawn = [] if shapes is None else [frame_shape_batch(items, shapes, taxonomy)]
    coco_annotations = shelve_shape_annotations(items, drawn, taxonomy, store, workers)
    shelve_class_annotations(items, coco_annotations, taxonomy, store)
    release = ReleaseContext(store, taxonomy, "demo", "grayscale", BuildStamp(run_id, created_at),
                             {"input": 3, "released": 3, "filtered": 0, "quarantined": 0}, qa,
                             {"sampling/distribution.png": b"not really a png"}, coco_annotations, provenance or {},
                             exports, cityscapes_city, workers)
    return release, items


def build_release(run_id: str = "run-1", created_at: str = "2026-12-01T22:00:00Z",
                  taxonomy: Taxonomy = TAXONOMY, masks: dict[str, np.ndarray] | None = None,
                  mask_sources: dict[str, str] | None = None, shapes: pl.DataFrame | None = None,
                  every_output: bool = False, provenance: dict[str, BatchProvenance] | None = None,
                  exports: tuple[str, ...] = (), cityscapes_city: str = "batch") -> BuiltRelease:
    """The ZIP of constructed_release."""
    masks = constructed_masks() if masks is None else masks
    release, items = constructed_release(run_id, created_at, taxonomy, masks, mask_sources, shapes, every_output,
                                         provenance, exports, cityscapes_city)
    out = io.BytesIO()
    with ZipPackager(out) as packager:
        write_release(release, items, packager)
    return BuiltRelease(out.getvalue(), release, masks)


DRAWN_SCALE = 8  # the drawn image is 40x30 units of 8 pixels: large enough that outlines are a small share


def drawn_shapes() -> pl.DataFrame:
    """The mapped shapes of a 320x240 train image (mask key masks/m0.png): road below, a two-ring sky
    above, a car polygon and a crowd of cars over the road, then what the raster rule does not
    paint: a box of a class without rasterize_boxes, a polyline, a skipped shape."""
    rows = [
        (0, "polygon", [[0.0, 15.0, 40.0, 15.0, 40.0, 30.0, 0.0, 30.0]], 0, "mapped", False, 0),
        (1, "polygon", [[0.0, 0.0, 20.0, 0.0, 20.0, 10.0, 0.0, 10.0], [20.0, 0.0, 40.0, 0.0, 40.0, 12.0, 20.0, 12.0]],
         2, "mapped", False, 0),
        (2, "polygon", [[5.0, 18.0, 20.0, 16.0, 18.5, 27.0, 6.0, 26.0]], 1, "mapped", False, 1),
        (3, "polygon", [[25.0, 18.0, 35.0, 18.0, 35.0, 26.0, 25.0, 26.0]], 1, "mapped", True, 1),
        (4, "box", [[2.0, 2.0, 8.0, 2.0, 8.0, 8.0, 2.0, 8.0]], 1, "mapped", False, 2),
        (5, "polyline", [[0.0, 20.0, 39.0, 20.0]], 0, "mapped", False, 2),
        (6, "polygon", [[10.0, 20.0, 14.0, 20.0, 14.0, 24.0]], None, "skip", False, 2),
    ]
    columns = ["shape_index", "kind", "rings", "class_id", "mapping", "is_crowd", "z_order"]
    rows = [(index, kind, [[v * DRAWN_SCALE for v in ring] for ring in rings], *rest) for index, kind, rings, *rest in rows]
    return pl.DataFrame([dict(zip(columns, row, strict=True)) for row in rows], schema_overrides={
        "rings": pl.List(pl.List(pl.Float64)), "class_id": pl.Int64}).with_columns(
        entry_id=pl.lit("e-train"), mask_key=pl.lit("masks/m0.png"),
        mask_box=pl.lit(None, pl.List(pl.Int64)), mask_counts=pl.lit(None, pl.List(pl.UInt32)))


def build_drawn_release() -> BuiltRelease:
    """A release of the drawn 320x240 train image and a fused 40x30 val image (road with a car on it)."""
    fused = np.zeros((30, 40), np.uint8)
    fused[10:20, 5:15] = 1
    fused[0] = 255
    shapes = drawn_shapes()
    masks = {"train": rasterize_shapes(shapes, 320, 240, TAXONOMY.ignore_index), "val": fused}
    return build_release(masks=masks, mask_sources={"val": "fused"}, shapes=shapes)
