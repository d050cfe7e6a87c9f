"""Release writing and publication: a cold publish, then a nightly-like one, in parts and as one ZIP.

Run with `make bench` (or `python -m segpipe_tests.bench.release [--sizes 1000 5000] [--part-mib 8 256]`).
For each size, a fresh process generates that many 512x256 street-like images (JPEG) and class masks
(PNG) in batch b0, and 1% more in batch b1, into a local object store. Then, per part size, fresh
processes publish through the release build's publishing (store/release_build.py's publish_built:
planner, parts, staged checks, the protocol): cold, the b0 images into an empty dataset; nightly, b0
and b1 on top of it, as a nightly after b1 landed. Each reports its wall time, the bytes and objects
it wrote under releases/ (version folder and parts), the parts it wrote, the files it had to make
(those the previous version's member index did not know) and its peak RSS (ru_maxrss). At a part
size above the dataset, the release is one ZIP and the nightly rewrites it whole; below, the
nightly writes the new batch's parts and the version's own ZIP. `--exports cityscapes voc hf` turns
trainer layouts on (release.exports): their label files add to the annotation parts, never to the
image parts. `--store s3` does the same on a SeaweedFS server the benchmark starts on 127.0.0.1
(segpipe_tests/s3_server.py), as production publishes to S3: a request there is a round trip, so
what a publish asks per part shows. Results: $SEGPIPE_HOME/bench/release.json (release_s3.json).
"""

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import orjson
import polars as pl
from PIL import Image

WIDTH, HEIGHT = 512, 256
S3_BUCKET = "segpipe-bench"
CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


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


def _store(workdir: Path, s3_endpoint: str | None):
    """The benchmark's object store: a folder of the work dir, or a bucket on the S3 server."""
    from segpipe.io.object_store import ObjectStore

    if s3_endpoint is None:
        return ObjectStore(root=str(workdir / "store"))
    return ObjectStore(root=f"s3://{S3_BUCKET}/store", endpoint_url=s3_endpoint)


def generate(size: int, workdir: Path, s3_endpoint: str | None = None) -> None:
    """In a process of its own: `size` images and masks of batch b0 and 1% more of batch b1 into the
    store, and the release items as a Parquet file, so the measuring process holds none of the
    generated data."""
    from segpipe.core.shared.png import encode_mask_png

    artefacts = _store(workdir, s3_endpoint).artefacts()
    rng = np.random.default_rng(size)
    rows = []
    for n in range(size + max(1, size // 100)):
        batch = "b0" if n < size else "b1"
        jpeg, mask = _scene(rng)
        image_id = f"{n:064x}"
        artefacts.write(f"images/{image_id}.jpg", jpeg)
        artefacts.write(f"masks/{image_id}.png", encode_mask_png(mask))
        rows.append({"image_id": image_id, "split": ("train", "val", "test")[n % 3], "mask_key": f"masks/{image_id}.png",
                     "instance_mask_key": None, "mask_source": "single", "agreement": None,
                     "class_pixels": np.bincount(mask.ravel(), minlength=256).tolist(),
                     "source_uri": f"file:///landing/{n}.jpg", "image_key": f"images/{image_id}.jpg",
                     "file_name": f"images/scene_{n:05d}.jpg", "width": WIDTH, "height": HEIGHT,
                     "source_batches": batch, "part_group": batch, "annotators": "annotator-x", "camera": "front", "city": "lyon",
                     "time_of_day": "day", "weather": "clear", "sequence_id": f"s{n // 5}", "qa_warnings": None})
    pl.DataFrame(rows, schema_overrides={"agreement": pl.Float64, "instance_mask_key": pl.String,
                                         "qa_warnings": pl.String, "class_pixels": pl.List(pl.Int64)}
                 ).write_parquet(workdir / "items.parquet")


def measure(workdir: Path, phase: str, part_mib: float, exports: tuple[str, ...] = (),
            s3_endpoint: str | None = None) -> dict:
    """In a fresh process: publish the release of the b0 images (cold) or of all (nightly) into the
    store, parts of `part_mib`, and say what it cost."""
    from segpipe.core.release.build import ReleaseContents, package_release
    from segpipe.core.release.coco_fragments import AnnotationShelf, shelve_class_annotations
    from segpipe.core.release.writers.datasheet import datasheet_pictures
    from segpipe.core.release.writers import BuildStamp, ReleaseContext
    from segpipe.core.taxonomy.model import load_taxonomy
    from segpipe.demo import DEMO_CONFIG
    from segpipe.store.release_build import publish_built

    store = _store(workdir, s3_endpoint)
    items = pl.read_parquet(workdir / "items.parquet")
    if phase == "cold":
        items = items.filter(pl.col("part_group") == "b0")
    size = items.height
    loaded_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    qa = pl.DataFrame(schema={"entry_id": pl.String, "batch_id": pl.String, "file_name": pl.String, "check_id": pl.String,
                              "severity": pl.String, "passed": pl.Boolean, "excludes_entry": pl.Boolean,
                              "reason": pl.String, "thumbnail_key": pl.String})
    taxonomy = load_taxonomy(DEMO_CONFIG / "taxonomy.yaml")
    coco = AnnotationShelf()  # as build_release shelves them: the images' class annotations, a fragment per batch
    release = ReleaseContext(store.artefacts(), taxonomy, "bench", "grayscale", BuildStamp(phase, "2026-12-01T00:00:00Z"),
                             {"input": size, "released": size, "filtered": 0, "quarantined": 0}, qa,
                             coco_annotations=coco, exports=exports)
    ledger = pl.DataFrame({"batch_id": ["b0"], "outcome": ["released"]})
    made: list[int] = []

    def build(out, parts):
        shelve_class_annotations(items, coco, taxonomy, release.store)
        placed, members = package_release(release, items, out, parts)
        made.append(parts.hashed)
        return ReleaseContents(release.version, release.manifest, release.meta, ledger, release.counts,
                               datasheet_pictures(release), members, placed)

    fs, root = store.location()
    before = _objects(fs, root)
    start = time.perf_counter()
    built = publish_built(fs, root, "bench", phase, taxonomy.taxonomy_version, max(1, round(part_mib * 2**20)), build)
    seconds = time.perf_counter() - start
    written = {path: size for path, size in _objects(fs, root).items() if path not in before}
    image_mib = sum(size for path, size in written.items() if "/parts/" in path and _holds_images(fs, root, path)) / 2**20
    return {"phase": phase, "part_mib": part_mib, "images": size, "seconds": seconds, "exports": list(exports),
            "store": "local" if s3_endpoint is None else "s3",
            "image_parts_written_mib": image_mib,
            "images_per_s": size / seconds, "written_mib": sum(written.values()) / 2**20, "objects_written": len(written),
            "parts": len(built.published.marker["parts"]), "parts_written": len(built.parts_written),
            "files_made": made[0], "files": built.contents.members.height,
            "peak_rss_after_loading_items_mib": loaded_mib,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _holds_images(fs, root: str, part: str) -> bool:
    from segpipe.core.release.layout import is_image

    with fs.open(f"{root}/{part}", "rb") as stream, zipfile.ZipFile(stream) as archive:
        return any(is_image(name) for name in archive.namelist())


def _objects(fs, root: str) -> dict[str, int]:
    """Every object under the store's releases/ but staging and claims, by key, with its size."""
    from segpipe.store.listing import stored_files

    return {key: int(entry["size"]) for key, entry in stored_files(fs, root, "releases").items()
            if "/_staging/" not in key and "/_claims/" not in key}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--part-mib", type=float, nargs="+", default=[8.0, 256.0],
                        help="part sizes to publish with (256, the default of release.part_mib, keeps these as one ZIP)")
    parser.add_argument("--exports", nargs="*", default=[], choices=["cityscapes", "voc", "hf"],
                        help="trainer layouts the release carries (release.exports; default: none)")
    parser.add_argument("--store", choices=["local", "s3"], default="local",
                        help="publish into a local folder (default), or into S3 on a SeaweedFS server started here")
    parser.add_argument("--s3-endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--generate", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=["cold", "nightly"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(args.generate, args.workdir, args.s3_endpoint)
        return
    if args.measure:
        print(json.dumps(measure(args.workdir, args.measure, args.part_mib[0], tuple(args.exports), args.s3_endpoint)))
        return
    results = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="segpipe-bench-release-") as tmp, _s3_server(args.store, Path(tmp)) as s3:
            child = [sys.executable, "-m", "segpipe_tests.bench.release", "--workdir", tmp,
                     *(["--s3-endpoint", s3.endpoint_url] if s3 else [])]
            subprocess.run([*child, "--generate", str(size)], check=True)
            for part_mib in args.part_mib:  # each cold: no release, and no outline or annotation remembered
                fs, root = _store(Path(tmp), s3.endpoint_url if s3 else None).location()
                for made in ("releases", "yolo-exteriors", "coco-annotations"):
                    if fs.exists(f"{root}/{made}"):
                        fs.rm(f"{root}/{made}", recursive=True)
                for phase in ("cold", "nightly"):
                    done = subprocess.run([*child, "--measure", phase, "--part-mib", str(part_mib),
                                           "--exports", *args.exports], check=True,
                                          capture_output=True, text=True)
                    results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"\nRelease benchmark: {WIDTH}x{HEIGHT} images published into a {'local store' if args.store == 'local' else 'SeaweedFS S3 store'}, cold, then a nightly with 1% "
          f"new images in a batch of their own; exports: {', '.join(args.exports) or 'none'}")
    print(f"{'images':>7} {'part MiB':>8} {'phase':>8} {'seconds':>8} {'vs cold':>8} {'written MiB':>12} {'objects':>8}"
          f" {'image MiB':>9} {'parts':>6} {'new parts':>9} {'files made':>10} {'peak RSS MiB':>13}")
    cold = {}
    for r in results:
        if r["phase"] == "cold":
            cold = r
        print(f"{r['images']:>7,} {r['part_mib']:>8g} {r['phase']:>8} {r['seconds']:>8.1f} {r['seconds'] / cold['seconds']:>8.2f}"
              f" {r['written_mib']:>12.1f} {r['objects_written']:>8} {r['image_parts_written_mib']:>9.1f} {r['parts']:>6}"
              f" {r['parts_written']:>9}"
              f" {r['files_made']:>10,} {r['peak_rss_mib']:>13.0f}")
    home = Path(os.environ.get("SEGPIPE_HOME", Path.cwd() / ".segpipe"))
    out = home / "bench" / ("release.json" if args.store == "local" else "release_s3.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"wrote {out}")


@contextlib.contextmanager
def _s3_server(store: str, tmp: Path):
    """The S3 server for `--store s3` (its credentials in the environment, for the child processes), else None."""
    if store == "local":
        yield None
        return
    from segpipe_tests.s3_server import run_s3_server

    with run_s3_server(tmp / "weed") as server:
        server.filesystem().mkdir(S3_BUCKET)
        saved = {name: os.environ.get(name) for name in CREDENTIALS}
        os.environ.update(zip(CREDENTIALS, (server.access_key, server.secret_key, server.region)))
        try:
            yield server
        finally:
            for name, value in saved.items():
                os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
            server.crash()  # throwaway data


if __name__ == "__main__":
    main()
