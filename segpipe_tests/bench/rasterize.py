"""Polygons to trainId PNG masks: segpipe against json2labelImg and pycocotools, on the same files.

Run with `make bench` (or `python -m segpipe_tests.bench.rasterize [--scenes N]`). Data: 4N
Cityscapes-style scenes (segpipe_tests/bench/cityscapes_scenes.py, default N = 40, 2048x1024,
~100 polygons and ~3,600 vertices each) as `*_gtFine_polygons.json` files plus one COCO
instances file of the same polygons, generated once into $SEGPIPE_HOME/bench/cache.

Per image, JSON file on disk in -> PNG file on disk out, on one core (the timing process is pinned
to one CPU), for the first N files:
- json2labelImg: cityscapesscripts `json2labelImg(json, png, "trainIds")` (Annotation parse,
  Pillow drawing, Pillow's default PNG save);
- segpipe, structured as the pipeline runs it: ingest's side per file (the CITYSCAPES reader:
  strict JSON, validated rings; the file's rows in the batch's ShapeTableBuilder), the batch
  stage once (table validation, map_labels with the Cityscapes taxonomy
  segpipe/config/presets/cityscapes.yaml), its share charged to every file, then the rasterize
  stage per entry (rasterize_shapes, encode_mask_png, file write). Each stage is timed. The
  target applies to the rasterize stage (paint + encode + write); file-to-PNG is reported too;
- pycocotools: per annotation of the image, frPyObjects + merge + decode and `label[m > 0] =
  trainId` over the frame in file order, then Pillow's default PNG save; the COCO file is parsed
  and indexed once beforehand (not timed). About 0.7 s an image, so only every 4th image.

Method (shared/reference/performance.md): for each image every case runs once, in a freshly
shuffled order, and the whole pass is repeated --rounds times (drift hits every case alike). The
table gives the median over image x round; a ratio is the median of the per-(image, round) ratios
of the two cases measured in the same pass. The sum over the images of each round is reported
too, and "best round" is the ratio of the fastest rounds. Every output is then checked: segpipe's
masks must equal json2labelImg's pixel for pixel, and pycocotools' agreement is reported.

Scaling: segpipe over all 4N files in batches of 4 with a multiprocessing Pool of 1 process, then
of 2 (spawned and warmed up before timing, one Polars thread per process), --rounds times in alternating order; the speed-up
is paired per round. Memory: segpipe's batches in a fresh process over N and over 4N files, peak RSS
(VmHWM) and growth over the RSS before the first file; flat means the 4N run peaks no higher.

Targets (performance.md, 2-vCPU box): segpipe / json2labelImg <= 0.35, segpipe's PNG no larger
than json2labelImg's, 2 processes >= 1.6x, peak RSS flat between N and 4N. Results:
$SEGPIPE_HOME/bench/rasterize.json.
"""

import argparse
import multiprocessing
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

from segpipe_tests.bench.cityscapes_scenes import stats as scene_stats
from segpipe_tests.bench.cityscapes_scenes import write_dataset

DATA_VERSION = "v1"
CASES = ("json2labelImg", "segpipe", "pycocotools")
STAGES = ("read", "table", "batch", "raster", "encode", "write")
RASTERIZE_STAGES = ("raster", "encode", "write")
BATCH_FILES = 4  # files per batch in the scaling and memory runs
TARGETS = {"ratio": 0.35, "speedup": 1.6}
GENERATE_CHUNK = 20
MIB = 1024 * 1024


# --- data ---------------------------------------------------------------------------------------


def _generate_chunk(root: str, start: int, count: int, width: int, height: int, seed: int, images: bool) -> dict:
    dataset = write_dataset(Path(root), count, width, height, seed, images=images, first_index=start)
    return scene_stats(dataset.scenes)


def ensure_data(cache: Path, count: int, width: int, height: int, seed: int, images: bool = False) -> Path:
    """Scenes 0..count-1 under cache (generated in chunks on every core; kept between runs); with
    `images` each scene's leftImg8bit photo too, which the whole graph needs to accept an entry."""
    photos = "-images" if images else ""
    root = cache / f"cityscapes-scenes-{DATA_VERSION}-{width}x{height}-seed{seed}-n{count}{photos}"
    if (root / "complete.json").exists():
        return root
    if root.exists():
        shutil.rmtree(root)
    print(f"generating {count} scenes at {width}x{height} into {root} ...", flush=True)
    chunks = [(start, min(GENERATE_CHUNK, count - start)) for start in range(0, count, GENERATE_CHUNK)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(os.cpu_count() or 1) as pool:
        parts = pool.starmap(_generate_chunk, [(str(root / f"part{start:05d}"), start, n, width, height, seed, images)
                                               for start, n in chunks])
    # One COCO file for all the scenes: images and annotations of the parts, ids renumbered.
    images, annotations, categories = [], [], None
    for start, _ in chunks:
        doc = orjson.loads((root / f"part{start:05d}" / "coco" / "instances.json").read_bytes())
        offset = len(images)
        for image in doc["images"]:
            images.append({**image, "id": image["id"] + offset})
        for annotation in doc["annotations"]:
            annotations.append({**annotation, "id": len(annotations) + 1, "image_id": annotation["image_id"] + offset})
        categories = doc["categories"]
        for path in [p for p in (root / f"part{start:05d}" / "cityscapes").rglob("*") if p.is_file()]:
            target = root / "cityscapes" / path.relative_to(root / f"part{start:05d}" / "cityscapes")
            target.parent.mkdir(parents=True, exist_ok=True)
            path.rename(target)
        shutil.rmtree(root / f"part{start:05d}")
    (root / "coco").mkdir()
    (root / "coco" / "instances.json").write_bytes(orjson.dumps(
        {"info": {"description": "segpipe rasterize bench"}, "licenses": [], "images": images,
         "annotations": annotations, "categories": categories}))
    objects = [p["objects_median"] for p in parts]
    vertices = [p["vertices_median"] for p in parts]
    summary = {"scenes": count, "objects_median_of_chunks": statistics.median(objects),
               "vertices_median_of_chunks": statistics.median(vertices)}
    (root / "complete.json").write_bytes(orjson.dumps(summary))
    return root


def json_files(root: Path) -> list[Path]:
    return sorted((root / "cityscapes").rglob("*_gtFine_polygons.json"), key=lambda p: p.name)


# --- the three pipelines ------------------------------------------------------------------------


class OneFileSource:
    """A BatchSource of one local file, so the reader sees just that file (a folder source would
    list the whole dataset on every call)."""

    def __init__(self, path: Path) -> None:
        self.path, self.name, self.uri = path, path.name, str(path.parent)

    def names(self) -> list[str]:
        return [self.name]

    def rejected(self) -> list:
        return []

    def read(self, name: str) -> bytes:
        return self.path.read_bytes()

    def open(self, name: str):
        return open(self.path, "rb")

    def origin(self, name: str) -> str:
        return str(self.path)


class Segpipe:
    """JSON files -> mask PNG files, structured as the pipeline runs them: ingest reads each file into
    table rows, the batch's table is validated and mapped once, and the rasterize stage paints,
    encodes and writes each entry. Per-file stages are timed per file; the batch stage is timed once
    and its share (time / files) is charged to every file of the batch."""

    def __init__(self) -> None:
        import polars as pl

        from segpipe.core.ingest.formats import ReaderOptions
        from segpipe.core.ingest.formats.cityscapes import CITYSCAPES
        from segpipe.core.shared.png import encode_mask_png
        from segpipe.core.rasterize.raster import rasterize_shapes
        from segpipe.core.ingest.shape_table import ShapeTableBuilder
        from segpipe.core.taxonomy.model import map_labels
        from segpipe_tests.bench.cityscapes_scenes import cityscapes_taxonomy

        self.pl, self.reader, self.options = pl, CITYSCAPES, ReaderOptions()
        self.encode, self.rasterize, self.builder_class, self.map_labels = (
            encode_mask_png, rasterize_shapes, ShapeTableBuilder, map_labels)
        self.taxonomy, self.taxonomy_origin, self.source_key = cityscapes_taxonomy()

    def start_batch(self) -> None:
        self.builder, self.frames = self.builder_class(), {}

    def ingest(self, json_path: Path, stages: dict[str, float]) -> None:
        """The reader on one file and its rows in the batch's shapes table."""
        t0 = time.perf_counter()
        [image] = self.reader.read(OneFileSource(json_path), [json_path.name], self.options)
        if image.error is not None:
            raise image.error
        t1 = time.perf_counter()
        self.builder.add(json_path.name, image.shapes)
        self.frames[json_path.name] = (image.width, image.height)
        stages["read"], stages["table"] = (t1 - t0) * 1000, (time.perf_counter() - t1) * 1000

    def finish_batch(self) -> float:
        """Validate the batch's shapes table and map its labels, as ingest and mapped_shapes do; ms."""
        start = time.perf_counter()
        entries = self.pl.DataFrame({"entry_id": list(self.frames), "source": self.source_key})
        mapped = self.map_labels(self.builder.frame(), entries, self.taxonomy)
        self.mapped = {key[0]: group for key, group in mapped.group_by("entry_id")}
        return (time.perf_counter() - start) * 1000

    def paint(self, json_path: Path, out_path: Path, stages: dict[str, float]) -> int:
        """The rasterize stage on one entry: paint, encode, write."""
        t0 = time.perf_counter()
        width, height = self.frames[json_path.name]
        mask = self.rasterize(self.mapped[json_path.name], width, height, self.taxonomy.ignore_index)
        t1 = time.perf_counter()
        png = self.encode(mask)
        t2 = time.perf_counter()
        out_path.write_bytes(png)
        stages["raster"], stages["encode"] = (t1 - t0) * 1000, (t2 - t1) * 1000
        stages["write"] = (time.perf_counter() - t2) * 1000
        return len(png)

    def batch(self, json_paths: list[Path], out_dir: Path) -> int:
        """A whole batch, untimed per stage: for the scaling and memory runs."""
        self.start_batch()
        for path in json_paths:
            self.ingest(path, {})
        self.finish_batch()
        return sum(self.paint(path, out_dir / path.name.replace("_gtFine_polygons.json", ".png"), {})
                   for path in json_paths)


class Json2LabelImg:
    def __init__(self) -> None:
        from cityscapesscripts.preparation.json2labelImg import json2labelImg

        self.convert = json2labelImg

    def __call__(self, json_path: Path, out_path: Path) -> int:
        self.convert(str(json_path), str(out_path), "trainIds")
        return out_path.stat().st_size


class Pycocotools:
    """The COCO file parsed and indexed once; per image, annToMask-style decoding and painting."""

    def __init__(self, coco_path: Path) -> None:
        from PIL import Image

        from segpipe_tests.bench.cityscapes_scenes import pycocotools_mask

        self.image_class, self.paint = Image, pycocotools_mask
        doc = orjson.loads(coco_path.read_bytes())
        self.names = {c["id"]: c["name"] for c in doc["categories"]}
        by_id: dict[int, list] = {image["id"]: [] for image in doc["images"]}
        for annotation in doc["annotations"]:
            by_id[annotation["image_id"]].append(annotation)
        self.images = {Path(image["file_name"]).name.replace("_leftImg8bit.png", ""): (image, by_id[image["id"]])
                       for image in doc["images"]}

    def __call__(self, json_path: Path, out_path: Path) -> int:
        image, annotations = self.images[json_path.name.replace("_gtFine_polygons.json", "")]
        mask = self.paint(annotations, self.names, image["width"], image["height"])
        self.image_class.fromarray(mask).save(out_path)  # Pillow's default: what annToMask users write
        return out_path.stat().st_size


# --- child: per-image timing on one core --------------------------------------------------------


def _pin_to_one_cpu() -> int | None:
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def child_time(data: Path, n: int, rounds: int, coco_every: int, seed: int) -> dict:
    """Each round: every file through the shuffled cases (segpipe's ingest side among them), the
    batch stage once, then segpipe's rasterize stage on every file."""
    cpu = _pin_to_one_cpu()
    files = json_files(data)[:n]
    peers = {"json2labelImg": Json2LabelImg(), "pycocotools": Pycocotools(data / "coco" / "instances.json")}
    segpipe = Segpipe()
    rng = random.Random(seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="segpipe-raster-bench-") as tmp:
        out = {case: Path(tmp) / case for case in CASES}
        for folder in out.values():
            folder.mkdir()
        for case, run in peers.items():  # warm-up: imports, first-call caches
            run(files[0], out[case] / "warmup.png")
        segpipe.batch(files[:2], out["segpipe"])
        for round_number in range(rounds):
            segpipe.start_batch()
            stages: list[dict[str, float]] = [{} for _ in files]
            for index, path in enumerate(files):
                cases = [c for c in CASES if c != "pycocotools" or index % coco_every == 0]
                rng.shuffle(cases)
                stem = path.name.replace("_gtFine_polygons.json", "")
                for case in cases:
                    if case == "segpipe":
                        segpipe.ingest(path, stages[index])
                        continue
                    start = time.perf_counter()
                    size = peers[case](path, out[case] / f"{stem}.png")
                    rows.append({"case": case, "image": index, "round": round_number,
                                 "ms": (time.perf_counter() - start) * 1000, "png_bytes": size})
            batch_share = segpipe.finish_batch() / len(files)
            for index, path in enumerate(files):
                size = segpipe.paint(path, out["segpipe"] / path.name.replace("_gtFine_polygons.json", ".png"),
                                     stages[index])
                stages[index]["batch"] = batch_share
                rows.append({"case": "segpipe", "image": index, "round": round_number, "ms": sum(stages[index].values()),
                             "rasterize_ms": sum(stages[index][s] for s in RASTERIZE_STAGES), "png_bytes": size,
                             "stages": stages[index]})
        checks = _check_outputs(files, out, coco_every)
    return {"cpu": cpu, "taxonomy": segpipe.taxonomy_origin, "rows": rows, "checks": checks}


def _check_outputs(files: list[Path], out: dict[str, Path], coco_every: int) -> dict:
    """segpipe's masks against json2labelImg's (identical?) and pycocotools' (agreement)."""
    from segpipe.core.rasterize.raster import decode_mask_png

    identical, differing_pixels, agreement = 0, [], []
    for index, path in enumerate(files):
        stem = path.name.replace("_gtFine_polygons.json", "")
        ours = decode_mask_png((out["segpipe"] / f"{stem}.png").read_bytes())
        reference = decode_mask_png((out["json2labelImg"] / f"{stem}.png").read_bytes())
        same = bool(np.array_equal(ours, reference))
        identical += same
        if not same:
            differing_pixels.append({"image": stem, "pixels": int((ours != reference).sum())})
        if index % coco_every == 0:
            coco = decode_mask_png((out["pycocotools"] / f"{stem}.png").read_bytes())
            agreement.append(float((ours == coco).mean()))
    return {"images": len(files), "identical_to_json2labelImg": identical, "differing": differing_pixels,
            "pycocotools_agreement_mean": statistics.fmean(agreement), "pycocotools_agreement_min": min(agreement),
            "pycocotools_images": len(agreement)}


# --- child: peak memory of segpipe's loop -------------------------------------------------------


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def child_rss(data: Path, n: int) -> dict:
    files = json_files(data)[:n]
    segpipe = Segpipe()
    with tempfile.TemporaryDirectory(prefix="segpipe-raster-rss-") as tmp:
        start_rss = _status_mib("VmRSS")
        start = time.perf_counter()
        for start_index in range(0, len(files), BATCH_FILES):
            segpipe.batch(files[start_index:start_index + BATCH_FILES], Path(tmp))
        wall = time.perf_counter() - start
    return {"images": len(files), "wall_s": wall, "start_rss_mib": start_rss, "peak_rss_mib": _status_mib("VmHWM")}


def run_child(kind: str, data: Path, n: int, args: argparse.Namespace) -> dict:
    command = [sys.executable, "-m", "segpipe_tests.bench.rasterize", "--child", kind, "--data", str(data),
               "--child-n", str(n), "--rounds", str(args.rounds), "--coco-every", str(args.coco_every),
               "--seed", str(args.seed)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return orjson.loads(done.stdout.strip().splitlines()[-1])


# --- scaling: 1 process against 2 ---------------------------------------------------------------

_WORKER: Segpipe | None = None
_WORKER_OUT: Path | None = None


def _worker_init(out: str) -> None:
    global _WORKER, _WORKER_OUT
    os.environ["POLARS_MAX_THREADS"] = "1"  # one process per core, as Dagster's multiprocess executor runs steps
    _WORKER, _WORKER_OUT = Segpipe(), Path(out)


def _worker_run(paths: list[str]) -> int:
    return _WORKER.batch([Path(p) for p in paths], _WORKER_OUT)


def scaling(files: list[Path], rounds: int) -> dict:
    context = multiprocessing.get_context("spawn")
    batches = [[str(p) for p in files[i:i + BATCH_FILES]] for i in range(0, len(files), BATCH_FILES)]
    walls: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="segpipe-raster-scale-") as tmp:
        pools = {k: context.Pool(k, initializer=_worker_init, initargs=(tmp,)) for k in (1, 2)}
        try:
            for pool in pools.values():  # warm up every worker before timing
                pool.map(_worker_run, batches[:2], chunksize=1)
            for round_number in range(rounds):
                for k in ((1, 2) if round_number % 2 == 0 else (2, 1)):
                    start = time.perf_counter()
                    pools[k].map(_worker_run, batches, chunksize=1)
                    walls[k].append(time.perf_counter() - start)
        finally:
            for pool in pools.values():
                pool.close()
                pool.join()
    speedups = [one / two for one, two in zip(walls[1], walls[2], strict=True)]
    return {"images": len(files), "wall_s": walls, "images_per_s": {k: len(files) / min(v) for k, v in walls.items()},
            "speedup_median_paired": statistics.median(speedups), "speedup_best": min(walls[1]) / min(walls[2])}


# --- summary ------------------------------------------------------------------------------------


def summarize(timing: dict) -> dict:
    rows = timing["rows"]
    by_case = {case: [r for r in rows if r["case"] == case] for case in CASES}
    paired = {(r["case"], r["image"], r["round"]): r["ms"] for r in rows}

    def ratios(case: str) -> list[float]:
        return [paired[case, i, k] / paired["json2labelImg", i, k]
                for (c, i, k) in paired if c == case and ("json2labelImg", i, k) in paired]

    out = {}
    for case, case_rows in by_case.items():
        ms = [r["ms"] for r in case_rows]
        per_round = {}
        for r in case_rows:
            per_round[r["round"]] = per_round.get(r["round"], 0.0) + r["ms"]
        out[case] = {
            "images": len({r["image"] for r in case_rows}), "samples": len(ms),
            "median_ms": statistics.median(ms), "images_per_s": 1000 / statistics.median(ms),
            "round_totals_ms": [per_round[k] for k in sorted(per_round)],
            "png_bytes_mean": statistics.fmean(r["png_bytes"] for r in case_rows),
            "ratio_to_json2labelImg_median": statistics.median(ratios(case)) if case != "json2labelImg" else 1.0,
        }
    stages = {s: statistics.median(r["stages"][s] for r in by_case["segpipe"]) for s in STAGES}
    out["segpipe"]["stages_median_ms"] = stages
    rasterize = {(r["image"], r["round"]): r["rasterize_ms"] for r in by_case["segpipe"]}
    out["segpipe"]["rasterize_median_ms"] = statistics.median(rasterize.values())
    out["segpipe"]["rasterize_ratio_to_json2labelImg_median"] = statistics.median(
        ms / paired["json2labelImg", i, k] for (i, k), ms in rasterize.items())
    j, s = by_case["json2labelImg"], by_case["segpipe"]
    out["segpipe"]["ratio_best_round"] = min(out["segpipe"]["round_totals_ms"]) / min(out["json2labelImg"]["round_totals_ms"])
    # PNG size on the same images (pycocotools' only on its subset).
    out["png_bytes_segpipe_over_json2labelImg"] = (
        statistics.fmean(r["png_bytes"] for r in s) / statistics.fmean(r["png_bytes"] for r in j))
    return out


def print_report(report: dict) -> None:
    data, cases, checks = report["data"], report["per_image"], report["checks"]
    print(f"\nRasterize benchmark: {data['scenes_timed']} Cityscapes-style files at {data['width']}x{data['height']}, "
          f"median {data['objects_median']:.0f} polygons / {data['vertices_median']:.0f} vertices per file, "
          f"one core (CPU {report['timing_cpu']}), {report['rounds']} rounds, shuffled per image")
    print(f"taxonomy: {report['taxonomy']}")
    header = (f"{'pipeline':16s} {'images':>6s} {'median ms':>10s} {'images/s':>9s} {'x json2labelImg':>16s} "
              f"{'PNG bytes':>10s}")
    print("\n" + header)
    print("-" * len(header))
    for case in CASES:
        c = cases[case]
        print(f"{case:16s} {c['images']:6d} {c['median_ms']:10.2f} {c['images_per_s']:9.1f} "
              f"{c['ratio_to_json2labelImg_median']:16.3f} {c['png_bytes_mean']:10,.0f}")
    stages = cases["segpipe"]["stages_median_ms"]
    print("\nsegpipe stages, median ms: " + ", ".join(f"{s} {v:.2f}" for s, v in stages.items()))
    ratio, best = cases["segpipe"]["ratio_to_json2labelImg_median"], cases["segpipe"]["ratio_best_round"]
    raster_ratio = cases["segpipe"]["rasterize_ratio_to_json2labelImg_median"]
    size = report["per_image"]["png_bytes_segpipe_over_json2labelImg"]
    scale, rss = report["scaling"], report["memory"]
    lines = [
        (f"segpipe rasterize stage (paint + encode + write, {cases['segpipe']['rasterize_median_ms']:.2f} ms) / "
         f"json2labelImg: {raster_ratio:.3f} (median of per-image ratios)", raster_ratio <= TARGETS["ratio"],
         f"<= {TARGETS['ratio']}"),
        (f"segpipe file to PNG, ingest included (strict parse, validated rings, table, mapping) / json2labelImg: "
         f"{ratio:.3f} (best rounds {best:.3f})", ratio <= 0.5, "informational: <= 0.5"),
        (f"PNG bytes segpipe / json2labelImg: {size:.3f}", size <= 1.0, "<= 1"),
        (f"pixels: {checks['identical_to_json2labelImg']}/{checks['images']} masks identical to json2labelImg; "
         f"pycocotools agreement {100 * checks['pycocotools_agreement_mean']:.2f} % "
         f"(min {100 * checks['pycocotools_agreement_min']:.2f} %, {checks['pycocotools_images']} images)",
         checks["identical_to_json2labelImg"] == checks["images"], "all identical"),
        (f"scaling over {scale['images']} files: 1 process {scale['images_per_s']['1']:.0f} images/s, "
         f"2 processes {scale['images_per_s']['2']:.0f} images/s, x{scale['speedup_median_paired']:.2f} "
         f"(median of paired rounds; best rounds x{scale['speedup_best']:.2f})",
         scale["speedup_median_paired"] >= TARGETS["speedup"], f">= {TARGETS['speedup']}"),
        (f"peak RSS of segpipe's loop: {rss['n']['peak_rss_mib']:.0f} MiB over {rss['n']['images']} files, "
         f"{rss['4n']['peak_rss_mib']:.0f} MiB over {rss['4n']['images']} "
         f"(RSS before the first file {rss['n']['start_rss_mib']:.0f} / {rss['4n']['start_rss_mib']:.0f} MiB)",
         rss["flat"], "flat (4N peak within 2 MiB of N)"),
    ]
    print()
    for text, met, target in lines:
        print(f"  [{'ok' if met else 'MISS'}] {text}   target {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=40, help="N: files timed per image (4N for scaling and memory)")
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--coco-every", type=int, default=4, help="time pycocotools on every k-th image only")
    parser.add_argument("--seed", type=int, default=0)
    home = Path(os.environ.get("SEGPIPE_HOME", Path.cwd() / ".segpipe"))
    parser.add_argument("--cache", type=Path, default=home / "bench" / "cache")
    parser.add_argument("--out", type=Path, default=home / "bench" / "rasterize.json")
    parser.add_argument("--child", choices=("time", "rss"), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = (child_time(args.data, args.child_n, args.rounds, args.coco_every, args.seed) if args.child == "time"
                  else child_rss(args.data, args.child_n))
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return

    from segpipe_tests.bench.ingest import code_version

    code = code_version()
    print(f"measuring segpipe at {code}")
    started = time.perf_counter()
    n = args.scenes
    data = ensure_data(args.cache, 4 * n, args.width, args.height, args.seed)
    generated = time.perf_counter() - started
    files = json_files(data)
    print(f"timing {n} files per image, {args.rounds} rounds ...", flush=True)
    timing = run_child("time", data, n, args)
    print("scaling, 1 against 2 processes ...", flush=True)
    scale = scaling(files, args.rounds)
    print("peak memory at N and 4N ...", flush=True)
    memory = {"n": run_child("rss", data, n, args), "4n": run_child("rss", data, 4 * n, args)}
    memory["flat"] = memory["4n"]["peak_rss_mib"] - memory["n"]["peak_rss_mib"] <= 2.0
    sample = [orjson.loads(p.read_bytes()) for p in files[:n]]
    report = {
        "code": code,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average": os.getloadavg()},
        "data": {"root": str(data), "width": args.width, "height": args.height, "scenes_timed": n, "scenes_total": len(files),
                 "objects_median": statistics.median(len(d["objects"]) for d in sample),
                 "vertices_median": statistics.median(sum(len(o["polygon"]) for o in d["objects"]) for d in sample),
                 "json_kib_median": statistics.median(p.stat().st_size for p in files[:n]) / 1024},
        "rounds": args.rounds, "coco_every": args.coco_every, "timing_cpu": timing["cpu"], "taxonomy": timing["taxonomy"],
        "per_image": summarize(timing), "checks": timing["checks"],
        "scaling": {**scale, "wall_s": {str(k): v for k, v in scale["wall_s"].items()},
                    "images_per_s": {str(k): v for k, v in scale["images_per_s"].items()}},
        "memory": memory, "targets": TARGETS,
        "generation_s": generated, "total_s": time.perf_counter() - started, "samples": timing["rows"],
    }
    if code_version() != code:
        report["code_changed_during_run"] = code_version()
        print("WARNING: segpipe/ changed while the benchmark ran; the figures mix two versions of the code")
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    print(f"\nwrote {args.out} (total {report['total_s']:.0f} s, data generation {generated:.0f} s)")


if __name__ == "__main__":
    main()
