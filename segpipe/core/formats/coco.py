"""COCO instances JSON: polygon segmentations (multi-part allowed) in document order."""

from collections import defaultdict

import orjson

from segpipe.core.errors import InputError
from segpipe.core.formats.annotation import AnnotatedImage, Shape, parse_ring

FORMAT = "coco_instances"
ACCEPTS = "a COCO instances JSON (images, categories, annotations) with polygon segmentations"


def read_coco_instances(data: bytes, origin: str) -> list[AnnotatedImage]:
    try:
        doc = orjson.loads(data)
        categories = {c["id"]: c["name"] for c in doc["categories"]}
        image_docs = doc["images"]
        annotation_docs = doc["annotations"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError("unparseable_annotations", f"{origin}: not a readable COCO instances file: {exc!r}") from exc
    by_image: dict[object, list[dict]] = defaultdict(list)
    for annotation in annotation_docs:
        by_image[annotation.get("image_id")].append(annotation)
    images = []
    for image_doc in image_docs:
        images.append(_read_image(image_doc, by_image.get(image_doc.get("id"), []), categories, origin))
    return images


def _read_image(image_doc: dict, annotations: list[dict], categories: dict, origin: str) -> AnnotatedImage:
    name = str(image_doc.get("file_name", ""))
    width, height = image_doc.get("width"), image_doc.get("height")
    if not isinstance(width, int) or not isinstance(height, int):
        return AnnotatedImage(name, 0, 0, error=InputError(
            "malformed_annotation", f"{origin}: image {name!r} has no integer width/height"))
    image = AnnotatedImage(name, width, height)
    for index, annotation in enumerate(annotations):
        label = categories.get(annotation.get("category_id"))
        segmentation = annotation.get("segmentation")
        if label is None:
            image.error = InputError("unknown_category", (
                f"{origin}: image {name!r}: annotation #{index} has category_id "
                f"{annotation.get('category_id')!r}, which is not in categories"))
            return image
        if not isinstance(segmentation, list):
            image.error = InputError("unsupported_shape", (
                f"{origin}: image {name!r}: annotation #{index} ({label!r}) is an RLE mask; "
                "this reader takes polygon segmentations only"))
            return image
        try:
            rings = tuple(parse_ring([float(v) for v in ring], origin, name, index, label) for ring in segmentation)
        except InputError as exc:
            image.error = exc
            return image
        except (TypeError, ValueError):
            image.error = InputError(
                "malformed_polygon", f"{origin}: image {name!r}: annotation #{index} ({label!r}) has non-numeric points")
            return image
        image.shapes.append(Shape(label, 0, rings))
    return image
