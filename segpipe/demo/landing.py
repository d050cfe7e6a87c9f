"""Assemble the demo project: vendor batches, metadata, planted defects, ground truth, and the
demo's own pipeline.yaml and taxonomy.yaml (config/), which fit its vocabularies and metadata.

Every random choice comes from its own numpy sub-stream keyed by (seed, purpose,
ids), so a scene's geometry or an annotator's strokes do not shift when other
parts change, and the same arguments give byte-identical files.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import orjson
from PIL import Image

from segpipe.demo.annotators import ANNOTATORS, SMALL_OBJECTS, annotate
from segpipe.demo.exports import AnnotatedImage, Category, coco_instances_json, coco_results_json, cvat_images_xml
from segpipe.demo.scenes import CLASSES, TIMES_OF_DAY, WEATHERS, Shape, build_scene, render_scene
from segpipe.environment import PIPELINE_FILE, TAXONOMY_FILE

DEMO_CONFIG = Path(__file__).parent / "config"
MIN_SCENES = 16  # below this the roles (honeypots, overlaps, defects) no longer all fit
JPEG_QUALITY = 90
CVAT = "cvat_images_1.1"
COCO = "coco_instances"
COCO_RESULTS = "coco_results"
MODEL = {"name": "segnet", "version": "2026-11"}  # the demo's model batch
MODEL_SHARE = 0.2  # of the scenes people labelled, those the model pre-labels too (and every honeypot)

VOCABULARIES: dict[str, dict[str, str]] = {
    source: dict(zip(CLASSES, names, strict=True))
    for source, names in (
        ("vendor_a", ("Road", "Sidewalk", "Building", "Pole", "Traffic Sign", "Vegetation", "Sky", "Person", "Car")),
        (
            "vendor_b",
            ("road surface", "pavement", "building", "pole", "sign", "tree", "sky", "pedestrian", "automobile"),
        ),
        (
            "vendor_c",
            (
                "flat.road",
                "flat.sidewalk",
                "construction.building",
                "object.pole",
                "object.traffic_sign",
                "nature.vegetation",
                "nature.sky",
                "human.person",
                "vehicle.car",
            ),
        ),
        ("gold", CLASSES),
        ("model", CLASSES),
    )
}
# Cityscapes colours, as CVAT lists them in <meta>.
LABEL_COLOURS = dict(
    zip(
        CLASSES,
        ("#804080", "#f423e8", "#464646", "#999999", "#dcdc00", "#6b8e23", "#4682b4", "#dc143c", "#00008e"),
        strict=True,
    )
)
SUPERCATEGORIES = dict(
    zip(CLASSES, ("flat", "flat", "construction", "object", "object", "nature", "sky", "human", "vehicle"), strict=True)
)
# Non-contiguous COCO ids so readers cannot confuse a category id with a class index.
COCO_CATEGORY_IDS = (1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144)
UNMAPPED_LABEL = "fire hydrant"
DISTORTED_LABEL = "car"  # the class whose outlines the polygon defects distort (crossed, runaway)

CAMERAS = ("cam_front_a", "cam_front_b", "cam_wide_c")
CITIES = ("berlin", "munich", "zurich", "paris", "lyon")
TIME_OF_DAY_WEIGHTS = (0.6, 0.25, 0.15)
WEATHER_WEIGHTS = (0.6, 0.25, 0.15)
SUBFOLDER_SOURCES = frozenset({"vendor_b"})  # file_name = "<sequence_id>/scene_NNNNN.jpg"

# Sub-stream purposes.
_METADATA, _ROLES, _GEOMETRY, _RENDER, _ANNOTATION, _EXPORT = range(6)


@dataclass(frozen=True)
class BatchSpec:
    batch_id: str
    format: str
    annotator: str
    source: str

    @property
    def gold(self) -> bool:
        return self.annotator == "gold"

    @property
    def annotation_file(self) -> str:
        return {CVAT: "annotations.xml", COCO_RESULTS: "results.json"}.get(self.format, "annotations.json")


BATCHES = (
    BatchSpec("b000_gold", COCO, "gold", "gold"),
    BatchSpec("b001_vendor_a_alice", CVAT, "alice", "vendor_a"),
    BatchSpec("b002_vendor_b_bob", COCO, "bob", "vendor_b"),
    BatchSpec("b003_vendor_c_carol", CVAT, "carol", "vendor_c"),
    BatchSpec("b004_model_segnet", COCO_RESULTS, "segnet", "model"),
)
# Each defect is planted on a scene only that batch's annotator sees, so it lives in one batch.
DEFECT_BATCHES = {
    "corrupt_image": "b001_vendor_a_alice",
    "size_mismatch": "b002_vendor_b_bob",
    "non_finite_coordinates": "b001_vendor_a_alice",
    "unmapped_label": "b002_vendor_b_bob",
    "duplicate_image": "b001_vendor_a_alice",
    "self_intersecting_polygon": "b002_vendor_b_bob",
    "oversized_instance": "b002_vendor_b_bob",
}


@dataclass(frozen=True)
class DemoSummary:
    landing_root: Path
    ground_truth_path: Path
    n_scenes: int
    batch_ids: list[str]
    pipeline_path: Path
    taxonomy_path: Path


@dataclass(frozen=True)
class SceneMeta:
    camera: str
    city: str
    time_of_day: str
    weather: str
    sequence_id: str


@dataclass(frozen=True)
class Roles:
    """Which scenes each annotator sees, and where the defects go."""

    honeypots: tuple[int, ...]
    scenes: dict[str, tuple[int, ...]]  # annotator -> sorted scene indices
    defects: dict[str, int]  # defect kind -> scene index


@dataclass(frozen=True)
class _Demo:
    seed: int
    width: int
    height: int
    metas: list[SceneMeta]
    truths: list[tuple[Shape, ...]]
    photos: list[bytes]
    roles: Roles


@dataclass(frozen=True)
class _Entry:
    """One image file of a batch with what it says about it."""

    file_name: str
    photo: bytes
    shapes: tuple[Shape, ...]
    meta: SceneMeta


def generate_demo(
    out_dir: Path, n_scenes: int = 120, width: int = 1024, height: int = 512, seed: int = 0
) -> DemoSummary:
    """Write <out_dir>/landing/<batch_id>/..., <out_dir>/ground_truth.json and the demo's configuration,
    <out_dir>/pipeline.yaml and <out_dir>/taxonomy.yaml, which a build in that project folder reads."""
    if n_scenes < MIN_SCENES:
        raise ValueError(f"n_scenes must be at least {MIN_SCENES}, got {n_scenes}")
    metas = _scene_metadata(_stream(seed, _METADATA), n_scenes)
    truths = [build_scene(i, _stream(seed, _GEOMETRY, i), width, height) for i in range(n_scenes)]
    photos = [
        _jpeg(render_scene(truth, width, height, meta.time_of_day, meta.weather, _stream(seed, _RENDER, i)))
        for i, (truth, meta) in enumerate(zip(truths, metas, strict=True))
    ]
    demo = _Demo(seed, width, height, metas, truths, photos, _assign_roles(_stream(seed, _ROLES), n_scenes))
    landing = Path(out_dir) / "landing"
    files: dict[str, list[str]] = {}
    for position, spec in enumerate(BATCHES):
        entries = _entries(spec, demo)
        _write_batch(landing / spec.batch_id, spec, entries, demo, _stream(seed, _EXPORT, position))
        files[spec.batch_id] = [entry.file_name for entry in entries]
    ground_truth = Path(out_dir) / "ground_truth.json"
    ground_truth.write_bytes(_dump(_ground_truth(demo, files)))
    config = {name: Path(out_dir) / name for name in (PIPELINE_FILE, TAXONOMY_FILE)}
    for name, path in config.items():
        shutil.copyfile(DEMO_CONFIG / name, path)
    return DemoSummary(landing, ground_truth, n_scenes, [spec.batch_id for spec in BATCHES], config[PIPELINE_FILE],
                       config[TAXONOMY_FILE])


def _stream(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _dump(document: dict) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def scene_file_name(index: int) -> str:
    """The bare name a scene's image has in every batch."""
    return f"scene_{index:05d}.jpg"


def _batch_file_name(spec: BatchSpec, index: int, meta: SceneMeta) -> str:
    """file_name relative to images_dir; some sources file images per sequence."""
    name = scene_file_name(index)
    return f"{meta.sequence_id}/{name}" if spec.source in SUBFOLDER_SOURCES else name


def _scene_metadata(rng: np.random.Generator, n_scenes: int) -> list[SceneMeta]:
    """Sequences of 3-6 consecutive scenes sharing camera, city, light and weather."""
    metas: list[SceneMeta] = []
    remaining, sequence = n_scenes, 0
    while remaining:
        if remaining <= 6:
            length = remaining
        else:  # never leave a tail of 1 or 2 scenes
            length = int(rng.choice([n for n in range(3, 7) if remaining - n not in (1, 2)]))
        meta = SceneMeta(
            camera=str(rng.choice(CAMERAS)),
            city=str(rng.choice(CITIES)),
            time_of_day=str(rng.choice(TIMES_OF_DAY, p=TIME_OF_DAY_WEIGHTS)),
            weather=str(rng.choice(WEATHERS, p=WEATHER_WEIGHTS)),
            sequence_id=f"seq_{sequence:04d}",
        )
        metas += [meta] * length
        remaining, sequence = remaining - length, sequence + 1
    return metas


def _pick(rng: np.random.Generator, pool: list[int], k: int) -> list[int]:
    """k distinct scenes of the pool, in the order drawn."""
    return [pool[i] for i in rng.choice(len(pool), size=k, replace=False)]


def _assign_roles(rng: np.random.Generator, n_scenes: int) -> Roles:
    """Split scenes between annotators in proportion to n, with overlaps and defect slots."""
    half = n_scenes // 2
    n_honeypots = max(3, round(0.05 * n_scenes))
    n_alice_bob = max(2, round(0.10 * n_scenes))
    n_carol = max(3, round(0.20 * n_scenes))
    # One honeypot per stratum spreads them over both halves.
    bounds = np.linspace(0, n_scenes, n_honeypots + 1).round().astype(int)
    honeypots = sorted(int(rng.integers(lo, hi)) for lo, hi in itertools.pairwise(bounds))
    first = [i for i in range(half) if i not in honeypots]
    second = [i for i in range(half, n_scenes) if i not in honeypots]
    alice_bob = _pick(rng, first, n_alice_bob)
    n_triple = max(1, n_carol // 3)
    n_alice_carol = (n_carol - n_triple) // 2
    carol = (
        _pick(rng, alice_bob, n_triple)
        + _pick(rng, [i for i in first if i not in alice_bob], n_alice_carol)
        + _pick(rng, second, n_carol - n_triple - n_alice_carol)
    )
    alice_only = [i for i in first if i not in alice_bob and i not in carol]
    bob_only = [i for i in second if i not in carol]
    corrupt, non_finite, duplicate = _pick(rng, alice_only, 3)
    size_mismatch, unmapped = _pick(rng, bob_only, 2)
    (crossed,) = _pick(rng, [i for i in bob_only if i not in (size_mismatch, unmapped)], 1)
    (oversized,) = _pick(rng, [i for i in bob_only if i not in (size_mismatch, unmapped, crossed)], 1)
    defects = (corrupt, non_finite, duplicate, size_mismatch, unmapped, crossed, oversized)
    labelled = [i for i in range(n_scenes) if i not in honeypots and i not in defects]
    model = _pick(rng, labelled, round(MODEL_SHARE * len(labelled)))  # drawn last: no other role moves
    return Roles(
        honeypots=tuple(honeypots),
        scenes={
            "gold": tuple(honeypots),
            "alice": tuple(sorted({*range(half), *honeypots})),
            "bob": tuple(sorted({*range(half, n_scenes), *alice_bob, *honeypots})),
            "carol": tuple(sorted({*carol, *honeypots})),
            "segnet": tuple(sorted({*model, *honeypots})),
        },
        defects={
            "corrupt_image": corrupt,
            "size_mismatch": size_mismatch,
            "non_finite_coordinates": non_finite,
            "unmapped_label": unmapped,
            "duplicate_image": duplicate,
            "self_intersecting_polygon": crossed,
            "oversized_instance": oversized,
        },
    )


def _entries(spec: BatchSpec, demo: _Demo) -> list[_Entry]:
    """The batch's image files, defects planted, sorted by file name."""
    vocabulary = VOCABULARIES[spec.source]
    defects = {scene: kind for kind, scene in demo.roles.defects.items()}
    annotator_key = list(ANNOTATORS).index(spec.annotator)
    entries = []
    for index in demo.roles.scenes[spec.annotator]:
        meta = demo.metas[index]
        rng = _stream(demo.seed, _ANNOTATION, annotator_key, index)
        shapes = annotate(ANNOTATORS[spec.annotator], demo.truths[index], demo.width, rng)
        defect = defects.get(index)
        if defect == "non_finite_coordinates":
            shapes = _with_nan_vertex(shapes)
        if defect == "self_intersecting_polygon":
            shapes = _with_crossed_outline(shapes)
        if defect == "oversized_instance":
            shapes = _with_runaway_outline(shapes, demo.width, demo.height)
        shapes = tuple(replace(shape, label=vocabulary[shape.label]) for shape in shapes)
        if defect == "unmapped_label":
            shapes += (_fire_hydrant(demo.width, demo.height),)
        photo = demo.photos[index]
        if defect == "corrupt_image":
            photo = photo[: len(photo) * 6 // 10]
        elif defect == "size_mismatch":
            photo = _shrunk(photo)
        name = _batch_file_name(spec, index, meta)
        entries.append(_Entry(name, photo, shapes, meta))
        if defect == "duplicate_image":
            entries.append(_Entry(name.replace(".jpg", "_copy.jpg"), photo, shapes, meta))
    return sorted(entries, key=lambda entry: entry.file_name)


def _with_nan_vertex(shapes: tuple[Shape, ...]) -> tuple[Shape, ...]:
    """The road's first vertex gets x = nan, as a broken export tool writes it."""
    road = next(i for i, shape in enumerate(shapes) if shape.label == "road")
    (_, y), *rest = shapes[road].rings[0]
    rings = (((math.nan, y), *rest), *shapes[road].rings[1:])
    return (*shapes[:road], replace(shapes[road], rings=rings), *shapes[road + 1 :])


def _with_crossed_outline(shapes: tuple[Shape, ...]) -> tuple[Shape, ...]:
    """The first car's first vertex swapped with the one halfway round its outline, as a slip of the
    annotation tool: the two long edges that result cross the outline."""
    car = next(i for i, shape in enumerate(shapes) if shape.label == DISTORTED_LABEL and len(shapes[i].rings[0]) >= 4)
    ring = list(shapes[car].rings[0])
    half = len(ring) // 2
    ring[0], ring[half] = ring[half], ring[0]
    rings = (tuple(ring), *shapes[car].rings[1:])
    return (*shapes[:car], replace(shapes[car], rings=rings), *shapes[car + 1 :])


def _with_runaway_outline(shapes: tuple[Shape, ...], width: int, height: int) -> tuple[Shape, ...]:
    """The first car's outline dragged across most of the lower frame, as when a vertex handle runs
    away: a car far larger than any other, painted over the street."""
    car = next(i for i, shape in enumerate(shapes) if shape.label == DISTORTED_LABEL)
    left, right, top, bottom = 0.02 * width, 0.98 * width, 0.35 * height, 0.98 * height
    ring = ((left, top), (right, top), (right, bottom), (left, bottom))
    return (*shapes[:car], replace(shapes[car], rings=(ring,)), *shapes[car + 1 :])


def _fire_hydrant(width: int, height: int) -> Shape:
    """A small object on the left sidewalk whose label no taxonomy maps."""
    x, bottom, broad, tall = 0.05 * width, 0.97 * height, 0.03 * width, 0.08 * height
    ring = (
        (x - broad / 2, bottom),
        (x - broad / 2, bottom - 0.8 * tall),
        (x - broad / 4, bottom - tall),
        (x + broad / 4, bottom - tall),
        (x + broad / 2, bottom - 0.8 * tall),
        (x + broad / 2, bottom),
    )
    return Shape(UNMAPPED_LABEL, (ring,), 3)


def _shrunk(photo: bytes) -> bytes:
    """The photo resized to 0.9x, while the annotation keeps the original size."""
    with Image.open(io.BytesIO(photo)) as image:
        size = (round(image.width * 0.9), round(image.height * 0.9))
        return _jpeg(image.resize(size, Image.Resampling.BILINEAR))


def _write_batch(
    directory: Path, spec: BatchSpec, entries: list[_Entry], demo: _Demo, rng: np.random.Generator
) -> None:
    """Images, annotations and metadata first; batch.json last, as the ready marker."""
    if directory.exists():
        shutil.rmtree(directory)
    for entry in entries:
        path = directory / "images" / entry.file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(entry.photo)
    images = [AnnotatedImage(entry.file_name, demo.width, demo.height, entry.shapes) for entry in entries]
    vocabulary = VOCABULARIES[spec.source]
    if spec.format == COCO_RESULTS:
        categories = _categories(vocabulary, entries, rng)
        # Large regions are predicted surely; small objects less so, and some fall below the threshold.
        scores = [[rng.uniform(0.35, 0.99) if shape.label in {vocabulary[c] for c in SMALL_OBJECTS}
                   else rng.uniform(0.85, 0.99) for shape in image.shapes] for image in images]
        (directory / "instances.json").write_bytes(coco_instances_json(spec.source, categories, [
            replace(image, shapes=()) for image in images]))
        annotation = coco_results_json(categories, images, scores)
    elif spec.format == CVAT:
        # Shuffled, so readers must match labels by name, not position.
        labels = [(vocabulary[CLASSES[i]], LABEL_COLOURS[CLASSES[i]]) for i in rng.permutation(len(CLASSES))]
        annotation = cvat_images_xml(spec.batch_id, labels, images)
    else:
        annotation = coco_instances_json(spec.source, _categories(vocabulary, entries, rng), images)
    (directory / spec.annotation_file).write_bytes(annotation)
    (directory / "metadata.csv").write_bytes(_metadata_csv(entries))
    batch = {
        "batch_id": spec.batch_id,
        "format": spec.format,
        "annotation_file": spec.annotation_file,
        "images_dir": "images",
        "metadata_file": "metadata.csv",
        "annotator": spec.annotator,
        "source": spec.source,
        "gold": spec.gold,
    }
    if spec.format == COCO_RESULTS:
        del batch["annotation_file"], batch["annotator"], batch["gold"]
        batch.update(kind="model", model=MODEL)
    (directory / "batch.json").write_bytes(_dump(batch))


def _categories(vocabulary: dict[str, str], entries: list[_Entry], rng: np.random.Generator) -> list[Category]:
    """Shuffled non-contiguous ids for the vocabulary, then any label outside it (the unmapped defect)."""
    ids = [int(i) for i in rng.permutation(COCO_CATEGORY_IDS[: len(CLASSES)])]
    categories = [
        Category(category_id, vocabulary[name], SUPERCATEGORIES[name])
        for category_id, name in zip(ids, CLASSES, strict=True)
    ]
    known = set(vocabulary.values())
    extra = sorted({shape.label for entry in entries for shape in entry.shapes} - known)
    return categories + [
        Category(category_id, label, "object")
        for category_id, label in zip(COCO_CATEGORY_IDS[len(CLASSES) :], extra, strict=False)
    ]


def _metadata_csv(entries: list[_Entry]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file_name", "camera", "city", "time_of_day", "weather", "sequence_id"])
    for entry in entries:
        m = entry.meta
        writer.writerow([entry.file_name, m.camera, m.city, m.time_of_day, m.weather, m.sequence_id])
    return out.getvalue().encode()


def _ground_truth(demo: _Demo, files: dict[str, list[str]]) -> dict:
    roles = demo.roles
    shared: dict[str, list[str]] = {}
    for index in sorted({i for scenes in roles.scenes.values() for i in scenes} - set(roles.honeypots)):
        annotators = [name for name in ("alice", "bob", "carol") if index in roles.scenes[name]]
        if len(annotators) >= 2:
            shared[scene_file_name(index)] = annotators
    specs = {spec.batch_id: spec for spec in BATCHES}
    defects = []
    for kind, index in roles.defects.items():
        batch_id = DEFECT_BATCHES[kind]
        name = _batch_file_name(specs[batch_id], index, demo.metas[index])
        defect = {"kind": kind, "batch_id": batch_id, "file_name": name}
        if kind == "unmapped_label":
            defect["label"] = UNMAPPED_LABEL
        elif kind in ("self_intersecting_polygon", "oversized_instance"):
            defect["label"] = VOCABULARIES[specs[batch_id].source][DISTORTED_LABEL]
        elif kind == "duplicate_image":
            defect["file_name"] = name.replace(".jpg", "_copy.jpg")
            defect["duplicate_of"] = name
        defects.append(defect)
    return {
        "seed": demo.seed,
        "n_scenes": len(demo.metas),
        "width": demo.width,
        "height": demo.height,
        "classes": [{"id": i, "name": name} for i, name in enumerate(CLASSES)],
        "batches": [
            {
                "batch_id": spec.batch_id,
                "format": spec.format,
                "annotator": spec.annotator,
                "source": spec.source,
                "gold": spec.gold,
                "files": files[spec.batch_id],
            }
            for spec in BATCHES
        ],
        "honeypots": [scene_file_name(i) for i in roles.honeypots],
        "shared": shared,
        "defects": defects,
        "vocabularies": VOCABULARIES,
        "scenes": [{"file_name": scene_file_name(i), **asdict(meta)} for i, meta in enumerate(demo.metas)],
    }
