"""The review queue as a CVAT task: what `segpipe review export` writes for a reviewer to correct.

A "CVAT for images 1.1" archive, as CVAT itself exports a task with its images: `images/<name>`
and `annotations.xml`, whose `<meta><task>` lists the labels and whose `<image>` elements hold the
pre-annotation as `<mask>` elements in CVAT's RLE (row-major run lengths over a tight box, first
run background: core/ingest/formats/cvat_rle.py). Each image gets one mask per class of its
released (fused) mask; pixels released as ignore get none. The pixels the annotators disputed
(where the agreement map is below 255: not every annotator gave the leading class) get one more
mask of DISPUTED_LABEL, on top, for the reviewer to look at first; a review batch never paints it
(core/taxonomy/model.py maps it to skip).

The labels are the taxonomy's class names and DISPUTED_LABEL, every one of them, so a task
created with exactly these labels (docs/review.md) accepts the file and the reviewer may paint any
class. The image bytes are the stored ones, which are the delivered file unless an EXIF tag rotated
it; the review batch finds its images again by their content (core/consensus/review.py).
"""

import io
import posixpath
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO
from xml.etree.ElementTree import Element, ElementTree, SubElement, indent

import numpy as np

from segpipe.core.ingest.formats.annotation import BoxMask
from segpipe.core.ingest.formats.cvat_rle import encode_cvat_rle
from segpipe.core.taxonomy.model import DISPUTED_LABEL, Taxonomy

ANNOTATIONS_FILE = "annotations.xml"
IMAGES_DIR = "images"
DISPUTED_COLOR = "#ff00ff"


@dataclass(frozen=True)
class ReviewImage:
    """One image of the queue: its file name, stored bytes and suffix, released mask (class ids) and
    the pixels its annotators disputed (None: no agreement map, a single annotator's image)."""

    image_id: str
    file_name: str
    image: bytes
    suffix: str
    mask: np.ndarray
    disputed: np.ndarray | None


def task_names(images: Sequence[ReviewImage]) -> list[str]:
    """The name of each image in the task: its file's base name with the stored image's suffix,
    prefixed by the start of its image id where two images would share a name (CVAT needs unique names)."""
    bases = [posixpath.splitext(posixpath.basename(image.file_name))[0] + image.suffix for image in images]
    return [base if bases.count(base) == 1 else f"{image.image_id[:12]}_{base}" for base, image in zip(bases, images)]


def write_review_task(out: BinaryIO, images: Sequence[ReviewImage], taxonomy: Taxonomy, task_name: str) -> None:
    """Write the CVAT task archive of `images` (in queue order) to `out`."""
    names = task_names(images)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(ANNOTATIONS_FILE, annotations_xml(images, names, taxonomy, task_name))
        for image, name in zip(images, names):
            archive.writestr(f"{IMAGES_DIR}/{name}", image.image, compress_type=zipfile.ZIP_STORED)


def annotations_xml(images: Sequence[ReviewImage], names: Sequence[str], taxonomy: Taxonomy, task_name: str) -> bytes:
    """The task's annotations.xml, as CVAT for images 1.1 writes it."""
    root = Element("annotations")
    SubElement(root, "version").text = "1.1"
    task = SubElement(SubElement(root, "meta"), "task")
    for key, value in (("name", task_name), ("size", str(len(images))), ("mode", "annotation"), ("overlap", "0")):
        SubElement(task, key).text = value
    labels = SubElement(task, "labels")
    colors = [(c.name, "#{:02x}{:02x}{:02x}".format(*c.color)) for c in sorted(taxonomy.classes, key=lambda c: c.id)]
    for name, color in [*colors, (DISPUTED_LABEL, DISPUTED_COLOR)]:
        label = SubElement(labels, "label")
        SubElement(label, "name").text = name
        SubElement(label, "color").text = color
        SubElement(label, "type").text = "mask"
        SubElement(label, "attributes")
    class_name = {c.id: c.name for c in taxonomy.classes}
    for index, (image, name) in enumerate(zip(images, names)):
        height, width = image.mask.shape
        element = SubElement(root, "image", id=str(index), name=name, width=str(width), height=str(height))
        for class_id in np.unique(image.mask).tolist():
            if class_id in class_name:
                _mask(element, class_name[class_id], image.mask == class_id, 0)
        if image.disputed is not None:
            _mask(element, DISPUTED_LABEL, image.disputed, 1)
    indent(root)
    out = io.BytesIO()
    ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)
    return out.getvalue()


def _mask(parent: Element, label: str, binary: np.ndarray, z_order: int) -> None:
    box = BoxMask.from_array(binary)
    if box is not None:
        SubElement(parent, "mask", label=label, source="auto", occluded="0", **encode_cvat_rle(box),
                   z_order=str(z_order))

