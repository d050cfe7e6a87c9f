"""Every member path of a release archive, in one place (as segpipe/store/keys.py holds every store key).

Paths are relative to the unzipped release. An item's files share its split and its stem
(release_stem), so `images/` becomes `masks/`, `instances/` or `labels/` by replacing the folder and
the suffix, as Ultralytics and the README's loader expect. This module imports nothing of segpipe:
writers name what they write with it, verify and the CLI read releases with it.
"""

import re

# The layout's version, in meta.json and _RELEASE.json. 1: a version is one ZIP. 2: a version is its
# own ZIP plus the shared parts _RELEASE.json lists (one ZIP while it fits in one part; parts.py);
# unzipped together they are the layout below, the same in both.
RELEASE_FORMAT = 2

QA_REPORT = "qa/report.csv"
QA_THUMBNAIL = "qa/thumbnails/{}/{}.png"  # check_id, entry_id: a pl.format template
REPORTS_DIR = "sampling/"  # the report files a build passes in (sampling's tables and chart)
DISTRIBUTION_CHART = "sampling/distribution.png"
COCO = "coco/coco.json"
INDEX_CSV = "index.csv"
INDEX_PARQUET = "index.parquet"
META = "meta.json"
CLASS_MAP = "dataset_meta.json"  # Datumaro's class map
YOLO_DATA = "yolo/data.yaml"
DATASHEET = "README.md"
LEGEND = "legend.png"  # the class colours of masks and QA pictures, and the QA problem colour
SHA256SUMS = "SHA256SUMS"
IMAGES_DIR = "images/"


def release_stem(file_name: str, image_id: str) -> str:
    """A safe, unique archive name: the original stem for humans, the content hash for uniqueness."""
    stem = file_name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '_', stem)[:80]}_{image_id[:12]}"


def image(split: str, stem: str, suffix: str) -> str:
    """A released image, under the suffix it was stored with."""
    return f"{IMAGES_DIR}{split}/{stem}.{suffix}"


def is_image(path: str) -> bool:
    """Whether a member is a released image: images go into image parts, an item's other files into
    annotation parts (see parts.py)."""
    return path.startswith(IMAGES_DIR)


def mask(split: str, stem: str) -> str:
    return f"masks/{split}/{stem}.png"


def instance_mask(split: str, stem: str) -> str:
    return f"instances/{split}/{stem}.png"


def yolo_label(split: str, stem: str) -> str:
    return f"labels/{split}/{stem}.txt"


# Trainer layouts (release.exports). Each keeps its files under its own folder; the images a layout
# needs are the release's own, listed in its images.csv (path in the layout, path in the release) and
# linked into place by `segpipe fetch --layout` (release/assemble.py), so none is stored twice.
EXPORT_IMAGES = "{}/images.csv"  # export name
CITYSCAPES_LABEL = "cityscapes/gtFine/{split}/{city}/{name}_gtFine_{kind}.png"  # kind: labelTrainIds, labelIds
CITYSCAPES_IMAGE = "cityscapes/leftImg8bit/{split}/{city}/{name}_leftImg8bit.{suffix}"
VOC_MASK = "voc/SegmentationClass/{}.png"
VOC_IMAGE = "voc/JPEGImages/{}.{}"
VOC_LIST = "voc/ImageSets/Segmentation/{}.txt"
VOC_LABELMAP = "voc/labelmap.txt"
HF_CARD = "hf/README.md"
HF_DATA = "hf/data/{}-00000-of-00001.parquet"  # split: assembled by fetch, never a member


def cityscapes_part(text: str) -> str:
    """One `_`-separated field of a Cityscapes file name (city, sequence or frame), which
    cityscapesScripts' getCsFileInfo splits on `_` and `.`: neither may occur in it."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-")[:60] or "unknown"


def cityscapes_name(city: str, file_name: str, image_id: str) -> str:
    """`<city>_<original stem>_<image_id[:12]>`: the `{city}_{sequenceNb}_{frameNb}` that
    cityscapesScripts' evaluation matches predictions by."""
    stem = file_name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return f"{cityscapes_part(city)}_{cityscapes_part(stem)}_{image_id[:12]}"
