"""Release writing and publication: time and peak memory at 1,000 and 5,000 images.

Run with `make bench` (or `python -m segpipe_tests.bench.release [--sizes 1000 5000]`). For each
size, a fresh process generates that many 512x256 street-like images (JPEG) and class masks (PNG)
into a local object store; then a fresh process streams the release ZIP (images, masks, coco.json,
YOLO labels, manifest, SHA256SUMS) into the store's staging area and publishes it through the
publication protocol. Peak RSS is that process's maximum resident set (ru_maxrss); the issue's
target is memory that does not grow with the dataset. Results:
$SEGPIPE_HOME/bench/release.json.
"""

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
import polars as pl
from PIL import Image

WIDTH, HEIGHT = 512, 256


def _scene(rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    """A JPEG and its class mask: sky, buildings, road and a few cars."""
    mask = np.full((HEIGHT, WIDTH), 6, np.uint8)
    horizon = int(rng.integers(90, 140))
    mask[horizon:] = 0
    for _ in range(4):
        x = int(rng.integers(0, WIDTH - 80))
        mask[int(rng.integers(30, horizon)):horizon, x:x + int(rng.integers(40, 80))] = 2
    for _ in range(int(rng.integers(1, 4))):
        x, y = int(rng.integers(0, WIDTH - 60)), int(rng.integers(horizon, HEIGHT - 30))
        mask[y:y + 25, x:x + 55] = 8
    palette = np.array([[128, 64, 128]] + [[70, 70, 70]] * 5 + [[70, 130, 180]] + [[0, 0, 0], [0, 0, 142]] + [[0, 0, 0]] * 247,
                       np.uint8)
    pixels = palette[mask] + rng.integers(0, 20, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=80)
    return out.getvalue(), mask


def generate(size: int, workdir: Path) -> None:
    """In a process of its own: `size` images and masks into a local store, and the release items
    as a Parquet file, so the measuring process holds none of the generated data."""
    from segpipe.core.shared.png import encode_mask_png
    from segpipe.io.object_store import ObjectStore

    artefacts = ObjectStore(root=str(workdir / "store")).artefacts()
    rng = np.random.default_rng(size)
    rows = []
    for n in range(size):
        jpeg, mask = _scene(rng)
        image_id = f"{n:064x}"
        artefacts.write(f"images/{image_id}.jpg", jpeg)
        artefacts.write(f"masks/{image_id}.png", encode_mask_png(mask))
        rows.append({"image_id": image_id, "split": ("train", "val", "test")[n % 3], "mask_key": f"masks/{image_id}.png",
                     "instance_mask_key": None, "mask_source": "single", "agreement": None,
                     "class_pixels": np.bincount(mask.ravel(), minlength=256).tolist(),
                     "source_uri": f"file:///landing/{n}.jpg", "image_key": f"images/{image_id}.jpg",
                     "file_name": f"images/scene_{n:05d}.jpg", "width": WIDTH, "height": HEIGHT,
                     "source_batches": "b0", "annotators": "annotator-x", "camera": "front", "city": "lyon",
                     "time_of_day": "day", "weather": "clear", "sequence_id": f"s{n // 5}", "qa_warnings": None})
    pl.DataFrame(rows, schema_overrides={"agreement": pl.Float64, "instance_mask_key": pl.String,
                                         "qa_warnings": pl.String, "class_pixels": pl.List(pl.Int64)}
                 ).write_parquet(workdir / "items.parquet")


def measure(workdir: Path) -> dict:
    """In a fresh process: write the release straight into the store's staging area and publish it."""
    from segpipe.store.publish import open_staging, publish_release
    from segpipe.store.keys import archive_name
    from segpipe.core.release.build import write_release
    from segpipe.core.release.packaging import ZipPackager
    from segpipe.core.release.writers import BuildStamp, ReleaseContext
    from segpipe.core.release.verify import archive_problems
    from segpipe.core.taxonomy.model import load_taxonomy
    from segpipe.demo import DEMO_CONFIG
    from segpipe.io.object_store import ObjectStore

    store = ObjectStore(root=str(workdir / "store"))
    items = pl.read_parquet(workdir / "items.parquet")
    size = items.height
    loaded_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    qa = pl.DataFrame(schema={"entry_id": pl.String, "batch_id": pl.String, "file_name": pl.String, "check_id": pl.String,
                              "severity": pl.String, "passed": pl.Boolean, "excludes_entry": pl.Boolean,
                              "reason": pl.String, "thumbnail_key": pl.String})
    taxonomy = load_taxonomy(DEMO_CONFIG / "taxonomy.yaml")
    release = ReleaseContext(store.artefacts(), taxonomy, "bench", "grayscale", BuildStamp("bench", "2026-12-01T00:00:00Z"),
                             {"input": size, "released": size, "filtered": 0, "quarantined": 0}, qa)
    fs, root = store.location()
    start = time.perf_counter()
    with open_staging(fs, root, "bench") as staging:
        with staging.open("dataset.zip") as out, ZipPackager(out) as packager:
            write_release(release, items, packager)
        write_s = time.perf_counter() - start
        written_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        published = publish_release(fs, root, "bench", staging, "dataset.zip", {"counts": {"released": size}},
                                    content_digest=release.version, taxonomy_version=taxonomy.taxonomy_version,
                                    check_archive=archive_problems)
    publish_s = time.perf_counter() - start
    zip_bytes = fs.size(f"{root}/{published.prefix}/{archive_name('bench', published.version)}")
    return {"images": size, "zip_mib": zip_bytes / 2**20, "write_s": write_s, "publish_s": publish_s,
            "images_per_s": size / (write_s + publish_s), "peak_rss_after_loading_items_mib": loaded_mib,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_rss_after_write_mib": written_mib}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--generate", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(args.generate, args.workdir)
        return
    if args.measure:
        print(json.dumps(measure(args.workdir)))
        return
    results = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="segpipe-bench-release-") as tmp:
            child = [sys.executable, "-m", "segpipe_tests.bench.release", "--workdir", tmp]
            subprocess.run([*child, "--generate", str(size)], check=True)
            done = subprocess.run([*child, "--measure"], check=True, capture_output=True, text=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"\nRelease benchmark: {WIDTH}x{HEIGHT} images, the ZIP streamed into a local store's staging, then published")
    print(f"{'images':>7} {'ZIP MiB':>8} {'write s':>8} {'publish s':>10} {'images/s':>9} {'RSS items':>10} {'peak RSS MiB':>13}")
    for r in results:
        print(f"{r['images']:>7,} {r['zip_mib']:>8.0f} {r['write_s']:>8.1f} {r['publish_s']:>10.1f} {r['images_per_s']:>9.0f}"
              f" {r['peak_rss_after_loading_items_mib']:>10.0f} {r['peak_rss_mib']:>13.0f}")
    if len(results) >= 2:
        growth = results[-1]["peak_rss_mib"] - results[0]["peak_rss_mib"]
        print(f"  peak RSS grows {growth:.0f} MiB from {results[0]['images']:,} to {results[-1]['images']:,} images")
    home = Path(os.environ.get("SEGPIPE_HOME", Path.cwd() / ".segpipe"))
    out = home / "bench" / "release.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
