"""coco.json written as it grows, in memory that does not grow with its polygons (a Cityscapes-size
scene has about a hundred, a few KB of JSON each). The images wait in a temporary file. The
annotations arrive serialized but for their ids (annotation_tails, as coco_fragments stores them),
a block of them per image, so a build that reads them back parses none; they are not kept but read
again from where they came from (the fragments' shelf, itself a temporary file) when the document
is written, so a release writes its annotations to disk once, not twice (478 MB at 10,000
scenes). Their ids go in with one %-format of the image's block, not one per annotation. The
digest of the annotations is taken as they arrive, for the release's content version, which the
document's own `info` holds."""

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Collection, Sequence
from typing import BinaryIO

import orjson

from segpipe.core.taxonomy.model import Taxonomy


class CocoDocument:
    def __init__(self, taxonomy: Taxonomy, dataset_name: str, blocks: Callable[[str], bytes]) -> None:
        """`blocks`: mask key -> its tails_block, as add_image was given it, for write."""
        self._categories = [{"id": c.id, "name": c.name, "supercategory": ""} for c in taxonomy.classes]
        self._dataset_name = dataset_name
        self._blocks = blocks
        self._images = tempfile.TemporaryFile(prefix="segpipe-coco-images-")
        self._masks: list[str] = []  # each image's mask key, in the document's order
        self._counts: list[int] = []  # and how many annotations its block holds (counted once: 48 KB an image)
        self._annotation_count = 0
        self._digest = hashlib.sha256()

    def add_image(self, file_name: str, width: int, height: int, mask_key: str, block: bytes) -> None:
        """An image and its annotations, the tails_block of its mask: each gets its id and the
        image's, exactly as serializing the whole annotation would place them."""
        self._masks.append(mask_key)
        image_id = len(self._masks)
        image = orjson.dumps({"id": image_id, "file_name": file_name, "width": width, "height": height})
        self._images.write(b"," + image if image_id > 1 else image)
        count = block.count(b"\n") + 1 if block else 0
        self._counts.append(count)
        # the annotations one after the other, without the commas between them, as the content version has them
        self._digest.update(_with_ids(block, image_id, self._annotation_count + 1, count, b""))
        self._annotation_count += count

    def annotations_digest(self) -> str:
        return self._digest.hexdigest()

    def write(self, out: BinaryIO, version: str) -> None:
        """The whole document: the images copied from their temporary file in chunks, each image's
        annotations read back and given their ids."""
        info = orjson.dumps({"description": self._dataset_name, "version": version})
        out.write(b'{"info":' + info + b',"licenses":[],"images":[')
        self._images.seek(0)
        shutil.copyfileobj(self._images, out, 1 << 20)
        out.write(b'],"categories":' + orjson.dumps(self._categories) + b',"annotations":[')
        first = 1
        for image_id, (mask_key, count) in enumerate(zip(self._masks, self._counts), start=1):
            if count:
                out.write((b"," if first > 1 else b"") + _with_ids(self._blocks(mask_key), image_id, first, count, b","))
                first += count
        out.write(b"]}")

    def close(self) -> None:
        self._images.close()


def _with_ids(block: bytes, image_id: int, first: int, count: int, separator: bytes) -> bytes:
    """A tails_block's `count` annotations whole, numbered from `first`, `separator` between them."""
    if not count:
        return b""
    head = b'{"id":%%d,"image_id":%d,' % image_id
    ids = tuple(range(first, first + count))
    return (head + block.replace(b"%", b"%%").replace(b"\n", separator + head)) % ids


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
