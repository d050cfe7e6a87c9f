"""coco.json written as it grows, in memory that does not grow with its polygons (a Cityscapes-size
scene has about a hundred, a few KB of JSON each). The annotations arrive serialized but for their
ids (annotation_tails, as coco_fragments stores them), a block of them per image, so a build that
reads them back parses none; they are not kept but read again from where they came from (the
fragments' shelf, itself a temporary file) when the document is written. Their ids go in with one
%-format of the image's block, not one per annotation.

The images come in the order their batches landed (a batch's images by the order they arrived in,
its part group's: see ReleaseItem.group), ids counted from 1 in that order. So a nightly's new
batch comes last: every image and annotation before it keeps its id, and the document's bytes up
to it stay the same. They are written as segments, a batch's annotations cut into runs of about
SEGMENT_BYTES, each of which the ZIP packager deflates alone and remembers (parallel_deflate.py):
a nightly deflates only the segments that changed, not the 478 MB of 10,000 scenes. The content
version's digest is taken over what fixes the document's annotations, as they arrive: each
image's group, name, size, mask and its block's SHA-256, and the batches' order."""

import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence

import orjson

from segpipe.core.shared.hashing_writer import HashingWriter
from segpipe.core.taxonomy.model import Taxonomy

SEGMENT_BYTES = 4 << 20  # runs of annotations deflated (and remembered) as one piece


class CocoDocument:
    def __init__(self, taxonomy: Taxonomy, dataset_name: str, blocks: Callable[[str], bytes],
                 batch_order: Mapping[str, int]) -> None:
        """`blocks`: mask key -> its tails_block, as add_image was given it, for write.
        `batch_order`: batch id -> its place in landing order; a group it lacks comes after them, by name."""
        self._categories = [{"id": c.id, "name": c.name, "supercategory": ""} for c in taxonomy.classes]
        self._dataset_name = dataset_name
        self._blocks = blocks
        self._batch_order = batch_order
        # each image as it arrived: its group, file name, width, height, mask key, annotation count
        self._images: list[tuple[str, str, int, int, str, int]] = []
        self._digest = hashlib.sha256()

    def add_image(self, file_name: str, width: int, height: int, mask_key: str, count: int, block_name: bytes,
                  group: str) -> None:
        """An image of batch `group` and its mask's annotations: `count` of them in the tails_block
        `blocks` gives for `mask_key`, whose SHA-256 (hex) is `block_name`."""
        self._images.append((group, file_name, width, height, mask_key, count))
        self._digest.update(orjson.dumps([group, file_name, width, height, mask_key, count]) + block_name)

    def annotations_digest(self) -> str:
        groups = sorted({image[0] for image in self._images}, key=self._group_place)
        return hashlib.sha256(self._digest.digest() + orjson.dumps(groups)).hexdigest()

    def write(self, out: HashingWriter, version: str) -> None:
        """The whole document: the images in landing order, then each batch's annotations, read back,
        given their ids and written in segments."""
        images = sorted(self._images, key=lambda image: self._group_place(image[0]))  # stable: arrival order within
        info = orjson.dumps({"description": self._dataset_name, "version": version})
        out.write(b'{"info":' + info + b',"licenses":[],"images":[')
        listed = bytearray()
        for image_id, (_, file_name, width, height, _, _) in enumerate(images, start=1):
            listed += (b"," if image_id > 1 else b"") + orjson.dumps(
                {"id": image_id, "file_name": file_name, "width": width, "height": height})
            if len(listed) >= SEGMENT_BYTES:
                out.write(bytes(listed))
                listed.clear()
        out.write(bytes(listed) + b'],"categories":' + orjson.dumps(self._categories) + b',"annotations":[')
        segment, segment_group, first = bytearray(), None, 1
        for image_id, (group, _, _, _, mask_key, count) in enumerate(images, start=1):
            if not count:
                continue
            if segment and (group != segment_group or len(segment) >= SEGMENT_BYTES):
                out.segment(bytes(segment))
                segment.clear()
            if not segment and first > 1:  # between segments, so that each holds whole annotations alone
                out.write(b",")
            segment_group = group
            segment += (b"," if segment else b"") + _with_ids(self._blocks(mask_key), image_id, first, count, b",")
            first += count
        out.segment(bytes(segment))
        out.write(b"]}")

    def _group_place(self, group: str) -> tuple[int, str]:
        return self._batch_order.get(group, len(self._batch_order)), group


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


def held_block(tails: Sequence[bytes]) -> tuple[bytes, int, bytes]:
    """An image's tails_block, how many annotations it holds and its SHA-256 (hex), as a shelf holds
    them (coco_fragments) and add_image takes the last two."""
    block = tails_block(tails)
    return block, len(tails), hashlib.sha256(block).hexdigest().encode()


def annotation_tails(annotations: list[dict], class_ids: Collection[int]) -> list[bytes]:
    """Each annotation (category_id, segmentation, area, bbox, optional iscrowd) of a taxonomy class
    as coco.json holds it, minus the opening `{"id":..,"image_id":..,` that add_image writes:
    the ignore index and other values that are no class are left out."""
    return [_whole_numbers_unpointed(orjson.dumps({
        "category_id": found["category_id"], "segmentation": found["segmentation"], "area": found["area"],
        "iscrowd": found.get("iscrowd", 0), "bbox": found["bbox"]})[1:])
        for found in annotations if found["category_id"] in class_ids]


def _whole_numbers_unpointed(tail: bytes) -> bytes:
    """A vertex on a whole pixel written `6`, not `6.0`: JSON reads both as one number, and most
    sources' vertices are whole (Cityscapes', LabelMe's integer points), so coco.json is a quarter
    smaller and a quarter faster to write, hash, deflate and check. Nothing else in a tail can hold
    `.0` before `,` or `]`: ids, areas and boxes are integers, and an RLE's counts string is made of
    the characters `0` to `o`."""
    return tail.replace(b".0,", b",").replace(b".0]", b"]")
