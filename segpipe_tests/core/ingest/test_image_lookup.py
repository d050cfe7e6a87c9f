"""Images found where the tools put them: each export is written in tmp_path in the layout its tool
writes, then ingested whole, as a landed batch would be."""

import base64
import io
import json
import unicodedata
from pathlib import Path

import fsspec
import polars as pl
import pytest
from PIL import Image

from segpipe.core.ingest.batch import ingest_batch
from segpipe.core.ingest.image_lookup import ImageIndex
from segpipe.core.ingest.sources import open_source

KEY = b"test-key-0123456789abcdef"
WIDTH, HEIGHT = 8, 6


def jpeg(shade: int = 0) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (WIDTH, HEIGHT), (shade, 80, 160)).save(out, format="JPEG")
    return out.getvalue()


def png(shade: int = 0) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (WIDTH, HEIGHT), (shade, 80, 160)).save(out, format="PNG")
    return out.getvalue()


def write(root: Path, files: dict[str, bytes | str]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return root


def ingest(root: Path, stored: dict[str, bytes] | None = None):
    with open_source(fsspec.filesystem("file"), str(root)) as source:
        return ingest_batch(source, root.name, KEY, None if stored is None else stored.__setitem__)


def accepted(result) -> list[str]:
    return sorted(result.images["file_name"])


def coco(*file_names: str) -> str:
    images = [{"id": i, "file_name": name, "width": WIDTH, "height": HEIGHT} for i, name in enumerate(file_names, 1)]
    annotations = [{"id": i, "image_id": i, "category_id": 1, "iscrowd": 0, "segmentation": [[1, 1, 5, 1, 5, 5]]}
                   for i in range(1, len(file_names) + 1)]
    return json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "car"}]})


# --- COCO -------------------------------------------------------------------------------------

def test_coco_images_in_jpegimages(tmp_path):
    """Datumaro's and many converters' layout: JPEGImages/ beside annotations/."""
    root = write(tmp_path / "voc_style", {"annotations/instances_default.json": coco("a.jpg", "b.jpg"),
                                          "JPEGImages/a.jpg": jpeg(1), "JPEGImages/b.jpg": jpeg(2)})
    result = ingest(root)
    assert accepted(result) == ["JPEGImages/a.jpg", "JPEGImages/b.jpg"] and result.quarantine.is_empty()


def test_coco_images_beside_the_json_in_a_subset_folder(tmp_path):
    """Roboflow's COCO export: train/_annotations.coco.json with the images beside it."""
    root = write(tmp_path / "roboflow", {"train/_annotations.coco.json": coco("a_jpg.rf.1.jpg"),
                                         "train/a_jpg.rf.1.jpg": jpeg(), "README.roboflow.txt": "exported"})
    result = ingest(root)
    assert (result.source_format, accepted(result)) == ("coco_instances", ["train/a_jpg.rf.1.jpg"])


def test_coco_images_under_data_train_images(tmp_path):
    """A Kaggle-style dataset: the JSON at the root, images two folders down, found by file name."""
    root = write(tmp_path / "kaggle", {"train.json": coco("0001.jpg", "0002.jpg"),
                                       "data/train_images/0001.jpg": jpeg(1), "data/train_images/0002.JPG": jpeg(2)})
    assert accepted(ingest(root)) == ["data/train_images/0001.jpg", "data/train_images/0002.JPG"]


@pytest.mark.parametrize(("annotation_file", "image"), [
    ("annotations/instances_val2017.json", "val2017/000000000139.jpg"),  # COCO 2017
    ("annotations/instances_train.json", "images/train/000000000139.jpg"),  # Datumaro, CVAT project
    ("labels.json", "data/000000000139.jpg"),  # FiftyOne
])
def test_coco_subset_and_data_folders(tmp_path, annotation_file, image):
    root = write(tmp_path / "export", {annotation_file: coco("000000000139.jpg"), image: jpeg()})
    assert accepted(ingest(root)) == [image]


def test_an_image_name_found_twice_is_quarantined_listing_the_candidates(tmp_path):
    root = write(tmp_path / "twice", {"annotations.json": coco("a.jpg", "b.jpg"), "images/b.jpg": jpeg(3),
                                      "raw/day/a.jpg": jpeg(1), "raw/night/a.jpg": jpeg(2)})
    result = ingest(root)
    assert accepted(result) == ["images/b.jpg"]
    [row] = result.quarantine.filter(pl.col("rule") == "image_ambiguous").to_dicts()
    assert "'raw/day/a.jpg'" in row["message"] and "'raw/night/a.jpg'" in row["message"]
    assert "annotations.json: images[0]" in row["message"]
    # Both copies stay entries of their own, each quarantined for having no annotation of its own.
    assert set(result.quarantine["file_name"]) == {row["file_name"], "raw/day/a.jpg", "raw/night/a.jpg"}


# --- CVAT -------------------------------------------------------------------------------------

def cvat_project(*images: tuple[str, str]) -> str:
    """A CVAT for images 1.1 project export: two tasks, train and val."""
    tasks = "".join(f"<task><id>{i}</id><name>t{i}</name><mode>annotation</mode><subset>{subset}</subset></task>"
                    for i, subset in ((1, "train"), (2, "val")))
    body = "".join(
        f'<image id="{n}" name="{name}" subset="{subset}" task_id="{1 if subset == "train" else 2}" width="{WIDTH}" '
        f'height="{HEIGHT}"><polygon label="car" occluded="0" points="1,1;5,1;5,5" z_order="0"/></image>'
        for n, (subset, name) in enumerate(images))
    return (f'<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version><meta><project><id>3</id>'
            f"<name>p</name><tasks>{tasks}</tasks></project></meta>{body}</annotations>")


def test_cvat_project_export_with_subsets_keeps_one_name_in_two_subsets_apart(tmp_path):
    root = write(tmp_path / "project", {"annotations.xml": cvat_project(("train", "a.jpg"), ("val", "a.jpg")),
                                        "images/train/a.jpg": jpeg(1), "images/val/a.jpg": jpeg(2)})
    assert accepted(ingest(root)) == ["images/train/a.jpg", "images/val/a.jpg"]


def test_cvat_project_export_without_subset_folders(tmp_path):
    """The same project export with its images flat in images/, as a task export writes them."""
    root = write(tmp_path / "flat", {"annotations.xml": cvat_project(("train", "a.jpg"), ("val", "b.jpg")),
                                     "images/a.jpg": jpeg(1), "images/b.jpg": jpeg(2)})
    assert accepted(ingest(root)) == ["images/a.jpg", "images/b.jpg"]


def test_cvat_task_export_with_a_subset_and_its_images_in_the_subset_folder(tmp_path):
    meta = ("<meta><task><id>7</id><name>t</name><size>1</size><mode>annotation</mode><subset>train</subset>"
            "</task></meta>")
    xml = (f'<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version>{meta}<image id="0" name="a.jpg" '
           f'width="{WIDTH}" height="{HEIGHT}"><box label="car" xtl="1" ytl="1" xbr="5" ybr="5"/></image></annotations>')
    root = write(tmp_path / "task", {"annotations.xml": xml, "images/train/a.jpg": jpeg()})
    assert accepted(ingest(root)) == ["images/train/a.jpg"]


def cvat_video(frames: int) -> str:
    track = "".join(f'<polygon frame="{n}" keyframe="1" outside="0" occluded="0" points="1,1;5,1;5,5" z_order="0"/>'
                    for n in range(frames))
    return ('<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version><meta><task><id>5</id>'
            f"<size>{frames}</size><mode>interpolation</mode><start_frame>0</start_frame>"
            f"<stop_frame>{frames - 1}</stop_frame><frame_filter></frame_filter><original_size><width>{WIDTH}</width>"
            f'<height>{HEIGHT}</height></original_size></task></meta><track id="0" label="car">{track}</track>'
            "</annotations>")


def test_cvat_video_frames_in_lower_case_png_and_as_jpeg(tmp_path):
    root = write(tmp_path / "video", {"annotations.xml": cvat_video(3), "images/frame_000000.png": png(1),
                                      "images/frame_000001.jpg": jpeg(2), "images/frame_000002.PNG": png(3)})
    result = ingest(root)
    assert (result.source_format, result.quarantine.height) == ("cvat_video_1.1", 0)
    assert accepted(result) == ["images/frame_000000.png", "images/frame_000001.jpg", "images/frame_000002.PNG"]


# --- LabelMe ----------------------------------------------------------------------------------

def test_labelme_with_an_absolute_windows_image_path_uses_the_embedded_image(tmp_path):
    embedded = jpeg(7)
    doc = {"version": "5.5.0", "flags": {}, "imagePath": "C:\\Users\\ann\\Pictures\\street_01.jpg",
           "imageData": base64.b64encode(embedded).decode(), "imageHeight": HEIGHT, "imageWidth": WIDTH,
           "shapes": [{"label": "car", "points": [[1, 1], [5, 1], [5, 5]], "group_id": None, "shape_type": "polygon",
                       "flags": {}}]}
    root = write(tmp_path / "labelme", {"street_01.json": json.dumps(doc)})
    stored: dict[str, bytes] = {}
    result = ingest(root, stored)
    assert (accepted(result), result.quarantine.height) == (["street_01.jpg"], 0)
    assert stored[result.images["image_key"][0]] == embedded


# --- The index ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("reference", "base", "places", "excluded", "found"), [
    ("a.jpg", "images", (), (), "images/a.jpg"),
    ("a.jpg", "images", ("images/train",), ("images/a.jpg",), "images/train/a.JPG"),
    ("sub/c.png", "images", ("data",), (), "data/sub/c.png"),
    ("C:\\photos\\c.png", "images", (), (), "data/sub/c.png"),
])
def test_lookup_order_exact_path_then_places_then_the_name_anywhere(reference, base, places, excluded, found):
    index = ImageIndex(["images/a.jpg", "images/train/a.JPG", "data/sub/c.png", "notes.txt"]).without(excluded)
    assert index.find(reference, "x.json", base=base, places=places).file_name == found


def test_a_name_without_extension_matches_any_image_but_not_the_excluded_mask():
    index = ImageIndex(["masks/a.png", "images/a.jpeg"]).without(["masks/a.png"])
    assert index.find("a", "m", base="masks", default_suffix=".jpg", any_suffix=True).file_name == "images/a.jpeg"
    missing = index.find("b", "m", base="images", default_suffix=".jpg", any_suffix=True)
    assert (missing.file_name, missing.error.rule) == ("images/b.jpg", "image_missing")


def test_a_name_decomposed_on_disk_matches_the_composed_name_of_its_annotation_and_two_such_are_ambiguous():
    composed, decomposed = unicodedata.normalize("NFC", "café.png"), unicodedata.normalize("NFD", "café.png")
    assert composed != decomposed
    assert ImageIndex([f"images/{decomposed}"]).find(composed, "x.xml", base="images").file_name == f"images/{decomposed}"
    assert ImageIndex([f"sub/{decomposed}"]).find(composed, "x.xml", base="images").file_name == f"sub/{decomposed}"
    both = ImageIndex([f"images/{decomposed}", f"images/{composed}"])
    assert both.find(composed, "x.xml", base="images").file_name == f"images/{composed}"  # the exact name first
    twins = ImageIndex([f"a/{decomposed}", f"b/{composed}"]).find(composed, "x.xml", base="images")
    assert twins.error.rule == "image_ambiguous"
