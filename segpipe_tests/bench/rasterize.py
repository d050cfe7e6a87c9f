"""Rasterize + encode throughput on demo scenes, against the same masks saved with Pillow's PNG encoder.

Pillow's default encoder is what cityscapesScripts' json2labelImg uses, so the ratio isolates the
encoder choice. Run with `make bench`; prints images/s, mean PNG size and peak RSS.
"""

import argparse
import io
import resource
import tempfile
import time
from pathlib import Path

import fsspec
import polars as pl
from PIL import Image

from segpipe.core.demo import generate_demo
from segpipe.core.ingest import ingest_batch
from segpipe.core.landing import list_ready_batches
from segpipe.core.png import encode_mask_png
from segpipe.core.raster import rasterize_shapes
from segpipe.core.sources import open_source
from segpipe.core.taxonomy import load_taxonomy, map_labels
from segpipe.environment import PACKAGE_CONFIG

BENCH_KEY = b"rasterize-bench-key"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    taxonomy = load_taxonomy(PACKAGE_CONFIG / "taxonomy.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        demo = generate_demo(Path(tmp), n_scenes=args.scenes, width=args.width, height=args.height, seed=0)
        fs = fsspec.filesystem("file")
        batches = []
        for batch_id in list_ready_batches(fs, str(demo.landing_root)):
            with open_source(fs, f"{demo.landing_root}/{batch_id}") as source:
                batches.append(ingest_batch(source, batch_id, BENCH_KEY))
    images = pl.concat([b.images for b in batches])
    mapped = map_labels(pl.concat([b.shapes for b in batches]), images.select("entry_id", "source"), taxonomy)
    entries = [(row["width"], row["height"], mapped.filter(pl.col("entry_id") == row["entry_id"]))
               for row in images.iter_rows(named=True)]
    polygons = mapped.height / len(entries)

    def ours(width, height, shapes):
        return encode_mask_png(rasterize_shapes(shapes, width, height, taxonomy.ignore_index))

    def pillow(width, height, shapes):
        out = io.BytesIO()
        Image.fromarray(rasterize_shapes(shapes, width, height, taxonomy.ignore_index)).save(out, format="PNG")
        return out.getvalue()

    results = {}
    for name, encode in (("segpipe", ours), ("pillow_default", pillow)):
        best, size = float("inf"), 0
        for _ in range(args.rounds):
            start = time.perf_counter()
            size = sum(len(encode(*entry)) for entry in entries)
            best = min(best, time.perf_counter() - start)
        results[name] = (len(entries) / best, size / len(entries))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(entries)} masks at {args.width}x{args.height}, {polygons:.0f} polygons each, best of {args.rounds}, one core")
    for name, (rate, size) in results.items():
        print(f"  {name:15s} {rate:7.1f} images/s  {1000 / rate:6.2f} ms/image  mean PNG {size / 1024:6.1f} KiB")
    print(f"  time ratio segpipe / pillow_default: {results['pillow_default'][0] / results['segpipe'][0]:.2f}")
    print(f"  peak RSS: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
