"""Cityscapes-style polygon files (and a COCO instances file of the same polygons) from the demo streets.

One scene per index, deterministic in (seed, index, width, height):

- the street of `segpipe.demo.scenes.build_scene` (sky, road, sidewalks, facades, ...), plus the
  objects (vegetation, cars, poles, signs, persons) of further demo scenes drawn with the same
  generator, until the scene holds 90-110 objects, as gtFine files do. Objects are painted back to
  front: stuff first, then objects by z_order and farther (smaller foot row) first, then the void
  frame: `ego vehicle` (the bonnet across the bottom, overshooting the frame by a few pixels as
  annotators' clicks do) and `out of roi` (the keyhole frame Cityscapes draws around every image);
- Cityscapes label names: road, sidewalk, building, pole, traffic sign, vegetation, sky, person,
  car; about a quarter of the cars are `cargroup`, some persons `persongroup` and some poles
  `polegroup` (a label of its own, trainId 255: not stripped to `pole`);
- outlines densified like hand-clicked ones (a vertex every ~24 px at 2048 wide, jittered by a
  fraction of a pixel), then rounded to integers as in the released gtFine files (about 3,000
  vertices per 2048x1024 scene);
- with `deleted=True`, some files hold an object marked `"deleted": 1` (a stale copy of a car
  outline, shifted), which every reader must skip;
- with `license_plates=True`, some cars carry a `license plate` (id -1: json2labelImg never paints it).

Files, under `root`:
- `cityscapes/gtFine/train/<city>/<stem>_gtFine_polygons.json`, formatted like the released files
  (indent 4, `", "` separators, keys sorted);
- `cityscapes/leftImg8bit/train/<city>/<stem>_leftImg8bit.png` when `images=True` (a flat colour
  rendering of the labels, unique per scene, which is what ingest needs to accept an entry);
- `coco/instances.json`: one COCO instances file with the same polygons (a multi-part demo object
  is one annotation with several rings; deleted objects are left out), category names = the
  Cityscapes label names, category ids = position in LABELS + 1, coordinates as the same integers.

Used by segpipe_tests/core/test_raster_parity.py (small scenes) and segpipe_tests/bench/rasterize.py
(2048x1024). `python -m segpipe_tests.bench.cityscapes_scenes OUT --count 5` writes a set by hand.
"""

from __future__ import annotations

import argparse
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
from PIL import Image, ImageDraw

from segpipe.demo.scenes import Shape, build_scene

SPLIT = "train"
SCENES_PER_CITY = 100
USER = "segpipe-bench"
DATE = "01-Jan-2026 00:00:00"

# Demo class -> Cityscapes label name.
CITYSCAPES_NAMES = {
    "road": "road", "sidewalk": "sidewalk", "building": "building", "pole": "pole", "traffic_sign": "traffic sign",
    "vegetation": "vegetation", "sky": "sky", "person": "person", "car": "car",
}
# Every label a generated file can hold; COCO category id = position + 1.
LABELS: tuple[str, ...] = (
    "road", "sidewalk", "building", "pole", "polegroup", "traffic sign", "vegetation", "sky", "person",
    "persongroup", "car", "cargroup", "ego vehicle", "out of roi", "license plate",
)
# Flat colours of the stand-in photo (not Cityscapes' palette: any unique rendering will do).
_PHOTO_COLOURS = {label: ((i * 67) % 256, (i * 151 + 40) % 256, (i * 29 + 90) % 256) for i, label in enumerate(LABELS)}
# (probability, group label) per base label.
_GROUPS = {"car": (0.25, "cargroup"), "person": (0.15, "persongroup"), "pole": (0.2, "polegroup")}
_TARGET_OBJECTS = (86, 107)  # objects per scene, voids included, deleted excluded
_EXTRA_Z = 2  # objects of further demo scenes: z_order 2 and up (vegetation, cars, poles, signs, persons)
_SPACING = 24.0  # px between clicked vertices at 2048 wide
_JITTER = 0.35  # px (at 2048 wide), along the edge normal


@dataclass(frozen=True)
class CityObject:
    """One polygon of the file, in document (paint) order."""

    label: str
    polygon: np.ndarray  # (k, 2) int64
    instance: int  # objects cut from one demo shape share it; COCO writes them as one annotation
    deleted: bool = False


@dataclass(frozen=True)
class Scene:
    index: int
    city: str
    stem: str
    width: int
    height: int
    objects: tuple[CityObject, ...]

    @property
    def json_name(self) -> str:
        """Relative to the cityscapes/ folder."""
        return f"gtFine/{SPLIT}/{self.city}/{self.stem}_gtFine_polygons.json"

    @property
    def image_name(self) -> str:
        return f"leftImg8bit/{SPLIT}/{self.city}/{self.stem}_leftImg8bit.png"

    @property
    def coco_file_name(self) -> str:
        return f"{self.city}/{self.stem}_leftImg8bit.png"

    def live(self) -> list[CityObject]:
        return [obj for obj in self.objects if not obj.deleted]


@dataclass(frozen=True)
class Dataset:
    root: Path
    scenes: tuple[Scene, ...]

    @property
    def cityscapes_root(self) -> Path:
        return self.root / "cityscapes"

    @property
    def coco_path(self) -> Path:
        return self.root / "coco" / "instances.json"

    def json_paths(self) -> list[Path]:
        return [self.cityscapes_root / s.json_name for s in self.scenes]

    def image_paths(self) -> list[Path]:
        return [self.cityscapes_root / s.image_name for s in self.scenes]


def city_stem(index: int) -> tuple[str, str]:
    city = f"synth{index // SCENES_PER_CITY:02d}"
    return city, f"{city}_{index:06d}_000019"


def build(seed: int, index: int, width: int = 2048, height: int = 1024, *, deleted: bool = True,
          license_plates: bool = False) -> Scene:
    """The scene with this index; the same arguments always give the same polygons."""
    rng = np.random.default_rng([seed, index, width, height])
    target = int(rng.integers(*_TARGET_OBJECTS)) - 2  # two void objects go on top
    base = list(build_scene(0, rng, width, height))
    stuff = [s for s in base if s.z_order < _EXTRA_Z]
    objects = [s for s in base if s.z_order >= _EXTRA_Z]
    part = 1
    while len(stuff) + len(objects) < target:
        objects += [s for s in build_scene(part, rng, width, height) if s.z_order >= _EXTRA_Z]
        part += 1
    objects = objects[: max(0, target - len(stuff))]
    objects.sort(key=lambda s: (s.z_order, max(y for ring in s.rings for _, y in ring)))  # stable: far first
    scale = width / 2048
    out: list[CityObject] = []
    for instance, shape in enumerate(stuff + objects):
        label = _label(rng, shape)
        for ring in shape.rings:
            polygon = _clicked(rng, ring, scale)
            if polygon is not None:
                out.append(CityObject(label, polygon, instance))
        if license_plates and shape.label == "car" and rng.random() < 0.5:
            out.append(CityObject("license plate", _plate(shape, scale), instance + 10_000))
    if deleted and rng.random() < 0.6:  # a stale, shifted copy of a car, deleted in the tool
        cars = [i for i, obj in enumerate(out) if obj.label in ("car", "cargroup")]
        if cars:
            at = cars[int(rng.integers(len(cars)))]
            shift = np.rint(rng.uniform(-20, 20, 2) * scale).astype(np.int64)
            out.insert(at + 1, CityObject(out[at].label, out[at].polygon + shift, -1, deleted=True))
    out += [
        CityObject("ego vehicle", _ego_vehicle(rng, width, height), 20_000),
        CityObject("out of roi", _out_of_roi(width, height), 20_001),
    ]
    city, stem = city_stem(index)
    return Scene(index, city, stem, width, height, tuple(out))


def _label(rng: np.random.Generator, shape: Shape) -> str:
    name = CITYSCAPES_NAMES[shape.label]
    chance, group = _GROUPS.get(shape.label, (0.0, ""))
    return group if chance and rng.random() < chance else name


def _clicked(rng: np.random.Generator, ring, scale: float) -> np.ndarray | None:
    """The ring with a vertex every ~_SPACING px, jittered across the edge, rounded to integers."""
    points = np.asarray(ring, dtype=np.float64)
    spacing, jitter = _SPACING * scale, _JITTER * scale
    parts = []
    for a, b in zip(points, np.roll(points, -1, axis=0), strict=True):
        edge = b - a
        length = float(np.hypot(*edge))
        steps = max(1, math.ceil(length / spacing))
        t = np.arange(steps)[:, None] / steps
        inner = a + t * edge
        if steps > 1 and length > 0:
            normal = np.array((-edge[1], edge[0])) / length
            inner[1:] += normal * rng.uniform(-jitter, jitter, (steps - 1, 1))
        parts.append(inner)
    rounded = np.rint(np.concatenate(parts)).astype(np.int64)
    keep = np.any(rounded != np.roll(rounded, 1, axis=0), axis=1)
    rounded = rounded[keep]
    return rounded if len(rounded) >= 3 else None


def _plate(car: Shape, scale: float) -> np.ndarray:
    """A small rectangle at the bottom of the car's first ring."""
    ring = np.asarray(car.rings[0])
    x0, x1, bottom = ring[:, 0].min(), ring[:, 0].max(), ring[:, 1].max()
    cx, half_w, tall = (x0 + x1) / 2, max(2.0, 0.08 * (x1 - x0)), max(2.0, 12 * scale)
    corners = ((cx - half_w, bottom - 2 * tall), (cx + half_w, bottom - 2 * tall), (cx + half_w, bottom - tall),
               (cx - half_w, bottom - tall))
    return np.rint(np.asarray(corners)).astype(np.int64)


def _ego_vehicle(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """The bonnet: an arc across the bottom rows, its lower corners a few pixels outside the frame."""
    over = max(1, round(3 * width / 2048))
    top = height * rng.uniform(0.86, 0.92)
    xs = np.linspace(0, width - 1, 41)
    ys = top + (height * 0.06) * ((xs - width / 2) / (width / 2)) ** 2
    arc = np.stack((xs, ys), axis=1)
    frame = np.array([(width - 1 + over, height - 1 + over), (-over, height - 1 + over)], dtype=np.float64)
    return np.rint(np.concatenate((arc, frame))).astype(np.int64)


def _out_of_roi(width: int, height: int) -> np.ndarray:
    """The keyhole frame: the image border and, reached through a zero-width cut, a ring a few pixels in."""
    m, right, bottom, cut = max(2, round(5 * width / 2048)), width - 1, height - 1, height // 2
    return np.array([
        (0, 0), (right, 0), (right, bottom), (0, bottom), (0, cut), (m, cut), (m, bottom - m),
        (right - m, bottom - m), (right - m, m), (m, m), (m, cut), (0, cut),
    ], dtype=np.int64)


# --- file writers -----------------------------------------------------------------------------


def cityscapes_json(scene: Scene) -> bytes:
    """The gtFine polygons file, formatted as the released files are."""
    objects = [
        {"date": DATE, "deleted": int(obj.deleted), "id": number, "label": obj.label,
         "polygon": obj.polygon.tolist(), "user": USER, "verified": 0}
        for number, obj in enumerate(scene.objects)
    ]
    doc = {"imgHeight": scene.height, "imgWidth": scene.width, "objects": objects}
    return json.dumps(doc, indent=4, separators=(", ", ": "), sort_keys=True).encode()


def coco_instances(scenes: list[Scene] | tuple[Scene, ...]) -> bytes:
    """One COCO instances file of the same polygons, annotations in each file's paint order."""
    images, annotations = [], []
    for image_id, scene in enumerate(scenes, start=1):
        images.append({"id": image_id, "file_name": scene.coco_file_name, "width": scene.width, "height": scene.height})
        grouped: list[list[CityObject]] = []
        for obj in scene.live():
            if grouped and grouped[-1][0].instance == obj.instance:
                grouped[-1].append(obj)
            else:
                grouped.append([obj])
        for parts in grouped:
            xs = np.concatenate([p.polygon[:, 0] for p in parts])
            ys = np.concatenate([p.polygon[:, 1] for p in parts])
            x0, y0 = int(xs.min()), int(ys.min())
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": LABELS.index(parts[0].label) + 1,
                "segmentation": [p.polygon.ravel().tolist() for p in parts],
                "area": float(sum(_shoelace(p.polygon) for p in parts)),
                "bbox": [x0, y0, int(xs.max()) - x0, int(ys.max()) - y0], "iscrowd": 0,
            })
    categories = [{"id": i + 1, "name": name, "supercategory": "cityscapes"} for i, name in enumerate(LABELS)]
    return orjson.dumps({"info": {"description": "segpipe synthetic Cityscapes-style scenes"}, "licenses": [],
                         "images": images, "annotations": annotations, "categories": categories})


def _shoelace(polygon: np.ndarray) -> float:
    x, y = polygon[:, 0].astype(np.float64), polygon[:, 1].astype(np.float64)
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def photo_png(scene: Scene) -> bytes:
    """A stand-in leftImg8bit image: the live polygons in flat colours (unique per scene)."""
    image = Image.new("RGB", (scene.width, scene.height), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    for obj in scene.live():
        draw.polygon([tuple(p) for p in obj.polygon.tolist()], fill=_PHOTO_COLOURS[obj.label])
    draw.text((10, 10), scene.stem, fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def write_dataset(root: Path, count: int, width: int = 2048, height: int = 1024, seed: int = 0, *,
                  images: bool = False, deleted: bool = True, license_plates: bool = False,
                  first_index: int = 0) -> Dataset:
    """Write scenes first_index..first_index+count-1 under root (see the module docstring for the layout)."""
    scenes = tuple(build(seed, index, width, height, deleted=deleted, license_plates=license_plates)
                   for index in range(first_index, first_index + count))
    dataset = Dataset(Path(root), scenes)
    for scene in scenes:
        path = dataset.cityscapes_root / scene.json_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(cityscapes_json(scene))
        if images:
            image = dataset.cityscapes_root / scene.image_name
            image.parent.mkdir(parents=True, exist_ok=True)
            image.write_bytes(photo_png(scene))
    dataset.coco_path.parent.mkdir(parents=True, exist_ok=True)
    dataset.coco_path.write_bytes(coco_instances(scenes))
    return dataset


def stats(scenes: list[Scene] | tuple[Scene, ...]) -> dict:
    """Objects and vertices per scene (deleted objects included, as they are in the files)."""
    objects = [len(s.objects) for s in scenes]
    vertices = [sum(len(o.polygon) for o in s.objects) for s in scenes]
    return {"scenes": len(scenes), "objects_median": float(np.median(objects)), "objects_range": [min(objects), max(objects)],
            "vertices_median": float(np.median(vertices))}


# --- the reference tools' rules, shared by the parity test and the bench ----------------------


def train_id(label: str) -> int | None:
    """The value json2labelImg(..., "trainIds") paints for a label, or None when it skips it: an
    unknown label ending in `group` loses the suffix, a label with a negative id is not drawn."""
    from cityscapesscripts.helpers.labels import name2label

    if label not in name2label and label.endswith("group"):
        label = label[: -len("group")]
    found = name2label[label]  # json2labelImg exits on an unknown label; a KeyError is as loud
    return None if found.id < 0 else found.trainId


PRESET = "presets/cityscapes.yaml"  # under segpipe's package config


def labels_py_taxonomy():
    """The trainIds taxonomy written out from cityscapesscripts' labels.py: the 19 train labels as
    classes at their trainId, every other label `void` (painted 255 in its place), labels with a
    negative id `skip` (never painted), and each `<label>group` json2labelImg would strip."""
    import yaml
    from cityscapesscripts.helpers.labels import labels, name2label

    from segpipe.core.taxonomy.model import parse_taxonomy

    trained = [label for label in labels if 0 <= label.trainId < 255]
    rules = [{"label": label.name, "to": label.name if label in trained else ("skip" if label.id < 0 else "void")}
             for label in labels]
    rules += [{"label": label.name + "group", "to": label.name if label in trained else "void"}
              for label in labels if label.id >= 0 and label.name + "group" not in name2label]
    doc = {
        "name": "cityscapes-labels-py", "version": 1, "ignore_index": name2label["unlabeled"].trainId,
        "unmapped": "error",
        "classes": [{"id": label.trainId, "name": label.name, "color": list(label.color)} for label in trained],
        "mappings": {"cityscapes": rules},
    }
    return parse_taxonomy(yaml.safe_dump(doc, sort_keys=False), "cityscapesscripts labels.py")


def cityscapes_taxonomy():
    """(taxonomy, where it came from, mapping source for Cityscapes label names): the preset
    segpipe/config/presets/cityscapes.yaml when it exists and loads, else labels_py_taxonomy()."""
    from segpipe.core.shared.errors import ConfigError
    from segpipe.core.taxonomy.model import load_taxonomy
    from segpipe.environment import PACKAGE_CONFIG

    taxonomy, origin = None, "cityscapesscripts labels.py (built by segpipe_tests)"
    if (PACKAGE_CONFIG / PRESET).exists():
        try:
            taxonomy, origin = load_taxonomy(PACKAGE_CONFIG / PRESET), str(PACKAGE_CONFIG / PRESET)
        except ConfigError:
            pass
    taxonomy = taxonomy or labels_py_taxonomy()
    key = "cityscapes" if "cityscapes" in taxonomy.mappings else next(iter(taxonomy.mappings))
    return taxonomy, origin, key


def pycocotools_mask(annotations: list[dict], category_names: dict[int, str], width: int, height: int,
                     background: int = 255, bbox_only: bool = False) -> np.ndarray:
    """COCO tooling's mask of one image: per annotation in file order, frPyObjects + merge + decode
    (annToMask), then `label[m > 0] = trainId` over the whole frame (painter's order). With
    `bbox_only` the assignment is limited to the RLE's bounding box: the same pixels, 4x faster."""
    from pycocotools import mask as coco_mask

    label = np.full((height, width), background, dtype=np.uint8)
    for annotation in annotations:
        value = train_id(category_names[annotation["category_id"]])
        if value is None:
            continue
        rle = coco_mask.merge(coco_mask.frPyObjects(annotation["segmentation"], height, width))
        binary = coco_mask.decode(rle)
        if bbox_only:
            x, y, w, h = (int(v) for v in coco_mask.toBbox(rle))
            window = label[y:y + h + 1, x:x + w + 1]
            window[binary[y:y + h + 1, x:x + w + 1] > 0] = value
        else:
            label[binary > 0] = value
    return label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", action="store_true")
    parser.add_argument("--license-plates", action="store_true")
    args = parser.parse_args()
    dataset = write_dataset(args.root, args.count, args.width, args.height, args.seed, images=args.images,
                            license_plates=args.license_plates)
    print(orjson.dumps(stats(dataset.scenes)).decode())


if __name__ == "__main__":
    main()
