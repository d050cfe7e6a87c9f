"""What each export of the corpus (segpipe_tests/fixtures/exports, see SOURCES.md there) holds, parsed
from its own files with a few lines of ElementTree, json, Pillow and cityscapesScripts, never with
segpipe's readers: the facts test_real_exports.py compares ingest's tables with, and
segpipe_tests/e2e/test_corpus_init_build.py compares init's summary and a build's ledger with."""

import json
import posixpath
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import id2label
from PIL import Image

EXPORTS = Path(__file__).parents[2] / "fixtures" / "exports"
CVAT_KINDS = {"box": "box", "polygon": "polygon", "polyline": "polyline", "points": "points", "mask": "mask"}
LABELME_KINDS = {"polygon": "polygon", "rectangle": "polygon", "circle": "mask", "mask": "mask",
                 "line": "polyline", "linestrip": "polyline", "point": "points", "points": "points"}
# The devkit's class list (VOCdevkit/VOCcode/VOCinit.m), index 0 background, 255 the void boundary.
VOC_NAMES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
             "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]


def basename(name: str) -> str:
    return posixpath.basename(name)


def stem(name: str) -> str:
    return basename(name).rsplit(".", 1)[0]


# --- CVAT ----------------------------------------------------------------------------------------

def cvat_expected(xml_file: Path, image_path) -> dict[str, Counter]:
    """Image path -> Counter of (label, kind) of its shapes, straight from the XML."""
    expected = {}
    for image in ET.parse(xml_file).getroot().iter("image"):
        expected[image_path(image)] = Counter(
            (shape.get("label"), CVAT_KINDS[shape.tag]) for shape in image if shape.tag in CVAT_KINDS)
    return expected


def cvat_video_frames(xml_file: Path) -> dict[str, Counter]:
    """`frame_NNNNNN` -> Counter of (label, kind) of the tracks' shapes on it (not outside), for every
    frame of the task: start to stop by the filter's step, `size` of them."""
    root = ET.parse(xml_file).getroot()
    task = root.find("meta/task")
    start, stop, size = (int(task.findtext(key)) for key in ("start_frame", "stop_frame", "size"))
    step = int(task.findtext("frame_filter").removeprefix("step="))
    shapes = {frame: Counter() for frame in list(range(start, stop + 1, step))[:size]}
    for track in root.iter("track"):
        for shape in track:
            if shape.get("outside") == "0":
                shapes[int(shape.get("frame"))][(track.get("label"), CVAT_KINDS[shape.tag])] += 1
    return {f"frame_{frame:06d}": found for frame, found in shapes.items()}


# --- COCO ----------------------------------------------------------------------------------------

def coco_expected(annotation_files: list[Path]) -> dict[str, Counter]:
    """Image base name -> Counter of (category name, kind) from the COCO JSON files."""
    expected = {}
    for file in annotation_files:
        doc = json.loads(file.read_text())
        names = {category["id"]: category["name"] for category in doc["categories"]}
        by_id = {image["id"]: basename(image["file_name"]) for image in doc["images"]}
        expected.update({name: Counter() for name in by_id.values()})
        for annotation in doc["annotations"]:
            segmentation = annotation.get("segmentation")
            kind = "mask" if isinstance(segmentation, dict) else "polygon" if segmentation else "box"
            expected[by_id[annotation["image_id"]]][(names[annotation["category_id"]], kind)] += 1
    return expected


def panoptic_expected(export: Path) -> tuple[dict[str, Counter], set[str]]:
    """(image base name -> Counter of label -> pixels, images whose PNG is not the image's size),
    decoding the PNGs with panopticapi's rgb2id written out here."""
    areas, wrong_size = {}, set()
    for file in sorted((export / "annotations").glob("panoptic_*.json")):
        doc = json.loads(file.read_text())
        names = {category["id"]: category["name"] for category in doc["categories"]}
        images = {image["id"]: image for image in doc["images"]}
        for annotation in doc["annotations"]:
            image = images[annotation["image_id"]]
            rgb = np.asarray(Image.open(file.with_suffix("") / annotation["file_name"]).convert("RGB")).astype(np.int64)
            if rgb.shape[:2] != (image["height"], image["width"]):
                wrong_size.add(basename(image["file_name"]))
                continue
            ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
            areas[basename(image["file_name"])] = Counter({
                names[segment["category_id"]]: int((ids == segment["id"]).sum()) for segment in annotation["segments_info"]})
    return areas, wrong_size


# --- LabelMe -------------------------------------------------------------------------------------

def labelme_expected(export: Path) -> tuple[dict[str, Counter], set[str]]:
    """(image -> Counter of (label, kind) for images present, images the JSON names but the export lacks)."""
    present, absent = {}, set()
    for file in sorted(export.glob("*.json")):
        doc = json.loads(file.read_text())
        if (export / doc["imagePath"]).exists():
            present[doc["imagePath"]] = Counter((s["label"], LABELME_KINDS[s["shape_type"]]) for s in doc["shapes"])
        else:
            absent.add(doc["imagePath"])
    return present, absent


# --- masks ---------------------------------------------------------------------------------------

def voc_palette_index() -> dict[tuple[int, int, int], int]:
    """The VOC devkit's colour map (VOClabelcolormap.m): bit k of index i goes to bit 7-k/3 of R, G or B."""
    colours = {}
    for index in range(256):
        r = g = b = 0
        value = index
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        colours[(r, g, b)] = index
    return colours


def voc_class_areas(png: Path) -> Counter:
    """Class index -> pixels of a SegmentationClass PNG, palette or RGB."""
    image = Image.open(png)
    if image.mode == "P":
        values, counts = np.unique(np.asarray(image), return_counts=True)
        return Counter(dict(zip(values.tolist(), counts.tolist())))
    palette = voc_palette_index()
    colours, counts = np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0, return_counts=True)
    return Counter({palette[tuple(c)]: n for c, n in zip(colours.tolist(), counts.tolist())})


def voc_name(index: int) -> str:
    """The devkit's name of a class index, as a VOC export without a labelmap.txt names it."""
    return "void" if index == 255 else VOC_NAMES[index]


def ade_classes(png: Path) -> Counter:
    """ADE20K's loader: class = R/10*256 + G."""
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(np.int64)
    values, counts = np.unique(rgb[..., 0] // 10 * 256 + rgb[..., 1], return_counts=True)
    return Counter({str(v): n for v, n in zip(values.tolist(), counts.tolist())})


def cityscapes_instance_label(value: int) -> str:
    """The label of a `_gtFine_instanceIds.png` value, as cityscapesScripts' labels.py names its ids:
    value // 1000 from 1000 on (one instance each), else the id itself, a crowd `<label>group` for
    a label with instances."""
    label = id2label[value // 1000 if value >= 1000 else value]
    return f"{label.name}group" if value < 1000 and label.hasInstances else label.name


def cityscapes_instance_areas(png: Path) -> Counter:
    """Label name -> pixels of a `_gtFine_instanceIds.png`."""
    values, counts = np.unique(np.asarray(Image.open(png)), return_counts=True)
    areas = Counter()
    for value, count in zip(values.tolist(), counts.tolist()):
        areas[cityscapes_instance_label(value)] += count
    return areas


def cityscapes_image(annotation: Path, export: Path, suffix: str) -> str:
    """The leftImg8bit path of a gtFine file ending in `suffix`, relative to the export."""
    return annotation.relative_to(export).as_posix().replace("gtFine/", "leftImg8bit/", 1).replace(
        suffix, "_leftImg8bit.png")


def mask_folder_areas(export: Path, mask: Path) -> Counter:
    """Label -> pixels of an RGB mask of Datumaro's common semantic segmentation layout, named
    through its dataset_meta.json colours."""
    meta = json.loads((export / "dataset_meta.json").read_text())
    by_colour = {tuple(colour): meta["label_map"][key]
                 for key, colour in zip(meta["label_map"], meta["segmentation_colors"], strict=True)}
    colours, counts = np.unique(np.asarray(Image.open(mask).convert("RGB")).reshape(-1, 3), axis=0, return_counts=True)
    return Counter({by_colour[tuple(c)]: n for c, n in zip(colours.tolist(), counts.tolist())})


# --- one export's facts --------------------------------------------------------------------------

@dataclass(frozen=True)
class ExportFacts:
    """An export's format; its items, each by the key `key` makes of its path in the batch, with the
    quarantine rule it must get (None: an image the export ships, with a valid annotation); and its
    shapes per raw label, those of annotations whose image is missing too, as check-source counts them."""

    format: str
    items: dict[str, str | None]
    labels: Counter
    key: Callable[[str], str] = field(default=lambda path: path)


def _labels(counters: Iterable[Counter]) -> Counter:
    """Shapes per label, from Counters of (label, kind)."""
    total = Counter()
    for found in counters:
        for (label, _), n in found.items():
            total[label] += n
    return total


def _cvat_task(export: Path) -> ExportFacts:
    shapes = cvat_expected(export / "train.xml", lambda image: f"images/{image.get('name')}")
    return ExportFacts("cvat_images_1.1", dict.fromkeys(shapes), _labels(shapes.values()))


def _cvat_project(export: Path) -> ExportFacts:
    shapes = cvat_expected(export / "annotations.xml", lambda image: f"images/{image.get('subset')}/{image.get('name')}")
    return ExportFacts("cvat_images_1.1", dict.fromkeys(shapes), _labels(shapes.values()))


def _cvat_video(export: Path) -> ExportFacts:
    frames = cvat_video_frames(export / "annotations.xml")
    shipped = {path.stem for path in (export / "images").iterdir()}
    return ExportFacts("cvat_video_1.1", {frame: None if frame in shipped else "image_missing" for frame in frames},
                       _labels(frames.values()), stem)


def _coco(*annotation_files: str) -> Callable[[Path], ExportFacts]:
    def facts(export: Path) -> ExportFacts:
        shapes = coco_expected(sorted(file for pattern in annotation_files for file in export.glob(pattern)))
        return ExportFacts("coco_instances", dict.fromkeys(shapes), _labels(shapes.values()), basename)
    return facts


def _coco_panoptic(export: Path) -> ExportFacts:
    """One shape per segment, of the images whose PNG has their size."""
    areas, wrong_size = panoptic_expected(export)
    labels = Counter()
    for file in sorted((export / "annotations").glob("panoptic_*.json")):
        doc = json.loads(file.read_text())
        names = {category["id"]: category["name"] for category in doc["categories"]}
        images = {image["id"]: basename(image["file_name"]) for image in doc["images"]}
        labels.update(names[segment["category_id"]] for annotation in doc["annotations"]
                      if images[annotation["image_id"]] not in wrong_size for segment in annotation["segments_info"])
    return ExportFacts("coco_panoptic", {**dict.fromkeys(areas), **dict.fromkeys(wrong_size, "size_mismatch")},
                       labels, basename)


def _labelme(export: Path) -> ExportFacts:
    labels, items = Counter(), {}
    for file in sorted(export.glob("*.json")):
        doc = json.loads(file.read_text())
        labels.update(shape["label"] for shape in doc["shapes"])
        items[doc["imagePath"]] = None if (export / doc["imagePath"]).exists() else "image_missing"
    return ExportFacts("labelme", items, labels)


def _voc(export: Path) -> ExportFacts:
    masks = sorted((export / "SegmentationClass").glob("*.png"))
    images = {f"JPEGImages/{path.name}" for path in (export / "JPEGImages").glob("*.jpg")}
    annotated = {f"JPEGImages/{mask.stem}.jpg": mask for mask in masks}
    return ExportFacts("voc_segmentation", {image: None if image in annotated else "annotation_missing" for image in images},
                       Counter(voc_name(index) for mask in masks for index in voc_class_areas(mask)))


def _ade20k(export: Path) -> ExportFacts:
    segs = sorted(export.rglob("*_seg.png"))
    images = [seg.relative_to(export).as_posix().removesuffix("_seg.png") + ".jpg" for seg in segs]
    return ExportFacts("ade20k", dict.fromkeys(images), Counter(label for seg in segs for label in ade_classes(seg)))


def _cityscapes_polygons(export: Path) -> ExportFacts:
    files = sorted(export.rglob("*_gtFine_polygons.json"))
    labels = Counter(obj["label"] for file in files for obj in json.loads(file.read_text())["objects"]
                     if not obj.get("deleted"))
    return ExportFacts("cityscapes_polygons",
                       dict.fromkeys(cityscapes_image(file, export, "_gtFine_polygons.json") for file in files), labels)


def _cityscapes_label_pngs(export: Path) -> ExportFacts:
    pngs = sorted(export.rglob("*_gtFine_instanceIds.png"))
    return ExportFacts("cityscapes_label_pngs",
                       dict.fromkeys(cityscapes_image(png, export, "_gtFine_instanceIds.png") for png in pngs),
                       Counter(cityscapes_instance_label(value) for png in pngs  # one shape per instance
                               for value in np.unique(np.asarray(Image.open(png))).tolist()))


def _mask_folders(export: Path) -> ExportFacts:
    masks = sorted((export / "masks").glob("*.png"))
    return ExportFacts("image_mask_folders", dict.fromkeys(f"images/{mask.name}" for mask in masks),
                       Counter(label for mask in masks for label in mask_folder_areas(export, mask)))


CORPUS: dict[str, Callable[[Path], ExportFacts]] = {
    "cvat_images_task": _cvat_task,
    "cvat_images_project_subsets": _cvat_project,
    "cvat_video": _cvat_video,
    "coco_instances_datumaro": _coco("annotations/instances_*.json"),
    "coco_labelme2coco": _coco("annotations.json"),
    "coco_panoptic_datumaro": _coco_panoptic,
    "labelme_instance_segmentation": _labelme,
    "labelme_primitives": _labelme,
    "voc_datumaro": _voc,
    "voc_labelme2voc": _voc,
    "ade20k2017_datumaro": _ade20k,
    "ade20k2020_datumaro": _ade20k,
    "cityscapes_gtfine_generated": _cityscapes_polygons,
    "cityscapes_label_pngs_datumaro": _cityscapes_label_pngs,
    "image_mask_folders_datumaro": _mask_folders,
}


def export_facts(name: str) -> ExportFacts:
    return CORPUS[name](EXPORTS / name)
