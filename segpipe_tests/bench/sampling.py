"""Golden-distribution sampling over a 100,000-image manifest, against the rasterize stage.

Run with `make bench` (or `python -m segpipe_tests.bench.sampling [--rows N]`). Data, generated in
memory from a fixed seed: N manifest rows (default 100,000) in sequences of 5 to 15 images (about
10), each sequence with one camera, city, time_of_day and weather drawn from skewed natural
distributions (NATURAL); each image's class_pixels over 40 classes with a long tail: a sequence
holds class c with probability SEQUENCE_PRESENCE[c] (0.9 for class 0 down to 0.0036 for class 36,
0.001 for the three rarest), and then 70 % of its images do, with pixel counts falling with the
class; a handful of near-duplicate pairs across sequences. The spec: target_size half the rows,
foundation_share 0.5, targets on time_of_day, weather and camera away from their natural shares
(TARGETS), rare-class floors of MIN_IMAGES images per split.

Timed with perf_counter, on one core, after a warm-up run on a small manifest:
- cold: sample_dataset on the manifest;
- nightly: sample_dataset on the manifest plus 1 % new rows (new sequences, and a tenth of them
  new images in existing sequences) with previous = the cold result; every earlier image must
  keep its split.
Reported: rows, units, seconds, rows/s, peak RSS (ru_maxrss after the data is built and after each
run: a peak that does not move was set by the data, not by sampling), achieved against target
share per strata value and the largest deviation (the spec's tolerance is the target), the
rare-class floors, and the ratio of the cold run to the rasterize stage for as many images (its
median ms per image from $SEGPIPE_HOME/bench/rasterize.json). Results: $SEGPIPE_HOME/bench/sampling.json.
"""

import argparse
import dataclasses
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import orjson
import polars as pl

from segpipe.core.sampling.spec import SPLITS, DistributionSpec, RareClassFloors
from segpipe.core.sampling.sample import Sample, sample_dataset, split_proportions
from segpipe_tests.bench.ingest import code_version

CLASSES = 40
MIN_IMAGES = 20
NEAR_PAIRS = 12
NATURAL = {
    "camera": {"front": 0.55, "rear": 0.25, "left": 0.1, "right": 0.1},
    "city": {f"city{n:02d}": share for n, share in enumerate(np.array([1 / (n + 1) for n in range(12)]) /
                                                               sum(1 / (n + 1) for n in range(12)))},
    "time_of_day": {"day": 0.7, "dusk": 0.1, "night": 0.2},
    "weather": {"clear": 0.65, "rain": 0.2, "fog": 0.05, "snow": 0.1},
}
TARGETS = {
    "time_of_day": {"day": 0.55, "dusk": 0.15, "night": 0.3},
    "weather": {"clear": 0.52, "rain": 0.25, "fog": 0.08, "snow": 0.15},
    "camera": {"front": 0.4, "rear": 0.3, "left": 0.15, "right": 0.15},
}
SEQUENCE_PRESENCE = np.array([0.9 * (c + 1) ** -1.5 for c in range(CLASSES - 3)] + [0.001] * 3)
IMAGE_PRESENCE = 0.7  # of the images of a sequence that holds the class
MIB = 1024  # ru_maxrss is in KiB on Linux


def manifest(rows: int, rng: np.random.Generator, prefix: str = "") -> pl.DataFrame:
    """`rows` images in sequences of their own, ids starting with `prefix`."""
    sizes = rng.integers(5, 16, size=rows // 5 + 1)
    sizes = sizes[:int(np.searchsorted(np.cumsum(sizes), rows)) + 1]
    sizes[-1] -= int(sizes.sum()) - rows
    sequence = np.repeat(np.arange(len(sizes)), sizes)
    frame = {"image_id": [f"{prefix}img{s:06d}_{k:02d}" for s, size in enumerate(sizes) for k in range(size)],
             "sequence_id": [f"{prefix}seq{s:06d}" for s in sequence]}
    for column, shares in NATURAL.items():
        values = np.array(list(shares))
        frame[column] = values[rng.choice(len(values), size=len(sizes), p=np.array(list(shares.values())))][sequence]
    in_sequence = (rng.random((len(sizes), CLASSES)) < SEQUENCE_PRESENCE)[sequence]
    holds = in_sequence & (rng.random((rows, CLASSES)) < IMAGE_PRESENCE)
    holds[:, 0] |= ~holds.any(axis=1)  # every image shows something
    typical = 2e5 * np.arange(1, CLASSES + 1, dtype=np.float64) ** -1.2
    pixels = np.zeros((rows, 256), dtype=np.int64)
    pixels[:, :CLASSES] = np.where(holds, np.ceil(typical * rng.lognormal(0.0, 0.8, size=(rows, CLASSES))), 0)
    return pl.DataFrame(frame).with_columns(pl.Series("class_pixels", pixels).cast(pl.List(pl.Int64)))


def nightly_rows(images: pl.DataFrame, rows: int, rng: np.random.Generator) -> pl.DataFrame:
    """A night's arrivals: nine tenths new sequences, a tenth new images in existing ones."""
    late = images.sample(n=rows // 10, seed=int(rng.integers(2**31))).with_columns(
        (pl.col("image_id") + "_late").alias("image_id"))
    return pl.concat([manifest(rows - late.height, rng, prefix="new"), late])


def near_pairs(images: pl.DataFrame, rng: np.random.Generator) -> list[tuple[str, str]]:
    ids = images["image_id"].to_list()
    return [(ids[a], ids[b]) for a, b in rng.choice(len(ids), size=(NEAR_PAIRS, 2), replace=False)]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / MIB


def timed(images: pl.DataFrame, spec: DistributionSpec, pairs: list[tuple[str, str]],
          previous: pl.DataFrame | None = None) -> tuple[Sample, dict]:
    start = time.perf_counter()
    sample = sample_dataset(images, spec, list(range(CLASSES)), previous=previous, near_pairs=pairs)
    seconds = time.perf_counter() - start
    return sample, {"rows": images.height, "units": len(sample.units), "seconds": seconds,
                    "rows_per_s": images.height / seconds, "peak_rss_mib": peak_rss_mib()}


def strata_shares(images: pl.DataFrame, sample: Sample) -> dict[str, dict[str, dict[str, float]]]:
    selected = (sample.splits.filter(pl.col("split").is_not_null())
                .join(images.select("image_id", *TARGETS), on="image_id"))
    shares = {}
    for column, targets in TARGETS.items():
        counts = dict(selected.group_by(column).len().iter_rows())
        shares[column] = {value: {"target": target, "natural": NATURAL[column][value],
                                  "achieved": counts.get(value, 0) / selected.height}
                          for value, target in targets.items()}
    return shares


def floors(images: pl.DataFrame, sample: Sample) -> dict:
    """Per class: images holding it in the data and in each split; unmet where a split has fewer
    than MIN_IMAGES though the data holds 3 * MIN_IMAGES."""
    holders = sample.splits.join(images.select("image_id", "class_pixels"), on="image_id").select(
        "split", *[(pl.col("class_pixels").list.get(c) > 0).alias(str(c)) for c in range(CLASSES)])
    in_data = holders.select(pl.exclude("split").sum()).row(0, named=True)
    per_split = {row["split"]: row for row in holders.filter(pl.col("split").is_not_null())
                 .group_by("split").agg(pl.exclude("split").sum()).iter_rows(named=True)}
    classes = {c: {"images": in_data[c], **{s: per_split.get(s, {}).get(c, 0) for s in SPLITS}} for c in in_data}
    unmet = [c for c, n in classes.items() if n["images"] >= 3 * MIN_IMAGES and min(n[s] for s in SPLITS) < MIN_IMAGES]
    short_in_data = [c for c, n in classes.items() if n["images"] < 3 * MIN_IMAGES]
    return {"classes": classes, "unmet": unmet, "short_in_data": short_in_data}


def rasterize_ms(home: Path) -> float | None:
    path = home / "bench" / "rasterize.json"
    if not path.exists():
        return None
    return orjson.loads(path.read_bytes())["per_image"]["segpipe"]["rasterize_median_ms"]


def print_report(report: dict) -> None:
    print(f"\nSampling benchmark: {report['data']['rows']:,} rows in sequences of 5-15, {CLASSES} classes, "
          f"{NEAR_PAIRS} near-duplicate pairs, target_size {report['spec']['target_size']:,}, one core")
    header = f"{'run':8s} {'rows':>8s} {'units':>7s} {'seconds':>8s} {'rows/s':>9s} {'peak RSS MiB':>13s}"
    print(header + "\n" + "-" * len(header))
    for name in ("cold", "nightly"):
        r = report[name]
        print(f"{name:8s} {r['rows']:8,d} {r['units']:7,d} {r['seconds']:8.2f} {r['rows_per_s']:9,.0f} "
              f"{r['peak_rss_mib']:13.0f}")
    print(f"(peak RSS after building the data: {report['data']['peak_rss_mib']:.0f} MiB)")
    print(f"\nselected {report['selected']:,} of {report['data']['rows']:,}; by step: "
          + ", ".join(f"{k} {v:,}" for k, v in report["selected_by"].items()))
    print("split shares: " + ", ".join(f"{s} {v:.3f} (target {report['spec']['splits'][s]})"
                                       for s, v in report["split_shares"].items()))
    print(f"\n{'column':12s} {'value':8s} {'natural':>8s} {'target':>7s} {'achieved':>9s} {'deviation':>10s}")
    for column, values in report["strata"].items():
        for value, s in values.items():
            print(f"{column:12s} {value:8s} {s['natural']:8.3f} {s['target']:7.3f} {s['achieved']:9.3f} "
                  f"{s['achieved'] - s['target']:+10.3f}")
    deviation, tolerance = report["max_deviation"], report["spec"]["tolerance"]
    print(f"  [{'ok' if deviation <= tolerance else 'MISS'}] max deviation {deviation:.4f}   target <= {tolerance}")
    f = report["floors"]
    print(f"  [{'ok' if not f['unmet'] else 'MISS'}] rare-class floors ({MIN_IMAGES} images per split): "
          f"unmet for {f['unmet'] or 'no class'} of those the data holds in {3 * MIN_IMAGES}+ images; "
          f"classes with fewer in the data: "
          + (", ".join(f"{c} ({f['classes'][c]['images']})" for c in f["short_in_data"]) or "none"))
    moved = report["nightly_moved"]
    print(f"  [{'ok' if moved == 0 else 'MISS'}] nightly: {moved} earlier images changed split or selection")
    if report["rasterize_ms_per_image"] is None:
        print("  rasterize stage: $SEGPIPE_HOME/bench/rasterize.json missing "
              "(run python -m segpipe_tests.bench.rasterize)")
    else:
        print(f"  cold sampling / rasterize stage for as many images ({report['rasterize_ms_per_image']:.2f} "
              f"ms/image x {report['data']['rows']:,} = {report['rasterize_s']:.0f} s): {report['ratio_to_rasterize']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    home = Path(os.environ.get("SEGPIPE_HOME", Path.cwd() / ".segpipe"))
    parser.add_argument("--out", type=Path, default=home / "bench" / "sampling.json")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    code = code_version()
    rng = np.random.default_rng(args.seed)
    spec = DistributionSpec(seed=args.seed, group_by="sequence_id", splits={"train": 0.7, "val": 0.15, "test": 0.15},
                            target_size=args.rows // 2, foundation_share=0.5, strata=TARGETS,
                            rare_classes=RareClassFloors(min_images=MIN_IMAGES, min_pixel_share=0.0001))
    warm = manifest(2_000, np.random.default_rng(args.seed + 1))
    sample_dataset(warm, dataclasses.replace(spec, target_size=1_000), list(range(CLASSES)))
    started = time.perf_counter()
    images = manifest(args.rows, rng)
    pairs = near_pairs(images, rng)
    data = {"rows": images.height, "sequences": images["sequence_id"].n_unique(),
            "generation_s": time.perf_counter() - started, "peak_rss_mib": peak_rss_mib()}
    print(f"measuring segpipe at {code}; data: {data['rows']:,} rows, {data['sequences']:,} sequences", flush=True)
    cold, cold_figures = timed(images, spec, pairs)
    grown = pl.concat([images, nightly_rows(images, args.rows // 100, rng)])
    nightly, nightly_figures = timed(grown, spec, pairs, previous=cold.splits)
    before = cold.splits.select("image_id", "split")
    moved = before.join(nightly.splits.select("image_id", "split"), on="image_id", suffix="_nightly").filter(
        pl.col("split").ne_missing(pl.col("split_nightly"))).height
    shares = strata_shares(images, cold)
    raster = rasterize_ms(home)
    report = {
        "code": code,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average": os.getloadavg()},
        "data": data,
        "spec": {"target_size": spec.target_size, "foundation_share": spec.foundation_share, "splits": spec.splits,
                 "strata": spec.strata, "min_images": MIN_IMAGES, "tolerance": spec.tolerance},
        "cold": cold_figures, "nightly": {**nightly_figures, "new_rows": grown.height - images.height},
        "nightly_moved": moved,
        "selected": cold.splits["split"].is_not_null().sum(),
        "selected_by": dict(cold.splits.group_by("selected_by").len().sort("selected_by", nulls_last=True)
                            .with_columns(pl.col("selected_by").fill_null("(not selected)")).iter_rows()),
        "split_shares": split_proportions(cold.splits),
        "strata": shares,
        "max_deviation": max(abs(s["achieved"] - s["target"]) for values in shares.values() for s in values.values()),
        "floors": floors(images, cold),
        "rasterize_ms_per_image": raster,
        "rasterize_s": None if raster is None else raster * images.height / 1000,
        "ratio_to_rasterize": None if raster is None else cold_figures["seconds"] / (raster * images.height / 1000),
    }
    if code_version() != code:
        report["code_changed_during_run"] = code_version()
        print("WARNING: segpipe/ changed while the benchmark ran; the figures mix two versions of the code")
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
