"""coco.json written as it grows: images and annotations wait in temporary files, not in memory, so a
release's memory does not grow with its polygons (a Cityscapes-size scene has about a hundred,
a few KB of JSON each). Annotations arrive serialized but for their ids (annotation_tails, as
coco_fragments stores them), a block of them per image, so a build that reads them back parses
none; their ids go in with one %-format of the image's block, not one per annotation (a million
annotations at 10,000 scenes). The digest of the annotations is taken as they arrive, for the
release's content version."""

import hashlib
import shutil
import tempfile
from collections.abc import Collection, Sequence
from typing import BinaryIO

import orjson

from segpipe.core.taxonomy.model import Taxonomy


class CocoDocument:
    def __init__(self, taxonomy: Taxonomy, dataset_name: str) -> None:
        self._categories = [{"id": c.id, "name": c.name, "supercategory": ""} for c in taxonomy.classes]
        self._dataset_name = dataset_name
        self._images = tempfile.TemporaryFile(prefix="segpipe-coco-images-")
        self._annotations = tempfile.TemporaryFile(prefix="segpipe-coco-annotations-")
        self._image_count = 0
        self._annotation_count = 0
        self._digest = hashlib.sha256()

    def add_image(self, file_name: str, width: int, height: int, block: bytes) -> None:
        """An image and its annotations, a tails_block: each gets its id and the image's, exactly as
        serializing the whole annotation would place them."""
        self._image_count += 1
        image_id = self._image_count
        image = orjson.dumps({"id": image_id, "file_name": file_name, "width": width, "height": height})
        self._images.write(b"," + image if image_id > 1 else image)
        if not block:
            return
        count = block.count(b"\n") + 1
        first = self._annotation_count + 1
        ids = tuple(range(first, first + count))
        head = b'{"id":%%d,"image_id":%d,' % image_id
        tails = block.replace(b"%", b"%%")
        self._annotations.write((b"," if first > 1 else b"") + (head + tails.replace(b"\n", b"," + head)) % ids)
        self._annotation_count += count
        # the annotations one after the other, without the commas between them, as the content version has them
        self._digest.update((head + tails.replace(b"\n", head)) % ids)

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


def tails_block(tails: Sequence[bytes]) -> bytes:
    """An image's annotation tails as add_image and the fragments take them: one a line (orjson never
    writes a raw newline), b"" for none."""
    return b"\n".join(tails)


def annotation_tails(annotations: list[dict], class_ids: Collection[int]) -> list[bytes]:
    """Each annotation (category_id, segmentation, area, bbox, optional iscrowd) of a taxonomy class
    as coco.json holds it, minus the opening `{"id":..,"image_id":..,` that add_image writes:
    the ignore index and other values that are no class are left out."""
    return [orjson.dumps({"category_id": found["category_id"], "segmentation": found["segmentation"],
                          "area": found["area"], "iscrowd": found.get("iscrowd", 0), "bbox": found["bbox"]})[1:]
            for found in annotations if found["category_id"] in class_ids]


def _copy(spooled: BinaryIO, out: BinaryIO) -> None:
    spooled.seek(0)
    shutil.copyfileobj(spooled, out, 1 << 20)
