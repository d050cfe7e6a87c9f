"""Writers for the real export formats the demo's batches come in: CVAT for images 1.1 and COCO instances from
the vendors, COCO results from the model."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import orjson
from PIL import Image, ImageDraw

from segpipe.core.shared.rle import encode_rle
from segpipe.demo.scenes import Ring, Shape, ring_area

# Fixed export timestamps keep the files byte-identical between runs.
CVAT_DUMPED = "2026-11-01 00:00:00.000000+00:00"
COCO_DATE_CREATED = "2026-11-01T00:00:00+00:00"


@dataclass(frozen=True)
class AnnotatedImage:
    """One image entry as the export records it (width/height as annotated, not as on disk)."""

    file_name: str
    width: int
    height: int
    shapes: tuple[Shape, ...]  # raw labels, painter's order


@dataclass(frozen=True)
class Category:
    id: int
    name: str
    supercategory: str


def cvat_images_xml(task_name: str, labels: Sequence[tuple[str, str]], images: Sequence[AnnotatedImage]) -> bytes:
    """CVAT for images 1.1: one <polygon> per ring, back to front, z_order kept.

    labels are (name, "#rrggbb") in the order the <meta> should list them.
    """
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    meta = ET.SubElement(root, "meta")
    task = ET.SubElement(meta, "task")
    for tag, text in (
        ("id", "1"),
        ("name", task_name),
        ("size", str(len(images))),
        ("mode", "annotation"),
        ("overlap", "0"),
    ):
        ET.SubElement(task, tag).text = text
    label_list = ET.SubElement(task, "labels")
    for name, colour in labels:
        label = ET.SubElement(label_list, "label")
        ET.SubElement(label, "name").text = name
        ET.SubElement(label, "color").text = colour
        ET.SubElement(label, "type").text = "polygon"
        ET.SubElement(label, "attributes")
    ET.SubElement(meta, "dumped").text = CVAT_DUMPED
    for image_id, image in enumerate(images):
        element = ET.SubElement(
            root,
            "image",
            {"id": str(image_id), "name": image.file_name, "width": str(image.width), "height": str(image.height)},
        )
        for shape in image.shapes:
            for ring in shape.rings:
                ET.SubElement(
                    element,
                    "polygon",
                    {
                        "label": shape.label,
                        "source": "manual",
                        "occluded": "0",
                        "points": ";".join(f"{x:.2f},{y:.2f}" for x, y in ring),
                        "z_order": str(shape.z_order),
                    },
                )
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode", short_empty_elements=False)
    return f'<?xml version="1.0" encoding="utf-8"?>\n{body}\n'.encode()


def coco_instances_json(contributor: str, categories: Sequence[Category], images: Sequence[AnnotatedImage]) -> bytes:
    """COCO instances: document order of an image's annotations is painter's order (COCO has no z)."""
    category_ids = {category.name: category.id for category in categories}
    coco_images = []
    annotations = []
    for image_id, image in enumerate(images, start=1):
        coco_images.append({"id": image_id, "file_name": image.file_name, "width": image.width, "height": image.height})
        for shape in image.shapes:
            annotations.append(_coco_annotation(len(annotations) + 1, image_id, category_ids[shape.label], shape.rings))
    document = {
        "info": {
            "description": f"{contributor} delivery",
            "version": "1.0",
            "year": 2026,
            "contributor": contributor,
            "date_created": COCO_DATE_CREATED,
        },
        "licenses": [],
        "images": coco_images,
        "categories": [
            {"id": c.id, "name": c.name, "supercategory": c.supercategory}
            for c in sorted(categories, key=lambda c: c.id)
        ],
        "annotations": annotations,
    }
    return orjson.dumps(document)


def _coco_annotation(annotation_id: int, image_id: int, category_id: int, rings: tuple[Ring, ...]) -> dict:
    xs = [x for ring in rings for x, _ in ring]
    ys = [y for ring in rings for _, y in ring]
    left, top = min(xs), min(ys)
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": [[round(v, 2) for point in ring for v in point] for ring in rings],
        "area": round(sum(ring_area(ring) for ring in rings), 2),
        "bbox": [round(left, 2), round(top, 2), round(max(xs) - left, 2), round(max(ys) - top, 2)],
        "iscrowd": 0,
    }


def coco_results_json(categories: Sequence[Category], images: Sequence[AnnotatedImage],
                      scores: Sequence[Sequence[float]]) -> bytes:
    """A model's COCO results over `images` (image ids as coco_instances_json numbers them): one prediction per
    shape, its mask the pixels the shape shows (what a segmentation model predicts, not what lies behind the
    shapes painted over it), compressed RLE, with the score given; a shape that shows no pixel is left out."""
    category_ids = {category.name: category.id for category in categories}
    results = []
    for image_id, (image, image_scores) in enumerate(zip(images, scores, strict=True), start=1):
        painted = Image.new("I", (image.width, image.height), 0)
        draw = ImageDraw.Draw(painted)
        for index, shape in enumerate(image.shapes, start=1):
            for ring in shape.rings:
                draw.polygon([(x, y) for x, y in ring], fill=index)
        shown = np.asarray(painted)
        for index, (shape, score) in enumerate(zip(image.shapes, image_scores, strict=True), start=1):
            mask = shown == index
            if mask.any():
                results.append({"image_id": image_id, "category_id": category_ids[shape.label],
                                "segmentation": encode_rle(mask), "score": round(float(score), 3)})
    return orjson.dumps(results)
