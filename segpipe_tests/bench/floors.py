"""The large per-image items of a cold build against their floors, on Cityscapes-scale scenes.

Run with `python -m segpipe_tests.bench.floors [--scenes 100]`. One batch of the whole_graph
bench's scenes (2048x1024, ~100 polygons, a stand-in photo each) is built cold in process, as
`segpipe build --workers 1` builds it; then, over its files and its store, each item is timed as
segpipe does it and as its floor (the least that work can cost with the same libraries), in CPU
seconds of this process over all scenes, the two interleaved scene by scene over --rounds rounds
(the machine is shared: CPU time, not wall, and the median round):
- ingest_image: inspect_image (decode whole, EXIF, difference hash), SHA-256, stored_image; floor:
  Pillow's decode of the same bytes and hashlib's SHA-256 alone;
- ingest_json: the Cityscapes file through load_json (bounds scanned, then parsed); floor: orjson.loads;
- yolo_label: the mask decoded, class_exteriors traced, yolo_label_text formatted; floor: the mask
  decoded and OpenCV's findContours (external, simple chain) per class present, unformatted;
- coco_shapes: shape_annotations of the mask's drawn shapes (no floor: the figure alone);
- zip_images_masks: image (metadata stripped) and mask packaged by ZipPackager (stored, SHA-256);
  floor: zipfile's writestr of the same bytes, stored;
- zip_label_text: the YOLO label packaged by ZipPackager (deflated at DEFLATE_LEVEL, SHA-256); floor:
  zlib-ng's deflate at level 1 alone.
Results: $SEGPIPE_HOME/bench/floors.json.
"""

import argparse
import hashlib
import io
import os
import statistics
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import orjson

from segpipe_tests.bench.rasterize import ensure_data, json_files
from segpipe_tests.bench.whole_graph import BATCH_SCENES, bench_pipeline, land_batch


def cpu_seconds(work: Callable[[], object]) -> float:
    start = time.process_time()
    work()
    return time.process_time() - start


def measure(items: dict[str, tuple[Callable[[int], object], Callable[[int], object] | None]], scenes: int,
            rounds: int) -> dict:
    """CPU seconds per scene of each item and its floor, interleaved scene by scene; median round."""
    totals: dict[str, list[list[float]]] = {name: [] for name in items}
    for _ in range(rounds):
        spent = {name: [0.0, 0.0] for name in items}
        for n in range(scenes):
            for name, (ours, floor) in items.items():
                spent[name][0] += cpu_seconds(lambda: ours(n))
                if floor is not None:
                    spent[name][1] += cpu_seconds(lambda: floor(n))
        for name, (ours, floor) in spent.items():
            totals[name].append([ours, floor])
    result = {}
    for name, per_round in totals.items():
        ours = statistics.median(r[0] for r in per_round) / scenes * 1000
        floor = statistics.median(r[1] for r in per_round) / scenes * 1000
        result[name] = {"ms_per_image": ours, "floor_ms_per_image": floor or None,
                        "over_floor": ours / floor if floor else None}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=BATCH_SCENES)
    parser.add_argument("--rounds", type=int, default=3)
    home = Path(os.environ.get("SEGPIPE_HOME", Path.cwd() / ".segpipe"))
    parser.add_argument("--cache", type=Path, default=home / "bench" / "cache")
    parser.add_argument("--out", type=Path, default=home / "bench" / "floors.json")
    parser.add_argument("--data", type=Path, default=None, help="scenes generated already (whole_graph's cache)")
    args = parser.parse_args()
    data = args.data or ensure_data(args.cache, args.scenes, 2048, 1024, 0, images=True)
    with tempfile.TemporaryDirectory(prefix="segpipe-floors-") as tmp:
        result = run(Path(tmp), data, args.scenes, args.rounds)
    for name, figures in result.items():
        floor = figures["floor_ms_per_image"]
        print(f"{name:18s} {figures['ms_per_image']:7.2f} ms/image"
              + ("" if floor is None else f"   floor {floor:6.2f}   x{figures['over_floor']:.2f}"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps({"scenes": args.scenes, "rounds": args.rounds, "load_average": os.getloadavg(),
                                       "items": result}, option=orjson.OPT_INDENT_2))
    print(f"wrote {args.out}")


def run(work: Path, data: Path, scenes: int, rounds: int) -> dict:
    import cv2
    import dagster as dg
    import numpy as np
    import polars as pl
    import zlib_ng.zlib_ng as zlib_ng
    from PIL import Image

    from segpipe.cli.local_build import run_local_build
    from segpipe.core.ingest.formats.strict_json import load_json
    from segpipe.core.ingest.images import annotation_frame, inspect_image, stored_image
    from segpipe.core.rasterize.raster import decode_mask_png
    from segpipe.core.release.coco_annotations import SHAPE_COLUMNS, shape_annotations
    from segpipe.core.release.image_metadata import strip_metadata
    from segpipe.core.release.packaging import ZipPackager
    from segpipe.core.release.writers import Member
    from segpipe.core.release.yolo_labels import class_exteriors, yolo_label_text
    from segpipe.core.taxonomy.model import load_taxonomy
    from segpipe.definitions import defs as load_defs
    from segpipe.environment import PACKAGE_CONFIG, current_environment

    files = json_files(data)[:scenes]
    landing, taxonomy_path, pipeline = work / "landing", work / "taxonomy.yaml", work / "pipeline.yaml"
    land_batch(landing, "floors", data, files)
    taxonomy_path.write_text((PACKAGE_CONFIG / "presets" / "cityscapes.yaml").read_text())
    pipeline.write_text(bench_pipeline())
    os.environ.update({"SEGPIPE_HOME": str(work), "SEGPIPE_LANDING_ROOT": str(landing),
                       "SEGPIPE_STORAGE_ROOT": str(work / "store"), "SEGPIPE_TAXONOMY": str(taxonomy_path),
                       "SEGPIPE_PIPELINE_CONFIG": str(pipeline), "SEGPIPE_PSEUDONYM_KEY_FILE": str(work / "key")})
    defs = load_defs()
    with dg.instance_for_test() as instance:
        assert run_local_build(defs, instance, current_environment()).success, "the floors' build failed"
        images = defs.load_asset_value("batch_images", instance=instance, partition_key="floors")
        masks = defs.load_asset_value("annotation_masks", instance=instance, partition_key="floors")
        shapes = defs.load_asset_value("mapped_shapes", instance=instance, partition_key="floors")
    taxonomy = load_taxonomy(taxonomy_path)
    store = work / "store"
    rows = images.join(masks.select("entry_id", "mask_key"), on="entry_id").sort("file_name").to_dicts()
    photos = [(store / row["image_key"]).read_bytes() for row in rows]
    documents = [path.read_bytes() for path in files]
    mask_pngs = [(store / row["mask_key"]).read_bytes() for row in rows]
    drawn = [shapes.filter(pl.col("entry_id") == row["entry_id"]).select(SHAPE_COLUMNS) for row in rows]
    labels = [yolo_label_text(class_exteriors(decode_mask_png(png), taxonomy.ignore_index), taxonomy, 2048, 1024)
              .encode() for png in mask_pngs]

    def ingest_image(n: int) -> None:
        decoded = inspect_image(photos[n], "bench")
        hashlib.sha256(photos[n]).hexdigest()
        stored_image(photos[n], decoded, annotation_frame(decoded, 2048, 1024, "bench"))

    def decode_and_hash(n: int) -> None:
        with Image.open(io.BytesIO(photos[n])) as image:
            image.load()
        hashlib.sha256(photos[n]).hexdigest()

    def contours(n: int) -> None:
        mask = decode_mask_png(mask_pngs[n])
        for value in np.unique(mask):
            if value != taxonomy.ignore_index:
                cv2.findContours((mask == value).view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)

    def packaged(n: int) -> None:
        with ZipPackager(io.BytesIO()) as packager:
            packager.add(Member("images/a.png", strip_metadata(photos[n]), compress=False))
            packager.add(Member("masks/a.png", mask_pngs[n], compress=False))

    def stored(n: int) -> None:
        with zipfile.ZipFile(io.BytesIO(), "w") as archive:
            archive.writestr(zipfile.ZipInfo("images/a.png"), photos[n], zipfile.ZIP_STORED)
            archive.writestr(zipfile.ZipInfo("masks/a.png"), mask_pngs[n], zipfile.ZIP_STORED)

    def deflated(n: int) -> None:
        with ZipPackager(io.BytesIO()) as packager:
            packager.add(Member("labels/a.txt", labels[n]))

    items = {
        "ingest_image": (ingest_image, decode_and_hash),
        "ingest_json": (lambda n: load_json(documents[n], "bench"), lambda n: orjson.loads(documents[n])),
        "yolo_label": (lambda n: yolo_label_text(class_exteriors(decode_mask_png(mask_pngs[n]), taxonomy.ignore_index),
                                                 taxonomy, 2048, 1024), contours),
        "coco_shapes": (lambda n: shape_annotations(drawn[n], taxonomy, 2048, 1024), None),
        "zip_images_masks": (packaged, stored),
        "zip_label_text": (deflated, lambda n: zlib_ng.compress(labels[n], 1)),
    }
    return measure(items, len(rows), rounds)


if __name__ == "__main__":
    main()
