"""Synthetic batches for the ingestion benchmark, generated once and cached.

Every image index i has one deterministic scene (seeded by (seed, i)):
- pixels: 512x256 RGB, a random background, 8 random rectangles and +-4 noise (a random
  window of one noise field), so every image is unique and does not compress like a cartoon.
  Saved as JPEG (quality 90) for COCO and as PNG (no filter, zlib-ng level 1, about 280 KiB;
  a 2048x1024 Cityscapes photo is about 2 MiB) for Cityscapes, whose leftImg8bit images are PNG;
- 90-110 star-shaped polygons of 10-20 vertices (about 1,500 vertices per image), clipped to
  the frame, labelled with Cityscapes label names (void and `*group` labels included).

COCO batch `coco-<n>/`: `instances.json` (compact, key order info, licenses, images,
annotations, categories, as pycocotools writes it; coordinates with 2 decimals, bbox, area,
iscrowd 0) and `images/img_<i>.jpg`. Cityscapes batch `cityscapes-<n>/`:
`gtFine/train/<city>/<stem>_gtFine_polygons.json` (integer coordinates, the per-object keys
of the released files, 2-space indent; the released files use 4) and
`leftImg8bit/train/<city>/<stem>_leftImg8bit.png`. Both batches have a `batch.json` that
declares no format, so ingest detects it as it would for a landing batch.

Images and Cityscapes JSON files live once in a pool folder and are hard-linked into each
batch, so the 1,000-image batches cost only their COCO file. A batch is complete when its
marker under the pool's `done/` exists; an interrupted generation is redone.
"""

import math
import os
import shutil
import struct
import zlib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
from PIL import Image, ImageDraw
from zlib_ng import zlib_ng

WIDTH, HEIGHT = 512, 256
SEED = 20250
CHUNK = 100  # images per worker task
IMAGES_PER_CITY = 500
JPEG_QUALITY = 90
NOISE = 4  # +- per channel
FORMAT_VERSION = "v1"

# (name, Cityscapes id); used as COCO categories too.
LABELS: tuple[tuple[str, int], ...] = (
    ("ego vehicle", 1), ("out of roi", 3), ("road", 7), ("sidewalk", 8), ("building", 11), ("wall", 12),
    ("fence", 13), ("pole", 17), ("polegroup", 18), ("traffic light", 19), ("traffic sign", 20),
    ("vegetation", 21), ("terrain", 22), ("sky", 23), ("person", 24), ("persongroup", 24), ("rider", 25),
    ("car", 26), ("cargroup", 26), ("truck", 27), ("bus", 28), ("train", 31), ("motorcycle", 32),
    ("bicycle", 33), ("bicyclegroup", 33), ("license plate", -1),
)
COCO_CATEGORIES = [{"id": i + 1, "name": name, "supercategory": "cityscapes"} for i, (name, _) in enumerate(LABELS)]


@dataclass(frozen=True)
class Scene:
    labels: list[int]  # index into LABELS, per polygon
    rings: list[np.ndarray]  # float64 (k, 2) vertices per polygon, inside the frame


def scene(seed: int, index: int) -> Scene:
    rng = np.random.default_rng([seed, index])
    count = int(rng.integers(90, 111))
    vertices = rng.integers(10, 21, count)
    centers = rng.uniform((0, 0), (WIDTH, HEIGHT), (count, 2))
    radii = rng.uniform(5, 60, count)
    offsets = np.concatenate(([0], np.cumsum(vertices)))
    total = int(offsets[-1])
    owner = np.repeat(np.arange(count), vertices)
    # star polygons: sorted angles per polygon, radius jittered per vertex
    angles = np.sort(rng.uniform(0, 2 * math.pi, total) + owner * 10.0) - owner * 10.0
    reach = radii[owner] * rng.uniform(0.5, 1.0, total)
    points = centers[owner] + np.stack((np.cos(angles), np.sin(angles)), axis=1) * reach[:, None]
    points[:, 0] = np.clip(points[:, 0], 0, WIDTH - 1)
    points[:, 1] = np.clip(points[:, 1], 0, HEIGHT - 1)
    rings = [points[offsets[k]:offsets[k + 1]] for k in range(count)]
    return Scene(labels=rng.integers(0, len(LABELS), count).tolist(), rings=rings)


_NOISE: dict[int, np.ndarray] = {}


def pixels(seed: int, index: int) -> np.ndarray:
    """(HEIGHT, WIDTH, 3) uint8: background, 8 rectangles, and a window of a shared noise field."""
    rng = np.random.default_rng([seed, index, 1])
    image = Image.new("RGB", (WIDTH, HEIGHT), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(8):
        x0, y0 = int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT))
        draw.rectangle([x0, y0, x0 + int(rng.integers(10, 200)), y0 + int(rng.integers(10, 120))],
                       fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    if seed not in _NOISE:
        _NOISE[seed] = np.random.default_rng([seed, 2]).integers(-NOISE, NOISE + 1, (2 * HEIGHT, 2 * WIDTH, 3), dtype=np.int16)
    dy, dx = int(rng.integers(0, HEIGHT)), int(rng.integers(0, WIDTH))
    noisy = np.asarray(image).astype(np.int16) + _NOISE[seed][dy:dy + HEIGHT, dx:dx + WIDTH]
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def rgb_png(rgb: np.ndarray) -> bytes:
    """An RGB PNG, no row filter, zlib-ng level 1: Pillow's encoder takes 30-40 ms on noisy pixels."""
    height, width, _ = rgb.shape
    raw = np.zeros((height, width * 3 + 1), dtype=np.uint8)
    raw[:, 1:] = rgb.reshape(height, width * 3)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join((b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", header),
                     _png_chunk(b"IDAT", zlib_ng.compress(raw.tobytes(), 1)), _png_chunk(b"IEND", b"")))


def city_stem(index: int) -> tuple[str, str]:
    city = f"city{index // IMAGES_PER_CITY:02d}"
    return city, f"{city}_{index // 30:06d}_{index % 30:06d}"


def coco_file_name(index: int) -> str:
    return f"img_{index:05d}.jpg"


def cityscapes_document(s: Scene) -> dict:
    objects = []
    for number, (label, ring) in enumerate(zip(s.labels, s.rings, strict=True)):
        objects.append({
            "date": "01-Jan-2025 00:00:00", "deleted": 0, "id": number, "label": LABELS[label][0],
            "polygon": np.rint(ring).astype(np.int64).tolist(), "user": "bench", "verified": 0,
        })
    return {"imgHeight": HEIGHT, "imgWidth": WIDTH, "objects": objects}


def coco_annotations(s: Scene, index: int) -> bytes:
    """The image's annotations as comma-joined JSON objects (no brackets)."""
    parts = []
    for number, (label, ring) in enumerate(zip(s.labels, s.rings, strict=True)):
        rounded = np.round(ring, 2)
        x, y = rounded[:, 0], rounded[:, 1]
        area = 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
        x0, y0 = float(x.min()), float(y.min())
        parts.append(orjson.dumps({
            "id": index * 1000 + number, "image_id": index, "category_id": label + 1,
            "segmentation": [rounded.ravel().tolist()], "area": round(area, 2),
            "bbox": [x0, y0, round(float(x.max()) - x0, 2), round(float(y.max()) - y0, 2)], "iscrowd": 0,
        }))
    return b",".join(parts)


def _pool_chunk(pool: str, seed: int, start: int, stop: int) -> None:
    root = Path(pool)
    for index in range(start, stop):
        city, stem = city_stem(index)
        rgb = pixels(seed, index)
        Image.fromarray(rgb).save(root / "jpg" / coco_file_name(index), format="JPEG", quality=JPEG_QUALITY)
        (root / "png" / f"{stem}_leftImg8bit.png").write_bytes(rgb_png(rgb))
        document = cityscapes_document(scene(seed, index))
        (root / "json" / f"{stem}_gtFine_polygons.json").write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    (root / "done" / f"{start}").touch()


def _coco_chunk(seed: int, start: int, stop: int) -> bytes:
    return b",".join(coco_annotations(scene(seed, index), index) for index in range(start, stop))


def _chunks(n: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, CHUNK):
        yield start, min(start + CHUNK, n)


def _ensure_pool(root: Path, n: int, seed: int, workers: int) -> Path:
    """Pixels and Cityscapes JSON for images 0..n-1; chunks already done are kept."""
    pool = root / f"pool-{FORMAT_VERSION}-{WIDTH}x{HEIGHT}-seed{seed}"
    for sub in ("jpg", "png", "json", "done"):
        (pool / sub).mkdir(parents=True, exist_ok=True)
    todo = [(a, b) for a, b in _chunks(n) if not (pool / "done" / f"{a}").exists()]
    if todo:
        print(f"  generating {sum(b - a for a, b in todo)} images and Cityscapes files in {pool} ...", flush=True)
        with ProcessPoolExecutor(workers) as executor:
            for future in [executor.submit(_pool_chunk, str(pool), seed, a, b) for a, b in todo]:
                future.result()
    return pool


def _complete(pool: Path, batch: Path) -> Path:
    """The marker of a finished batch, kept outside it so ingest does not list it."""
    return pool / "done" / f"{batch.name}.complete"


def _fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _write_coco_batch(pool: Path, n: int, seed: int, workers: int) -> Path:
    batch = pool / f"coco-{n}"
    if _complete(pool, batch).exists():
        return batch
    print(f"  writing {batch} ...", flush=True)
    images = _fresh(batch) / "images"
    images.mkdir()
    for index in range(n):
        os.link(pool / "jpg" / coco_file_name(index), images / coco_file_name(index))
    (batch / "batch.json").write_bytes(orjson.dumps({"source": "bench"}))
    image_docs = [{"id": i, "file_name": coco_file_name(i), "width": WIDTH, "height": HEIGHT} for i in range(n)]
    with open(batch / "instances.json", "wb") as out, ProcessPoolExecutor(workers) as executor:
        out.write(b'{"info":{"description":"segpipe ingest bench"},"licenses":[],"images":')
        out.write(orjson.dumps(image_docs))
        out.write(b',"annotations":[')
        futures = [executor.submit(_coco_chunk, seed, a, b) for a, b in _chunks(n)]
        for number, future in enumerate(futures):
            if number:
                out.write(b",")
            out.write(future.result())
        out.write(b'],"categories":')
        out.write(orjson.dumps(COCO_CATEGORIES))
        out.write(b"}")
    _complete(pool, batch).touch()
    return batch


def _write_cityscapes_batch(pool: Path, n: int) -> Path:
    batch = pool / f"cityscapes-{n}"
    if _complete(pool, batch).exists():
        return batch
    print(f"  writing {batch} ...", flush=True)
    _fresh(batch)
    for index in range(n):
        city, stem = city_stem(index)
        for kind, sub, suffix in (("gtFine", "json", "_gtFine_polygons.json"), ("leftImg8bit", "png", "_leftImg8bit.png")):
            folder = batch / kind / "train" / city
            folder.mkdir(parents=True, exist_ok=True)
            os.link(pool / sub / f"{stem}{suffix}", folder / f"{stem}{suffix}")
    (batch / "batch.json").write_bytes(orjson.dumps({"source": "bench"}))
    _complete(pool, batch).touch()
    return batch


def ensure_batches(root: Path, sizes: list[int], seed: int = SEED, workers: int | None = None) -> dict[tuple[str, int], Path]:
    """{("coco"|"cityscapes", n): batch folder} for every n in sizes, generated where missing."""
    workers = workers or os.cpu_count() or 1
    pool = _ensure_pool(root, max(sizes), seed, workers)
    batches: dict[tuple[str, int], Path] = {}
    for n in sizes:
        batches["coco", n] = _write_coco_batch(pool, n, seed, workers)
        batches["cityscapes", n] = _write_cityscapes_batch(pool, n)
    return batches


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
