"""coco.json written as it grows: images and annotations wait in temporary files, not in memory, so a
release's memory does not grow with its polygons (a Cityscapes-size scene has about a hundred,
a few KB of JSON each). The digest of the annotations is taken as they arrive, for the release's
content version."""

import hashlib
import shutil
import tempfile
from typing import BinaryIO

import orjson

from segpipe.core.taxonomy.model import Taxonomy


class CocoDocument:
    def __init__(self, taxonomy: Taxonomy, dataset_name: str) -> None:
        self._categories = [{"id": c.id, "name": c.name, "supercategory": ""} for c in taxonomy.classes]
        self._class_ids = taxonomy.class_ids
        self._dataset_name = dataset_name
        self._images = tempfile.TemporaryFile(prefix="segpipe-coco-images-")
        self._annotations = tempfile.TemporaryFile(prefix="segpipe-coco-annotations-")
        self._image_count = 0
        self._annotation_count = 0
        self._digest = hashlib.sha256()

    def add_image(self, file_name: str, width: int, height: int, annotations: list[dict]) -> None:
        """An image and its annotations (category_id, segmentation, area, bbox, optional iscrowd);
        annotations of values that are not taxonomy classes (the ignore index) are left out."""
        self._image_count += 1
        image_id = self._image_count
        image = orjson.dumps({"id": image_id, "file_name": file_name, "width": width, "height": height})
        self._images.write(b"," + image if image_id > 1 else image)
        for found in annotations:
            if found["category_id"] not in self._class_ids:
                continue
            self._annotation_count += 1
            body = orjson.dumps({
                "id": self._annotation_count, "image_id": image_id, "category_id": found["category_id"],
                "segmentation": found["segmentation"], "area": found["area"],
                "iscrowd": found.get("iscrowd", 0), "bbox": found["bbox"]})
            self._annotations.write(b"," + body if self._annotation_count > 1 else body)
            self._digest.update(body)

    def annotations_digest(self) -> str:
        return self._digest.hexdigest()

    def write(self, out: BinaryIO, version: str) -> None:
        """The whole document; images and annotations are copied from their temporary files in chunks."""
        info = orjson.dumps({"description": self._dataset_name, "version": version})
        out.write(b'{"info":' + info + b',"licenses":[],"images":[')
        _copy(self._images, out)
        out.write(b'],"categories":' + orjson.dumps(self._categories) + b',"annotations":[')
        _copy(self._annotations, out)
        out.write(b"]}")

    def close(self) -> None:
        self._images.close()
        self._annotations.close()


def _copy(spooled: BinaryIO, out: BinaryIO) -> None:
    spooled.seek(0)
    shutil.copyfileobj(spooled, out, 1 << 20)
