"""Ingestion throughput and peak memory on synthetic COCO and Cityscapes batches, against peer loaders.

Run with `make bench` (or `python -m segpipe_tests.bench.ingest [--quick]`). For each format and
each size (1,000 and 5,000 images; `--quick`: 200 and 1,000) it runs, each in a fresh process
so peak RSS belongs to that run alone:

- `ingest`: open_source + ingest_batch on the batch folder (format detected, every image
  decoded and hashed, no image store), reporting the size of the images + shapes tables;
- `parse`: the format's reader alone (`READERS[...].read`), each AnnotatedImage dropped as it
  is yielded, no image touched: where the annotation time goes;
- `parse_held`: the same, but kept in a list: what holding every parsed file would cost
  (ingest_batch streams instead, turning each image into table rows as it is read);
- `peer`: pycocotools `COCO(instances.json)` (json.load + index) or cityscapesscripts
  `Annotation().fromJsonFile` over every polygon file, on the same files.

Timings are one run each, measured inside the child around the work only (interpreter start
and imports excluded). Peak RSS is the child's VmHWM; "growth" is VmHWM minus the RSS after
imports. Data (see ingest_data.py) is generated once into $SEGPIPE_HOME/bench/cache (about
2.3 GB for 5,000 images, 1.5 min on 2 cores; removed by `make clean`). Results go to
$SEGPIPE_HOME/bench/ingest.json (ingest-quick.json with --quick).
"""

import argparse
import contextlib
import io
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import orjson

from segpipe_tests.bench.ingest_data import HEIGHT, WIDTH, ensure_batches, folder_bytes

FORMATS = {"coco": "coco_instances", "cityscapes": "cityscapes_polygons"}
PEERS = {"coco": "pycocotools COCO()", "cityscapes": "cityscapesscripts fromJsonFile"}
RUNS = ("ingest", "parse", "parse_held", "peer")
MIB = 1024 * 1024
KEY = b"bench-key-0123456789abcdef"


# --- child side -------------------------------------------------------------------------------


def _status_mib(field: str) -> float:
    """VmRSS / VmHWM of this process in MiB (ru_maxrss where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_ingest(batch: Path, fmt: str) -> dict:
    import fsspec

    from segpipe.core.ingest.batch import ingest_batch
    from segpipe.core.ingest.sources import open_source

    fs = fsspec.filesystem("file")
    start_rss = _status_mib("VmRSS")
    start = time.perf_counter()
    with open_source(fs, str(batch)) as source:
        result = ingest_batch(source, batch.name, KEY)
    wall = time.perf_counter() - start
    if result.source_format != FORMATS[fmt]:
        raise SystemExit(f"{batch}: detected {result.source_format}, expected {FORMATS[fmt]}")
    return {
        "wall_s": wall, "start_rss_mib": start_rss, "images": result.images.height, "shapes": result.shapes.height,
        "quarantined": result.quarantine.height,
        "tables_mib": (result.images.estimated_size() + result.shapes.estimated_size()) / MIB,
        "shapes_table_mib": result.shapes.estimated_size() / MIB,
    }


def _child_parse(batch: Path, fmt: str, held: bool) -> dict:
    import fsspec

    from segpipe.core.ingest.formats import READERS, ReaderOptions
    from segpipe.core.ingest.batch import HEAD_BYTES
    from segpipe.core.ingest.sources import open_source

    def head(name: str) -> bytes:  # what ingest's format detection reads of a file
        with source.open(name) as stream:
            return stream.read(HEAD_BYTES)

    reader = READERS[FORMATS[fmt]]
    fs = fsspec.filesystem("file")
    start_rss = _status_mib("VmRSS")
    start = time.perf_counter()
    images = shapes = errors = 0
    kept = []
    with open_source(fs, str(batch)) as source:
        files = reader.annotation_files(source.names(), head)
        for annotated in reader.read(source, files, ReaderOptions()):
            images += 1
            shapes += len(annotated.shapes)
            errors += annotated.error is not None
            if held:
                kept.append(annotated)
    wall = time.perf_counter() - start
    return {"wall_s": wall, "start_rss_mib": start_rss, "images": images, "shapes": shapes, "quarantined": errors}


def _child_peer(batch: Path, fmt: str) -> dict:
    if fmt == "coco":
        from pycocotools.coco import COCO

        start_rss = _status_mib("VmRSS")
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress
            coco = COCO(str(batch / "instances.json"))
        wall = time.perf_counter() - start
        return {"wall_s": wall, "start_rss_mib": start_rss, "images": len(coco.imgs), "shapes": len(coco.anns)}
    from cityscapesscripts.helpers.annotation import Annotation

    start_rss = _status_mib("VmRSS")
    start = time.perf_counter()
    images = shapes = 0
    for path in sorted((batch / "gtFine").rglob("*_polygons.json")):
        annotation = Annotation()
        annotation.fromJsonFile(str(path))
        images += 1
        shapes += len(annotation.objects)
    wall = time.perf_counter() - start
    return {"wall_s": wall, "start_rss_mib": start_rss, "images": images, "shapes": shapes}


def child_main(run: str, batch: Path, fmt: str) -> None:
    if run == "ingest":
        result = _child_ingest(batch, fmt)
    elif run in ("parse", "parse_held"):
        result = _child_parse(batch, fmt, held=run == "parse_held")
    else:
        result = _child_peer(batch, fmt)
    result["peak_rss_mib"] = _status_mib("VmHWM")
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


# --- parent side ------------------------------------------------------------------------------


def run_child(run: str, batch: Path, fmt: str) -> dict:
    command = [sys.executable, "-m", "segpipe_tests.bench.ingest", "--child", run, "--format", fmt, "--batch", str(batch)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    result = orjson.loads(done.stdout.strip().splitlines()[-1])
    result["growth_mib"] = result["peak_rss_mib"] - result["start_rss_mib"]
    result["images_per_s"] = result["images"] / result["wall_s"] if result["wall_s"] else None
    return result


def _fmt(value: float | None, spec: str) -> str:
    if value is None:
        return "-".rjust(int(spec.split(".")[0]))
    return format(value, spec)


def print_table(results: list[dict], sizes: list[int], batches: dict) -> None:
    print(f"\nIngest benchmark: {WIDTH}x{HEIGHT} images, ~100 polygons of 10-20 vertices each, one run per row, one core")
    for fmt in FORMATS:
        for n in sizes:
            batch = batches[fmt, n]
            print(f"  {fmt}-{n}: {folder_bytes(batch) / MIB:,.0f} MiB on disk")
    header = (f"{'format':11s} {'images':>6s} {'run':30s} {'wall s':>7s} {'images/s':>9s} {'ms/image':>9s} "
              f"{'peak MiB':>9s} {'growth MiB':>10s} {'tables MiB':>10s}")
    print("\n" + header)
    print("-" * len(header))
    for r in results:
        name = PEERS[r["format"]] if r["run"] == "peer" else f"segpipe {r['run']}"
        print(f"{r['format']:11s} {r['n']:6d} {name:30s} {r['wall_s']:7.2f} {_fmt(r['images_per_s'], '9.1f')} "
              f"{1000 * r['wall_s'] / r['images']:9.2f} {r['peak_rss_mib']:9.0f} {r['growth_mib']:10.0f} "
              f"{_fmt(r.get('tables_mib'), '10.1f')}")
    if _complete(results, sizes):
        print()
        for line in summary_lines(results, sizes):
            print(line)


def _complete(results: list[dict], sizes: list[int]) -> bool:
    """Whether the summary can be drawn: ingest, parse and peer at two sizes or more."""
    return len(sizes) > 1 and {"ingest", "parse", "peer"} <= {r["run"] for r in results}


def _find(results: list[dict], fmt: str, n: int, run: str) -> dict:
    return next(r for r in results if r["format"] == fmt and r["n"] == n and r["run"] == run)


def summary(results: list[dict], sizes: list[int]) -> dict:
    small, large = min(sizes), max(sizes)
    out = {}
    for fmt in FORMATS:
        ratios = {n: _find(results, fmt, n, "parse")["wall_s"] / _find(results, fmt, n, "peer")["wall_s"] for n in sizes}
        a, b = _find(results, fmt, small, "ingest"), _find(results, fmt, large, "ingest")
        out[fmt] = {
            "parse_over_peer_time": ratios,
            "ingest_growth_mib": {small: a["growth_mib"], large: b["growth_mib"]},
            "tables_mib": {small: a["tables_mib"], large: b["tables_mib"]},
            "growth_beyond_tables_mib": {small: a["growth_mib"] - a["tables_mib"], large: b["growth_mib"] - b["tables_mib"]},
            "extra_growth_per_extra_image_kib": (b["growth_mib"] - a["growth_mib"]) * 1024 / (large - small),
            "extra_tables_per_extra_image_kib": (b["tables_mib"] - a["tables_mib"]) * 1024 / (large - small),
        }
    return out


def summary_lines(results: list[dict], sizes: list[int]) -> list[str]:
    lines = []
    small, large = min(sizes), max(sizes)
    for fmt, s in summary(results, sizes).items():
        ratios = ", ".join(f"{r:.2f} at {n}" for n, r in s["parse_over_peer_time"].items())
        lines.append(f"{fmt}: segpipe parse / {PEERS[fmt]} time: {ratios}")
        g, t = s["ingest_growth_mib"], s["tables_mib"]
        lines.append(
            f"{fmt}: ingest memory growth {g[small]:.0f} -> {g[large]:.0f} MiB for tables {t[small]:.0f} -> {t[large]:.0f} MiB "
            f"({s['extra_growth_per_extra_image_kib']:.0f} KiB of peak per extra image, "
            f"{s['extra_tables_per_extra_image_kib']:.0f} KiB of tables)")
    return lines


def code_version() -> dict:
    """The commit measured and whether segpipe/ had uncommitted changes: the figures belong to that code."""
    def git(*command: str) -> str:
        done = subprocess.run(["git", *command], capture_output=True, text=True, check=False, cwd=Path(__file__).parent)
        return done.stdout.strip() if done.returncode == 0 else ""
    return {"commit": git("rev-parse", "HEAD") or None, "segpipe_dirty": bool(git("status", "--porcelain", "--", "../../segpipe"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 and 1,000 images instead of 1,000 and 5,000")
    parser.add_argument("--sizes", type=int, nargs="+", help="batch sizes (images) to measure")
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS))
    home = Path(os.environ.get("SEGPIPE_HOME", Path.cwd() / ".segpipe"))
    parser.add_argument("--cache", type=Path, default=home / "bench" / "cache")
    parser.add_argument("--out", type=Path, help="default $SEGPIPE_HOME/bench/ingest.json (ingest-quick.json with --quick)")
    parser.add_argument("--child", choices=RUNS, help=argparse.SUPPRESS)
    parser.add_argument("--format", choices=FORMATS, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child, args.batch, args.format)
        return
    code = code_version()
    print(f"measuring segpipe at {code}")
    sizes = sorted(args.sizes or ([200, 1000] if args.quick else [1000, 5000]))
    out = args.out or home / "bench" / ("ingest-quick.json" if args.quick else "ingest.json")
    started = time.perf_counter()
    batches = ensure_batches(args.cache, sizes)
    generated = time.perf_counter() - started
    results = []
    for fmt in FORMATS:
        for n in sizes:
            for run in args.runs:
                result = run_child(run, batches[fmt, n], fmt)
                result.update(format=fmt, n=n, run=run)
                print(f"  {fmt:10s} {n:5d} {run:10s} {result['wall_s']:7.2f} s  peak {result['peak_rss_mib']:6.0f} MiB", flush=True)
                if result["images"] != n or result.get("quarantined"):
                    raise SystemExit(f"{fmt}-{n} {run}: {result['images']} images, {result.get('quarantined')} quarantined")
                results.append(result)
    print_table(results, sizes, batches)
    report = {
        "code": code,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "data": {"width": WIDTH, "height": HEIGHT, "sizes": sizes, "cache": str(args.cache),
                 "batch_mib": {f"{f}-{n}": folder_bytes(b) / MIB for (f, n), b in batches.items()}},
        "generation_s": generated, "total_s": time.perf_counter() - started,
        "results": results,
        "summary": summary(results, sizes) if _complete(results, sizes) else None,
    }
    if code_version() != code:
        report["code_changed_during_run"] = code_version()
        print("WARNING: segpipe/ changed while the benchmark ran; the figures mix two versions of the code")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    print(f"\nwrote {out} (total {report['total_s']:.0f} s, data generation {generated:.0f} s)")


if __name__ == "__main__":
    main()
