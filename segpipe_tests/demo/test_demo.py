"""The demo generator: deterministic, complete batches, real formats, planted defects, honest pixels."""

from __future__ import annotations

import csv
import itertools
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import orjson
import pytest
from PIL import Image, ImageDraw

from segpipe.demo import DEMO_CONFIG, DemoSummary, generate_demo
from segpipe.demo.annotators import ANNOTATORS, annotate
from segpipe.demo.scenes import CLASS_IDS, build_scene, palette_under
from segpipe.environment import current_environment

N_SCENES, WIDTH, HEIGHT = 16, 256, 128
BATCH_KEYS = {
    "batch_id",
    "format",
    "annotation_file",
    "images_dir",
    "metadata_file",
    "annotator",
    "source",
    "gold",
}
# A model batch names its model instead of an annotator, is never gold, and is read as the format finds its files.
MODEL_BATCH_KEYS = BATCH_KEYS - {"annotation_file", "annotator", "gold"} | {"kind", "model"}
MODEL_BATCH = "b004_model_segnet"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    return generate_demo(tmp_path_factory.mktemp("demo"), n_scenes=N_SCENES, width=WIDTH, height=HEIGHT)


@pytest.fixture(scope="module")
def truth(demo: DemoSummary) -> dict:
    return orjson.loads(demo.ground_truth_path.read_bytes())


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _image_files(batch_dir: Path) -> list[str]:
    return sorted(p.relative_to(batch_dir / "images").as_posix() for p in (batch_dir / "images").rglob("*.jpg"))


def _batch(truth: dict, batch_id: str) -> dict:
    return next(b for b in truth["batches"] if b["batch_id"] == batch_id)


def _cvat_polygons(batch_dir: Path) -> dict[str, list[dict[str, str]]]:
    root = ET.parse(batch_dir / "annotations.xml").getroot()
    return {image.get("name"): [dict(p.attrib) for p in image.iter("polygon")] for image in root.iter("image")}


def _coco(batch_dir: Path) -> dict:
    return orjson.loads((batch_dir / "annotations.json").read_bytes())


def _defect(truth: dict, kind: str) -> dict:
    (defect,) = [d for d in truth["defects"] if d["kind"] == kind]
    return defect


def _basename(file_name: str) -> str:
    return file_name.rsplit("/", 1)[-1]


def test_summary_points_at_the_files(demo: DemoSummary, truth: dict) -> None:
    assert demo.landing_root.name == "landing"
    assert demo.ground_truth_path == demo.landing_root.parent / "ground_truth.json"
    assert demo.n_scenes == truth["n_scenes"] == N_SCENES
    assert demo.batch_ids == ["b000_gold", "b001_vendor_a_alice", "b002_vendor_b_bob", "b003_vendor_c_carol",
                              MODEL_BATCH]
    assert sorted(p.name for p in demo.landing_root.iterdir()) == demo.batch_ids


def test_the_demo_project_carries_the_demos_configuration_which_the_environment_then_reads(demo: DemoSummary,
                                                                                          monkeypatch) -> None:
    assert demo.pipeline_path == demo.landing_root.parent / "pipeline.yaml"
    assert demo.taxonomy_path == demo.landing_root.parent / "taxonomy.yaml"
    for path in (demo.pipeline_path, demo.taxonomy_path):
        assert path.read_bytes() == (DEMO_CONFIG / path.name).read_bytes()
    monkeypatch.setenv("SEGPIPE_HOME", str(demo.landing_root.parent))
    monkeypatch.delenv("SEGPIPE_TAXONOMY", raising=False)
    monkeypatch.delenv("SEGPIPE_PIPELINE_CONFIG", raising=False)
    env = current_environment()
    assert (env.pipeline_path, env.taxonomy_path, env.landing_root) == (
        demo.pipeline_path, demo.taxonomy_path, str(demo.landing_root))


def test_same_arguments_give_identical_bytes(demo: DemoSummary, tmp_path: Path) -> None:
    generate_demo(tmp_path, n_scenes=N_SCENES, width=WIDTH, height=HEIGHT)
    first, second = _tree(demo.landing_root.parent), _tree(tmp_path)
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []


def test_another_seed_gives_other_scenes(demo: DemoSummary, tmp_path: Path) -> None:
    other = generate_demo(tmp_path, n_scenes=N_SCENES, width=WIDTH, height=HEIGHT, seed=1)
    name = "b000_gold/annotations.json"
    assert (other.landing_root / name).read_bytes() != (demo.landing_root / name).read_bytes()


def test_too_few_scenes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_scenes"):
        generate_demo(tmp_path, n_scenes=8, width=WIDTH, height=HEIGHT)


def test_every_batch_is_complete(demo: DemoSummary, truth: dict) -> None:
    for batch_id in demo.batch_ids:
        batch_dir = demo.landing_root / batch_id
        batch = orjson.loads((batch_dir / "batch.json").read_bytes())
        listed = _batch(truth, batch_id)
        assert batch["batch_id"] == batch_id
        if batch_id == MODEL_BATCH:
            assert set(batch) == MODEL_BATCH_KEYS
            assert (batch["kind"], batch["model"], batch["format"]) == (
                "model", {"name": "segnet", "version": "2026-11"}, "coco_results")
            assert (batch_dir / "results.json").is_file() and (batch_dir / "instances.json").is_file()
        else:
            assert set(batch) == BATCH_KEYS
            assert {k: batch[k] for k in ("format", "annotator", "source", "gold")} == {
                k: listed[k] for k in ("format", "annotator", "source", "gold")
            }
            assert batch["annotation_file"] == (
                "annotations.xml" if batch["format"] == "cvat_images_1.1" else "annotations.json"
            )
            assert (batch_dir / batch["annotation_file"]).is_file()
        with (batch_dir / batch["metadata_file"]).open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert list(rows[0]) == ["file_name", "camera", "city", "time_of_day", "weather", "sequence_id"]
        assert [row["file_name"] for row in rows] == _image_files(batch_dir) == listed["files"]


def test_batches_play_their_roles(truth: dict) -> None:
    files = {b["annotator"]: {_basename(f) for f in b["files"]} for b in truth["batches"]}
    honeypots = set(truth["honeypots"])
    assert len(honeypots) >= 3
    assert files["gold"] == honeypots
    assert all(honeypots <= files[name] for name in ("alice", "bob", "carol"))
    assert truth["shared"], "some scenes must have several annotators"
    for name, annotators in truth["shared"].items():
        assert name not in honeypots
        assert annotators == [a for a in ("alice", "bob", "carol") if name in files[a]]
        assert len(annotators) >= 2
    assert any(len(a) == 3 for a in truth["shared"].values())
    assert _batch(truth, "b000_gold")["gold"] is True


def test_the_model_pre_labels_every_honeypot_and_some_scenes_with_scored_rle_masks(demo: DemoSummary, truth: dict) -> None:
    """pycocotools reads the model's results as COCO results: one prediction per shape it shows, masks that never
    overlap (a model predicts what it sees), scores from 0 to 1; the people's scenes it covers are labelled by them."""
    from pycocotools import mask as mask_utils

    batch_dir = demo.landing_root / MODEL_BATCH
    instances = orjson.loads((batch_dir / "instances.json").read_bytes())
    results = orjson.loads((batch_dir / "results.json").read_bytes())
    files = {_basename(f) for f in _batch(truth, MODEL_BATCH)["files"]}
    assert set(truth["honeypots"]) < files
    people = {_basename(f) for b in truth["batches"] if b["annotator"] in ("alice", "bob", "carol") for f in b["files"]}
    assert files <= people
    assert instances["annotations"] == [] and {i["file_name"] for i in instances["images"]} == files
    assert results and all(0 <= r["score"] <= 1 for r in results)
    for image in instances["images"]:
        masks = [mask_utils.decode(r["segmentation"]) for r in results if r["image_id"] == image["id"]]
        assert masks and all(m.shape == (image["height"], image["width"]) and m.any() for m in masks)
        assert np.sum(masks, axis=0).max() == 1


def test_shared_scenes_are_the_same_bytes_in_every_batch(demo: DemoSummary, truth: dict) -> None:
    for name in [*truth["shared"], *truth["honeypots"]]:
        copies = {
            (demo.landing_root / b["batch_id"] / "images" / f).read_bytes()
            for b in truth["batches"]
            for f in b["files"]
            if _basename(f) == name
        }
        assert len(copies) == 1, name


def test_cvat_batches_are_cvat_for_images(demo: DemoSummary, truth: dict) -> None:
    for batch_id, source in (("b001_vendor_a_alice", "vendor_a"), ("b003_vendor_c_carol", "vendor_c")):
        root = ET.parse(demo.landing_root / batch_id / "annotations.xml").getroot()
        assert root.findtext("version") == "1.1"
        assert root.findtext("meta/task/name") == batch_id
        labels = [label.findtext("name") for label in root.iter("label")]
        assert sorted(labels) == sorted(truth["vocabularies"][source].values())
        images = list(root.iter("image"))
        assert [i.get("name") for i in images] == _batch(truth, batch_id)["files"]
        assert root.findtext("meta/task/size") == str(len(images))
        for image in images:
            assert (image.get("width"), image.get("height")) == (str(WIDTH), str(HEIGHT))
            polygons = list(image.iter("polygon"))
            assert polygons
            z_orders = [int(p.get("z_order")) for p in polygons]
            assert z_orders == sorted(z_orders), "shapes are listed back to front"
            for polygon in polygons:
                assert polygon.get("label") in labels
                pairs = [pair.split(",") for pair in polygon.get("points").split(";")]
                assert len(pairs) >= 3 and all(len(pair) == 2 for pair in pairs)


def test_coco_batches_are_coco_instances(demo: DemoSummary, truth: dict) -> None:
    multipart = 0
    for batch_id, source in (("b000_gold", "gold"), ("b002_vendor_b_bob", "vendor_b")):
        coco = _coco(demo.landing_root / batch_id)
        ids = sorted(c["id"] for c in coco["categories"])
        assert ids != list(range(ids[0], ids[0] + len(ids))), "category ids are non-contiguous"
        names = {c["name"] for c in coco["categories"]}
        assert set(truth["vocabularies"][source].values()) <= names
        assert [i["file_name"] for i in coco["images"]] == _batch(truth, batch_id)["files"]
        image_ids = {i["id"] for i in coco["images"]}
        for annotation in coco["annotations"]:
            assert annotation["image_id"] in image_ids
            assert annotation["category_id"] in ids
            assert annotation["iscrowd"] == 0 and annotation["area"] > 0
            assert all(len(ring) >= 6 and len(ring) % 2 == 0 for ring in annotation["segmentation"])
            multipart += len(annotation["segmentation"]) > 1
    assert multipart >= 2
    assert all("/" in f for f in _batch(truth, "b002_vendor_b_bob")["files"]), "vendor_b files images per sequence"


def test_defects_are_planted_once_away_from_overlaps(truth: dict) -> None:
    kinds = [d["kind"] for d in truth["defects"]]
    assert sorted(kinds) == sorted(
        ["corrupt_image", "size_mismatch", "non_finite_coordinates", "unmapped_label", "duplicate_image",
         "self_intersecting_polygon", "oversized_instance"]
    )
    protected = set(truth["honeypots"]) | set(truth["shared"])
    for defect in truth["defects"]:
        assert _basename(defect["file_name"]) not in protected
        assert defect["file_name"] in _batch(truth, defect["batch_id"])["files"]
        holders = [b for b in truth["batches"] if _basename(defect["file_name"]) in map(_basename, b["files"])]
        assert [b["batch_id"] for b in holders] == [defect["batch_id"]]


def test_corrupt_image_does_not_load(demo: DemoSummary, truth: dict) -> None:
    defect = _defect(truth, "corrupt_image")
    assert defect["batch_id"] == "b001_vendor_a_alice"
    path = demo.landing_root / defect["batch_id"] / "images" / defect["file_name"]
    with Image.open(path) as image, pytest.raises(OSError):
        image.load()


def test_size_mismatch_disagrees_with_its_annotation(demo: DemoSummary, truth: dict) -> None:
    defect = _defect(truth, "size_mismatch")
    assert defect["batch_id"] == "b002_vendor_b_bob"
    batch_dir = demo.landing_root / defect["batch_id"]
    (annotated,) = [i for i in _coco(batch_dir)["images"] if i["file_name"] == defect["file_name"]]
    with Image.open(batch_dir / "images" / defect["file_name"]) as image:
        assert image.size == (round(0.9 * WIDTH), round(0.9 * HEIGHT))
    assert (annotated["width"], annotated["height"]) == (WIDTH, HEIGHT)


def test_non_finite_coordinate_is_a_nan_vertex(demo: DemoSummary, truth: dict) -> None:
    defect = _defect(truth, "non_finite_coordinates")
    assert defect["batch_id"] == "b001_vendor_a_alice"
    assert defect["file_name"] != _defect(truth, "corrupt_image")["file_name"]
    polygons = _cvat_polygons(demo.landing_root / defect["batch_id"])
    with_nan = [name for name, shapes in polygons.items() for p in shapes if "nan" in p["points"]]
    assert with_nan == [defect["file_name"]]


def test_unmapped_label_is_declared_and_used_once(demo: DemoSummary, truth: dict) -> None:
    defect = _defect(truth, "unmapped_label")
    assert (defect["batch_id"], defect["label"]) == ("b002_vendor_b_bob", "fire hydrant")
    coco = _coco(demo.landing_root / defect["batch_id"])
    (hydrant,) = [c["id"] for c in coco["categories"] if c["name"] == "fire hydrant"]
    image_ids = {i["id"]: i["file_name"] for i in coco["images"]}
    assert [image_ids[a["image_id"]] for a in coco["annotations"] if a["category_id"] == hydrant] == [
        defect["file_name"]
    ]


def test_duplicate_is_a_byte_copy_annotated_alike(demo: DemoSummary, truth: dict) -> None:
    defect = _defect(truth, "duplicate_image")
    batch_dir = demo.landing_root / defect["batch_id"]
    assert defect["batch_id"] == "b001_vendor_a_alice"
    assert defect["file_name"] == defect["duplicate_of"].replace(".jpg", "_copy.jpg")
    images = batch_dir / "images"
    assert (images / defect["file_name"]).read_bytes() == (images / defect["duplicate_of"]).read_bytes()
    polygons = _cvat_polygons(batch_dir)
    assert polygons[defect["file_name"]] == polygons[defect["duplicate_of"]]


def _rasterize_coco(coco: dict, image_id: int) -> np.ndarray:
    """Class-id mask in document (painter's) order; 255 where nothing is drawn."""
    classes = {c["id"]: CLASS_IDS[c["name"]] for c in coco["categories"]}
    mask = Image.new("L", (WIDTH, HEIGHT), 255)
    draw = ImageDraw.Draw(mask)
    for annotation in coco["annotations"]:
        if annotation["image_id"] == image_id:
            for ring in annotation["segmentation"]:
                draw.polygon(list(zip(ring[::2], ring[1::2], strict=True)), fill=classes[annotation["category_id"]])
    return np.asarray(mask)


def test_pixels_agree_with_the_true_polygons(demo: DemoSummary, truth: dict) -> None:
    batch_dir = demo.landing_root / "b000_gold"
    coco = _coco(batch_dir)
    conditions = {s["file_name"]: s for s in truth["scenes"]}
    for image in coco["images"]:
        mask = _rasterize_coco(coco, image["id"])
        assert (mask != 255).all(), "the true polygons label every pixel"
        scene = conditions[image["file_name"]]
        palette = palette_under(scene["time_of_day"], scene["weather"])
        with Image.open(batch_dir / "images" / image["file_name"]) as photo:
            rgb = np.asarray(photo.convert("RGB"), dtype=np.float32)
        nearest = np.argmin(((rgb[..., None, :] - palette) ** 2).sum(axis=-1), axis=-1)
        assert (nearest == mask).mean() > 0.9
        sky = rgb[mask == CLASS_IDS["sky"]].mean(axis=0)
        road = rgb[mask == CLASS_IDS["road"]].mean(axis=0)
        assert np.linalg.norm(sky - road) > 20


@pytest.mark.parametrize(("width", "height"), [(256, 128), (1024, 512)])
def test_true_scenes_cover_the_frame(width: int, height: int) -> None:
    for index in range(6):
        shapes = build_scene(index, np.random.default_rng(index), width, height)
        mask = Image.new("L", (width, height), 255)
        draw = ImageDraw.Draw(mask)
        for shape in shapes:
            for ring in shape.rings:
                draw.polygon(ring, fill=CLASS_IDS[shape.label])
        assert (np.asarray(mask) != 255).all()
        assert {"sky", "road", "sidewalk", "building"} <= {s.label for s in shapes}
        z_orders = [s.z_order for s in shapes]
        assert z_orders == sorted(z_orders)


def test_sequences_share_conditions(truth: dict) -> None:
    scenes = truth["scenes"]
    assert [s["file_name"] for s in scenes] == [f"scene_{i:05d}.jpg" for i in range(N_SCENES)]
    for _, run in itertools.groupby(scenes, key=lambda s: s["sequence_id"]):
        run = list(run)
        assert 3 <= len(run) <= 6
        assert len({(s["camera"], s["city"], s["time_of_day"], s["weather"]) for s in run}) == 1
    assert len({s["sequence_id"] for s in scenes}) == len(list(itertools.groupby(s["sequence_id"] for s in scenes)))


def _ground_shift(name: str, truths: list) -> float:
    """Mean vertex displacement over sky, road and sidewalks: the first four shapes, never skipped."""
    shifts = []
    for index, shapes in enumerate(truths):
        drawn = annotate(ANNOTATORS[name], shapes, 1024, np.random.default_rng(index))
        for a, b in zip(drawn[:4], shapes[:4], strict=True):
            for ring_a, ring_b in zip(a.rings, b.rings, strict=True):
                shifts += [np.hypot(xa - xb, ya - yb) for (xa, ya), (xb, yb) in zip(ring_a, ring_b, strict=True)]
    return float(np.mean(shifts))


def _labels(name: str, truths: list) -> list[list[str]]:
    return [
        [s.label for s in annotate(ANNOTATORS[name], shapes, 1024, np.random.default_rng(i))]
        for i, shapes in enumerate(truths)
    ]


def test_annotators_differ_in_care() -> None:
    truths = [build_scene(i, np.random.default_rng(100 + i), 1024, 512) for i in range(20)]
    true_labels = [[s.label for s in shapes] for shapes in truths]
    assert _ground_shift("gold", truths) == 0.0
    assert 0.5 < _ground_shift("alice", truths) < _ground_shift("bob", truths) < 2.0 < _ground_shift("carol", truths)
    assert _labels("gold", truths) == _labels("alice", truths) == true_labels
    carol = _labels("carol", truths)
    assert sum(map(len, carol)) < sum(map(len, true_labels)), "carol skips small objects"
    assert any(c[:4] != t[:4] for c, t in zip(carol, true_labels, strict=True)), "carol swaps road and sidewalk"
