"""Annotation format readers, registered by the format name a batch manifest declares."""

from collections.abc import Callable

from segpipe.core.formats import coco, cvat
from segpipe.core.formats.annotation import AnnotatedImage, Shape

Reader = Callable[[bytes, str], list[AnnotatedImage]]

READERS: dict[str, Reader] = {
    cvat.FORMAT: cvat.read_cvat_images,
    coco.FORMAT: coco.read_coco_instances,
}

__all__ = ["READERS", "AnnotatedImage", "Reader", "Shape"]
