"""Real exports (segpipe_tests/fixtures/exports, see SOURCES.md there) read as `segpipe check-source` reads them.

Each test derives what the export holds with a few lines of its own parsing (ElementTree, json,
Pillow: export_facts.py), or takes the tool's own rendering (VOC class PNGs, cityscapesScripts'
label images), and compares that with the tables ingest produces. Tests marked xfail(strict=True) assert the
right behaviour for an export that does not read today; the reason says what fails. When the fix
lands, the strict xfail fails the run and the marker is to be removed.
"""

import json
import shutil
from collections import Counter
from pathlib import Path

import fsspec
import numpy as np
import polars as pl
import pytest
from cityscapesscripts.helpers.labels import name2label
from PIL import Image

from segpipe.cli.source_check import check_source
from segpipe.core.ingest.batch import IngestedBatch
from segpipe_tests.core.ingest.cityscapes_export import write_cityscapes_gtfine
from segpipe_tests.core.ingest.export_facts import (
    EXPORTS,
    ade_classes,
    basename,
    cityscapes_image,
    cityscapes_instance_areas,
    coco_expected,
    cvat_expected,
    cvat_video_frames,
    labelme_expected,
    mask_folder_areas,
    panoptic_expected,
    stem,
    voc_class_areas,
    voc_name,
)

KEY = b"k" * 32


def check(export: str | Path, tmp_path: Path, declared: str | None = None) -> IngestedBatch:
    path = export if isinstance(export, Path) else EXPORTS / export
    return check_source(fsspec.filesystem("file"), str(path), tmp_path / "check", KEY, declared).batch


def accepted_shapes(batch: IngestedBatch, key=lambda name: name) -> dict[str, Counter]:
    """Accepted image (by key of its file name) -> Counter of (raw_label, kind)."""
    shapes = batch.shapes.join(batch.images.select("entry_id", "file_name"), on="entry_id")
    result = {key(name): Counter() for name in batch.images["file_name"]}
    for name, label, kind in shapes.select("file_name", "raw_label", "kind").iter_rows():
        result[key(name)][(label, kind)] += 1
    return result


def mask_areas(batch: IngestedBatch, file_name: str) -> Counter:
    """raw_label -> foreground pixels of the image's mask shapes (every other run, from the second)."""
    [entry] = batch.images.filter(pl.col("file_name") == file_name)["entry_id"]
    areas: Counter = Counter()
    for label, counts in batch.shapes.filter(pl.col("entry_id") == entry).select("raw_label", "mask_counts").iter_rows():
        areas[label] += sum(counts[1::2])
    return areas


def quarantined(batch: IngestedBatch, key=lambda name: name) -> dict[str, str]:
    return {key(name): rule for name, rule in batch.quarantine.select("file_name", "rule").iter_rows()}


def assert_companions_unused(batch: IngestedBatch, export: Path, companions: list[Path], reason: str) -> None:
    """Every file of the export is listed, and the companions (masks the tool wrote beside the ones
    read) are unused with `reason`, never items."""
    assert companions
    assert sorted(batch.files["path"]) == sorted(p.relative_to(export).as_posix() for p in export.rglob("*") if p.is_file())
    named = {p.relative_to(export).as_posix() for p in companions}
    rows = batch.files.filter(pl.col("path").is_in(sorted(named)))
    assert rows.height == len(named) and set(rows["outcome"]) == {"unused"}, rows
    assert all(reason in why for why in rows["reason"]), rows["reason"].to_list()
    assert not named & {*batch.quarantine["file_name"], *batch.images["file_name"]}


# --- CVAT ----------------------------------------------------------------------------------------

def test_cvat_task_export_reads_every_image_with_its_shapes(tmp_path):
    export = EXPORTS / "cvat_images_task"
    batch = check(export, tmp_path)
    expected = cvat_expected(export / "train.xml", lambda image: f"images/{image.get('name')}")
    assert batch.source_format == "cvat_images_1.1"
    assert accepted_shapes(batch) == expected
    assert batch.quarantine.is_empty()


def test_cvat_project_export_reads_each_subset_folder(tmp_path):
    export = EXPORTS / "cvat_images_project_subsets"
    batch = check(export, tmp_path)
    expected = cvat_expected(export / "annotations.xml",
                             lambda image: f"images/{image.get('subset')}/{image.get('name')}")
    assert len(expected) == 6  # img0 and img1 in each of Train, Test, Validation
    assert accepted_shapes(batch) == expected
    assert batch.quarantine.is_empty()


def test_cvat_video_export_gives_each_frame_its_tracked_shapes(tmp_path):
    export = EXPORTS / "cvat_video"
    frames = cvat_video_frames(export / "annotations.xml")
    on_disk = {path.stem for path in (export / "images").iterdir()}
    expected = {frame: shapes for frame, shapes in frames.items() if frame in on_disk}
    assert len(expected) == 3 and len(frames) == 4  # frame 19 was exported without its image

    batch = check(export, tmp_path)
    assert accepted_shapes(batch, key=stem) == expected
    assert list(quarantined(batch).values()) == ["image_missing"]


# --- COCO ----------------------------------------------------------------------------------------

def test_coco_export_with_subset_folders_reads_every_image(tmp_path):
    export = EXPORTS / "coco_instances_datumaro"
    expected = coco_expected(sorted((export / "annotations").glob("instances_*.json")))
    assert sum(sum(c.values()) for c in expected.values()) == 3
    batch = check(export, tmp_path)
    assert batch.source_format == "coco_instances"
    assert accepted_shapes(batch, key=basename) == expected
    assert batch.quarantine.is_empty()


def test_labelme2coco_export_reads_every_image(tmp_path):
    export = EXPORTS / "coco_labelme2coco"
    expected = coco_expected([export / "annotations.json"])
    assert sum(sum(c.values()) for c in expected.values()) == 12
    batch = check(export, tmp_path)
    assert accepted_shapes(batch, key=basename) == expected
    assert batch.quarantine.is_empty()


def test_coco_panoptic_export_reads_segments_and_quarantines_the_png_of_the_wrong_size(tmp_path):
    export = EXPORTS / "coco_panoptic_datumaro"
    areas, wrong_size = panoptic_expected(export)
    assert set(areas) == {"b.jpg"} and wrong_size == {"a.jpg"}  # Datumaro's a.png is 5x5, its image 10x5
    batch = check(export, tmp_path)
    assert batch.source_format == "coco_panoptic"
    [name] = batch.images["file_name"]
    assert basename(name) == "b.jpg"
    assert mask_areas(batch, name) == areas["b.jpg"]
    assert quarantined(batch, key=basename) == {"a.jpg": "size_mismatch"}


# --- LabelMe -------------------------------------------------------------------------------------

def test_labelme_export_reads_images_present_and_quarantines_the_trimmed_ones(tmp_path):
    export = EXPORTS / "labelme_instance_segmentation"
    present, absent = labelme_expected(export)
    assert set(present) == {"2011_000006.jpg"} and len(absent) == 2  # two of three images were trimmed
    batch = check(export, tmp_path)
    assert batch.source_format == "labelme"
    assert accepted_shapes(batch) == present
    assert quarantined(batch) == dict.fromkeys(absent, "image_missing")


def test_labelme_primitives_keep_every_shape_type(tmp_path):
    export = EXPORTS / "labelme_primitives"
    present, absent = labelme_expected(export)
    assert not absent and len(present["primitives.jpg"]) == 7
    batch = check(export, tmp_path)
    assert accepted_shapes(batch) == present
    assert batch.quarantine.is_empty()


# --- PASCAL VOC ----------------------------------------------------------------------------------

def plain(name: str) -> str:
    """labelme's class names against VOC's: `potted plant`, `tv/monitor`, `_background_`."""
    return "".join(ch for ch in name if ch.isalnum())


def test_labelme2voc_class_masks_read_as_the_pngs_hold_them(tmp_path):
    export = EXPORTS / "voc_labelme2voc"
    class_names = (export / "class_names.txt").read_text().splitlines()
    batch = check(export, tmp_path)
    assert batch.source_format == "voc_segmentation"
    for png in sorted((export / "SegmentationClass").glob("*.png")):
        expected = {("void" if index == 255 else plain(class_names[index])): n
                    for index, n in voc_class_areas(png).items()}
        found = {plain(label): n for label, n in mask_areas(batch, f"JPEGImages/{png.stem}.jpg").items()}
        assert found == expected, png.name
    assert batch.images.height == 3
    assert batch.quarantine.is_empty()
    assert_companions_unused(batch, export, sorted(export.glob("SegmentationObject/*.png")),
                             "VOC instance masks: segpipe reads SegmentationClass")


def test_labelme2voc_class_masks_are_labelmes_rendering_of_its_json():
    """The fixture pairing itself: the classes each labelme JSON names are those its PNG holds."""
    class_names = (EXPORTS / "voc_labelme2voc" / "class_names.txt").read_text().splitlines()
    for file in sorted((EXPORTS / "labelme_instance_segmentation").glob("*.json")):
        labels = {s["label"] for s in json.loads(file.read_text())["shapes"]} - {"__ignore__"}
        indices = set(voc_class_areas(EXPORTS / "voc_labelme2voc" / "SegmentationClass" / f"{file.stem}.png")) - {0, 255}
        assert {class_names[i] for i in indices} == labels, file.name


def test_voc_export_reads_the_class_mask_and_reports_the_image_without_one(tmp_path):
    export = EXPORTS / "voc_datumaro"
    masks = sorted((export / "SegmentationClass").glob("*.png"))
    unannotated = {f"JPEGImages/{p.name}" for p in (export / "JPEGImages").glob("*.jpg")} - {
        f"JPEGImages/{m.stem}.jpg" for m in masks}
    assert len(masks) == 1 and unannotated == {"JPEGImages/2007_000002.jpg"} and not (export / "labelmap.txt").exists()
    batch = check(export, tmp_path)
    [mask] = masks
    expected = {voc_name(index): n for index, n in voc_class_areas(mask).items()}
    assert mask_areas(batch, f"JPEGImages/{mask.stem}.jpg") == expected
    assert quarantined(batch) == dict.fromkeys(unannotated, "annotation_missing")
    assert_companions_unused(batch, export, sorted(export.glob("SegmentationObject/*.png")),
                             "VOC instance masks: segpipe reads SegmentationClass")


# --- ADE20K --------------------------------------------------------------------------------------

@pytest.mark.parametrize("export", ["ade20k2017_datumaro", "ade20k2020_datumaro"])
def test_ade20k_export_reads_each_seg_png_and_nothing_else(export, tmp_path):
    root = EXPORTS / export
    segs = sorted(root.rglob("*_seg.png"))
    batch = check(root, tmp_path)
    assert batch.source_format == "ade20k"
    for seg in segs:
        image = seg.relative_to(root).as_posix().removesuffix("_seg.png") + ".jpg"
        assert mask_areas(batch, image) == ade_classes(seg)
    assert batch.images.height == len(segs)
    assert batch.quarantine.is_empty()
    parts = sorted(root.rglob("*_parts_*.png"))
    assert_companions_unused(batch, root, parts, "ADE20K part masks: segpipe reads the object classes of ")
    instances = sorted(root.rglob("instance_*.png"))
    assert bool(instances) == (export == "ade20k2020_datumaro")
    if instances:
        assert_companions_unused(batch, root, instances, "ADE20K instance mask of one object")


def test_ade20k_2020_classes_are_those_its_json_lists():
    """ADE20K 2020 writes each image's objects with `name_ndx`: the classes painted in `_seg.png` are among them."""
    for seg in sorted((EXPORTS / "ade20k2020_datumaro").rglob("*_seg.png")):
        objects = json.loads(seg.with_name(seg.name.replace("_seg.png", ".json")).read_text())["annotation"]["object"]
        listed = {str(o["name_ndx"]) for o in objects if o["parts"]["part_level"] == 0}
        assert set(ade_classes(seg)) - {"0"} <= listed


# --- Cityscapes ----------------------------------------------------------------------------------

def polygon_labels(json_file: Path) -> Counter:
    """Labels of the objects json2labelImg draws: not deleted, non-negative id."""
    labels = Counter()
    for obj in json.loads(json_file.read_text())["objects"]:
        base = obj["label"].removesuffix("group") if obj["label"] not in name2label else obj["label"]
        if not obj.get("deleted") and name2label[base].id >= 0:
            labels[obj["label"]] += 1
    return labels


def test_cityscapes_gtfine_export_reads_the_polygons(tmp_path):
    export = EXPORTS / "cityscapes_gtfine_generated"
    batch = check(export, tmp_path)
    assert batch.source_format == "cityscapes_polygons"
    for polygons in sorted(export.rglob("*_polygons.json")):
        image = f"leftImg8bit/val/testcity/{polygons.name.replace('_gtFine_polygons.json', '_leftImg8bit.png')}"
        labels = Counter({label: n for (label, _), n in accepted_shapes(batch)[image].items()})
        objects = json.loads(polygons.read_text())["objects"]
        assert labels == Counter(o["label"] for o in objects if not o.get("deleted"))
    assert batch.quarantine.is_empty()
    assert_companions_unused(batch, export, sorted(export.rglob("gtFine/*/*/*.png")),
                             "Cityscapes label PNG rendered from the polygons segpipe reads")


def test_cityscapes_label_pngs_agree_with_the_polygons_they_were_rendered_from(tmp_path):
    """gtFine without its polygon JSON is read from instanceIds: one shape per instance of a label
    with instances, a `<label>group` crowd and every other label drawn, as json2instanceImg painted them."""
    export = tmp_path / "gtfine"
    shutil.copytree(EXPORTS / "cityscapes_gtfine_generated", export)
    polygons = {path.name.replace("_gtFine_polygons.json", ""): polygon_labels(path) for path in export.rglob("*_polygons.json")}
    for path in export.rglob("*_polygons.json"):
        path.unlink()
    batch = check(export, tmp_path)
    assert batch.source_format == "cityscapes_label_pngs"
    found = accepted_shapes(batch, key=lambda name: basename(name).removesuffix("_leftImg8bit.png"))
    assert set(found) == set(polygons)
    for stem, labels in polygons.items():
        read = Counter({label: n for (label, _), n in found[stem].items()})
        assert read - Counter({"unlabeled": read["unlabeled"]}) == labels, stem
    assert batch.quarantine.is_empty()


def test_cityscapes_instance_ids_of_datumaros_export_name_labels_as_cityscapesscripts_does(tmp_path):
    export = EXPORTS / "cityscapes_label_pngs_datumaro"
    batch = check(export, tmp_path)
    assert batch.source_format == "cityscapes_label_pngs"
    for png in sorted(export.rglob("*_gtFine_instanceIds.png")):
        image = cityscapes_image(png, export, "_gtFine_instanceIds.png")
        assert mask_areas(batch, image) == cityscapes_instance_areas(png), png.name
    assert batch.quarantine.is_empty()


def test_generated_cityscapes_export_is_what_the_generator_writes(tmp_path):
    """The committed copy must not drift from its recipe: same files, same JSON, same pixels."""
    fresh = tmp_path / "fresh"
    written = [path.relative_to(fresh) for path in write_cityscapes_gtfine(fresh)]
    committed = EXPORTS / "cityscapes_gtfine_generated"
    assert sorted(written) == sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file())
    for relative in written:
        if relative.suffix == ".json":
            assert json.loads((fresh / relative).read_text()) == json.loads((committed / relative).read_text())
        else:
            np.testing.assert_array_equal(np.asarray(Image.open(fresh / relative)), np.asarray(Image.open(committed / relative)))


# --- image + mask folders ------------------------------------------------------------------------

def test_datumaro_common_semantic_segmentation_reads_rgb_masks_through_dataset_meta(tmp_path):
    export = EXPORTS / "image_mask_folders_datumaro"
    batch = check(export, tmp_path)
    assert batch.source_format == "image_mask_folders"
    for mask in sorted((export / "masks").glob("*.png")):
        assert mask_areas(batch, f"images/{mask.name}") == mask_folder_areas(export, mask)
    assert batch.quarantine.is_empty()
