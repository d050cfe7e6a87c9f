"""COCO instances JSON, streamed: one file annotates many images.

Document. `images` is a list of `{id, file_name, width, height}` (file_name relative to the
batch's images folder, subfolders allowed; see "Images" below); `categories` a list of `{id,
name}` with any integer ids (non-contiguous, 0 included); `annotations` a list of `{id, image_id,
category_id, segmentation?, bbox?, iscrowd?}`. Key order varies between exporters and categories may come
last, so the file is read in two streaming passes: strict_json's scan checks the whole document
(nesting depth, element size, duplicate keys) and builds `images` and `categories`, then ijson's
C backend builds the annotations one at a time; images are yielded only once the whole file has
been read. Coordinates are kept as
numpy arrays as soon as an annotation is parsed: a file of 5,000 images with 100 polygons each
would not fit in memory as Python lists.

Shapes, in document order, all with z_order 0:
- `segmentation` a list of rings -> one "polygon" shape whose rings are painted as a union;
- `segmentation` an RLE object (`counts` a string: compressed; a list: uncompressed; both
  column-major), whose `size` must be the image's [height, width] -> a "mask" shape;
- no segmentation (absent, null or []) -> a "box" shape from `bbox` [x, y, w, h].
`iscrowd` is kept as `attributes["iscrowd"]` ("1"/"0"): a crowd region is a shape like any
other, and the taxonomy decides what to do with it.

Errors. A file that cannot be read as a whole (not JSON, truncated, NaN/Infinity or an
overflowing number, top level not an object, `images`/`categories`/`annotations` missing or
not lists, a malformed `categories` table, which gives every label of the file its meaning)
raises InputError("unparseable_annotations") and ingest quarantines the batch; so do nesting or
an element over strict_json's bounds ("json_too_deep", "json_element_too_large") and a key given
twice anywhere but inside an entry of `images` or `annotations` ("duplicate_key": a repeated
top-level key, or one in `info` or `categories`). A key repeated inside an entry of `images` or
an annotation quarantines that image only, with "duplicate_key". Anything wrong
with one image or one annotation (a wrong type, a bad vertex, an unknown category, an RLE of the
wrong size) is an error on that image naming the file, the image and the annotation id; two
images with the same id both get an error. Annotations whose image_id is not in `images` are
reported, never dropped: each such id yields an AnnotatedImage named
`<annotation file>#image_id=<id>` with width and height 0 and an "image_missing" error.

Images. `file_name` is looked up (image_lookup) at `<images_dir>/<file_name>`, then where COCO
exporters put images: `<images_dir>/<subset>/` and `images/<subset>/` (Datumaro and CVAT, the
subset named by `instances_<subset>.json`, or `panoptic_<subset>.json` for coco_panoptic),
`images/`, `<subset>/` at the root (COCO 2017's `val2017/`), `JPEGImages/`, beside the JSON
(Roboflow), the batch root, `data/<subset>/` and `data/` (FiftyOne); then by its file name
anywhere in the batch. An image not found keeps its shapes and gets `image_error`, so an export
can be linted before its images are uploaded.

Detection. A JSON file anywhere in the batch whose first 64 KiB hold a COCO key with a list value
(`"images": [`, `"annotations": [`, `"categories": [`) and no key of the other JSON formats; when
those bytes are the whole document, it must be an object with `images` and `annotations` lists,
so a small info or categories file beside the export is not taken for one. COCO's shapeless task
files (`captions_*`, `image_info_*`, Datumaro's `labels_*`) are not claimed, whatever their size,
nor are panoptic files (`segments_info` in the head, or PNGs in the folder named after the JSON):
coco_panoptic reads those, with this module's helpers and image lookup.
"""

import json
import posixpath
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from types import MappingProxyType
from typing import Any

import ijson
import numpy as np
import orjson

from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import (
    DUPLICATE_IMAGE_ID,
    DUPLICATE_KEY,
    EMPTY_MASK,
    IMAGE_MISSING,
    MALFORMED_ANNOTATION,
    MALFORMED_POLYGON,
    SIZE_MISMATCH,
    UNKNOWN_CATEGORY,
    UNPARSEABLE_ANNOTATIONS,
)
from segpipe.core.ingest.formats.annotation import AnnotatedImage, BoxMask, Shape, box_ring, parse_ring
from segpipe.core.ingest.formats.reader import EVIDENCE_IMAGES, FormatReader, ReaderOptions
from segpipe.core.ingest.formats.strict_json import UTF8_BOM, JsonScan, Utf8Stream, scan_json, yajl_message
from segpipe.core.ingest.image_lookup import ImageIndex, ImageLookup
from segpipe.core.shared.rle import decode_rle, rle_size
from segpipe.core.ingest.sources.source import BatchSource

COCO_LIST = re.compile(rb'"(?:images|annotations|categories)"\s*:\s*\[')
FILE_NAME = re.compile(rb'"file_name"\s*:\s*("(?:[^"\\]|\\.)*")')
OTHER_FORMAT_KEYS = (b'"shapes"', b'"objects"', b'"imgHeight"')  # LabelMe, Cityscapes
# The task files COCO and Datumaro write beside instances_*.json that hold no shape: captions, the
# image lists of unlabelled splits (image_info_test2017.json, too big to tell by its head), labels.
OTHER_TASK_PREFIXES = ("captions_", "image_info_", "labels_")
# The task files named `<task>_<subset>.json` whose subset names an images folder (images/<subset>/).
SUBSET_PREFIXES = ("instances_", "panoptic_")
PANOPTIC_KEY = b'"segments_info"'
MAX_LISTED_IDS = 10
# Shared, read-only: one dict per shape would cost ~90 MB over 500,000 shapes.
CROWD_ATTRIBUTES = {value: MappingProxyType({"iscrowd": str(value)}) for value in (0, 1)}


def coco_files(names: Sequence[str], head: Callable[[str], bytes]) -> list[str]:
    """COCO JSON files anywhere in the batch (coco_json_candidates) but the panoptic ones, which
    share the keys and are left to their reader (is_panoptic)."""
    return [name for name in coco_json_candidates(names, head) if not is_panoptic(name, names, head(name))]


def coco_json_candidates(names: Sequence[str], head: Callable[[str], bytes]) -> list[str]:
    """JSON files anywhere in the batch whose first bytes show a COCO file, instances or panoptic
    (see the module docstring), but COCO's shapeless task files; any one COCO key suffices in a cut
    head, because key order varies."""
    return [name for name in names if name.lower().endswith(".json")
            and not posixpath.basename(name).lower().startswith(OTHER_TASK_PREFIXES) and _looks_like_coco(head(name))]


def is_panoptic(name: str, names: Sequence[str], head: bytes) -> bool:
    """A COCO panoptic JSON: `segments_info` in its head, or PNGs in the folder named after it
    (`annotations/panoptic_val2017.json` beside `annotations/panoptic_val2017/`), which is how
    panopticapi and Datumaro lay it out. The folder decides when a big file's head ends before
    its first annotation."""
    folder = name[: -len(".json")] + "/"
    return PANOPTIC_KEY in head or any(n.startswith(folder) and n.lower().endswith(".png") for n in names)


def _looks_like_coco(data: bytes) -> bool:
    """A byte search where the head is cut mid-document; a check of the keys where it is whole."""
    if not COCO_LIST.search(data) or any(key in data for key in OTHER_FORMAT_KEYS):
        return False
    try:
        doc = orjson.loads(data.removeprefix(UTF8_BOM))
    except orjson.JSONDecodeError:  # cut at 64 KiB, or broken: the reader will say which
        return True
    return isinstance(doc, dict) and isinstance(doc.get("images"), list) and isinstance(doc.get("annotations"), list)


def coco_images_named(name: str, head: Callable[[str], bytes], index: ImageIndex, images_dir: str) -> list[str]:
    """The batch images the first `file_name`s in the file's head point at: detection's evidence."""
    found = []
    places = coco_places(name, images_dir)
    for match in FILE_NAME.finditer(head(name)):
        try:
            file_name = json.loads(match.group(1))
        except ValueError:
            continue
        lookup = find_image(index, images_dir, places, file_name, name)
        if lookup.found:
            found.append(lookup.file_name)
        if len(found) == EVIDENCE_IMAGES:
            break
    return found


def coco_places(json_name: str, images_dir: str) -> list[str]:
    """The folders COCO exporters put images in, for an annotation file at `json_name`."""
    stem = posixpath.splitext(posixpath.basename(json_name))[0]
    subset = next((stem.removeprefix(prefix) for prefix in SUBSET_PREFIXES if stem.startswith(prefix)), "")
    folders = (f"{images_dir}/{subset}", images_dir, f"images/{subset}", "images", subset, "JPEGImages",
               posixpath.dirname(json_name), "", f"data/{subset}", "data")
    return list(dict.fromkeys(folder.strip("/") for folder in folders))


def find_image(index: ImageIndex, images_dir: str, places: list[str], file_name: str, where: str) -> ImageLookup:
    """The image an entry of `images` names: relative to images_dir, else where exporters put it (coco_places)."""
    return index.find(file_name, where, base=images_dir, places=places)


def read_coco_instances(source: BatchSource, files: list[str], options: ReaderOptions) -> Iterator[AnnotatedImage]:
    """Every image of every file, one file after another; a file is read whole before its images are yielded."""
    index = options.image_index(source, files)
    for name in files:
        yield from _read_file(source, name, options.images_dir, index)


def _read_file(source: BatchSource, name: str, images_dir: str, image_index: ImageIndex) -> Iterator[AnnotatedImage]:
    origin, scan, entries = scan_images(source, name, images_dir, image_index)
    categories = category_table(scan.values.pop("categories"), origin)
    table = ImageTable(name, origin, entries)
    duplicates = scan.item_errors.get("annotations", {})
    for index, doc in enumerate(stream_items(source, name, "annotations.item", origin)):
        table.add(doc, index, categories, duplicates.get(index))
    yield from table.drain()


def scan_images(source: BatchSource, name: str, images_dir: str,
                image_index: ImageIndex) -> tuple[str, JsonScan, list[tuple[Any, AnnotatedImage]]]:
    """The file checked and scanned (scan_document), and each `images` entry as (its id, its image
    looked up where COCO exports keep images); what instances and panoptic files share."""
    origin = source.origin(name)
    scan = scan_document(source, name, origin)
    places = coco_places(name, images_dir)
    duplicates = scan.item_errors.get("images", {})
    entries = [image_entry(doc, position, name, origin, images_dir, places, image_index, duplicates.get(position))
               for position, doc in enumerate(scan.values.pop("images"))]
    return origin, scan, entries


def scan_document(source: BatchSource, name: str, origin: str) -> JsonScan:
    """The whole file checked (strict_json's bounds and duplicate keys), `images` and `categories`
    built, and `images`, `categories` and `annotations` required as lists. A duplicate key in an
    entry of `images` or `annotations` is left to that entry's image; in `categories`, whose table
    gives every label its meaning, it is the file's."""
    with source.open(name) as stream:
        scan = scan_json(stream, origin, collect=("images", "categories"), item_duplicates=True)
    for key in ("images", "categories", "annotations"):
        kind = scan.kinds.get(key)
        if kind != "list":
            found = "missing (or the top level is not an object)" if kind is None else f"a JSON {kind}, not a list"
            raise InputError(UNPARSEABLE_ANNOTATIONS, f"{origin}: not a COCO instances file: `{key}` is {found}")
    for detail in scan.item_errors.get("categories", {}).values():
        raise InputError(DUPLICATE_KEY, f"{origin}: {detail}")
    return scan


def stream_items(source: BatchSource, name: str, prefix: str, origin: str) -> Iterator[Any]:
    """Items under `prefix` of a file scan_document accepted, built by ijson's C backend: the scan's
    bounds keep its prefixes and items small."""
    with source.open(name) as stream:
        try:
            yield from ijson.items(Utf8Stream(stream), prefix, use_float=True)
        except ijson.JSONError as exc:  # the file changed since it was scanned
            raise InputError(UNPARSEABLE_ANNOTATIONS, f"{origin}: not valid JSON: {yajl_message(exc)}") from exc


def category_table(docs: list, origin: str) -> dict[int, str]:
    """Category id -> name. The table gives every annotation of the file its label, so any fault
    in it is a fault of the file."""
    categories: dict[int, str] = {}
    for index, doc in enumerate(docs):
        if not isinstance(doc, dict) or type(doc.get("id")) is not int or not isinstance(doc.get("name"), str):
            raise InputError(UNPARSEABLE_ANNOTATIONS, (
                f"{origin}: categories[{index}] is {short(doc)}, not {{\"id\": integer, \"name\": string}}"))
        if doc["id"] in categories:
            raise InputError(UNPARSEABLE_ANNOTATIONS, f"{origin}: category id {doc['id']} is defined twice")
        categories[doc["id"]] = doc["name"]
    return categories


def short(value: Any) -> str:
    """A value as messages quote it, cut short: a wrong value may be a whole nested object."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def image_entry(doc: Any, position: int, name: str, origin: str, images_dir: str, places: list[str],
                image_index: ImageIndex, duplicate: str | None = None) -> tuple[Any, AnnotatedImage]:
    """(id, image) for one entry of `images`; a bad entry (`duplicate` is the scan's word on a key
    it repeats) is an error on its image, named by its file_name when it has one, else by its
    position in the file. An image file not found is the image's `image_error`: its annotations
    are still read."""
    if not isinstance(doc, dict) or not isinstance(doc.get("file_name"), str) or not doc["file_name"]:
        placeholder = f"{name}#images[{position}]"
        return None, AnnotatedImage(placeholder, 0, 0, error=InputError(
            MALFORMED_ANNOTATION, f"{origin}: images[{position}] has no file_name string: {short(doc)}"))
    lookup = find_image(image_index, images_dir, places, doc["file_name"], f"{origin}: images[{position}]")
    file_name = lookup.file_name
    if duplicate is not None:
        return doc.get("id"), AnnotatedImage(file_name, 0, 0, error=InputError(
            DUPLICATE_KEY, f"{origin}: image {file_name!r}: {duplicate}"))
    for key, positive in (("id", False), ("width", True), ("height", True)):
        value = doc.get(key)
        if type(value) is not int or (positive and value <= 0):
            wanted = "a positive integer" if positive else "an integer"
            return doc.get("id"), AnnotatedImage(file_name, 0, 0, error=InputError(
                MALFORMED_ANNOTATION, f"{origin}: image {file_name!r}: {key} is {short(value)}, not {wanted}"))
    return doc["id"], AnnotatedImage(file_name, doc["width"], doc["height"], image_error=lookup.error)


class ImageTable:
    """The file's images by id, collecting each annotation onto its image as it streams past."""

    def __init__(self, name: str, origin: str, entries: list[tuple[Any, AnnotatedImage]]) -> None:
        self.name, self.origin = name, origin
        self.images = [image for _, image in entries]
        self.by_id: dict[int, list[AnnotatedImage]] = defaultdict(list)
        for image_id, image in entries:
            if type(image_id) is int:
                self.by_id[image_id].append(image)
        for image_id, images in self.by_id.items():
            if len(images) > 1:
                for image in images:
                    image.add_error(InputError(DUPLICATE_IMAGE_ID, (
                        f"{origin}: image {image.file_name!r}: image id {image_id} is used by {len(images)} images "
                        f"({', '.join(repr(i.file_name) for i in images[:MAX_LISTED_IDS])})")))
        self.missing: dict[str, list[str]] = defaultdict(list)

    def add(self, doc: Any, index: int, categories: dict[int, str], duplicate: str | None) -> None:
        """Attach one annotation to its image, or record it against an image id that does not exist.
        An annotation that repeats a key (`duplicate`) quarantines the image its (last) image_id names;
        every bad annotation of an image is an error of it."""
        image_id = doc.get("image_id") if isinstance(doc, dict) else None
        images = self.by_id.get(image_id, []) if type(image_id) is int else []
        if not images:
            self.missing[repr(image_id)].append(_annotation_name(doc, index))
        for image in images:
            if not image.has_frame:
                continue  # its images entry is unusable, as its error says: no frame to check the annotation in
            if duplicate is not None:
                image.add_error(InputError(DUPLICATE_KEY, (
                    f"{self.origin}: image {image.file_name!r}: {_annotation_name(doc, index)}: {duplicate}")))
                continue
            try:
                image.add_shape(_shape(doc, index, image, categories, self.origin))
            except InputError as exc:
                image.add_error(exc)

    def drain(self) -> Iterator[AnnotatedImage]:
        """The images in file order, each forgotten once handed over (so the caller's tables replace
        the parsed file in memory instead of adding to it), then one error entry per image id that
        annotations name but `images` lacks."""
        images, self.images = self.images, []
        self.by_id.clear()
        images.reverse()
        while images:
            yield images.pop()
        yield from [
            AnnotatedImage(f"{self.name}#image_id={image_id}", 0, 0, error=InputError(IMAGE_MISSING, (
                f"{self.origin}: {len(names)} annotation(s) ({', '.join(names[:MAX_LISTED_IDS])}"
                f"{', ...' if len(names) > MAX_LISTED_IDS else ''}) reference image id {image_id}, "
                "which is not in `images`")))
            for image_id, names in self.missing.items()
        ]


def _annotation_name(doc: Any, index: int) -> str:
    """How messages name an annotation: its id, or its position when it has no integer id."""
    if isinstance(doc, dict) and type(doc.get("id")) is int:
        return f"annotation id {doc['id']}"
    return f"annotations[{index}]"


def _shape(doc: dict, index: int, image: AnnotatedImage, categories: dict[int, str], origin: str) -> Shape:
    """One annotation as a shape of its image; every fault names the file, the image and the annotation."""
    where = f"{origin}: image {image.file_name!r}: {_annotation_name(doc, index)}"
    if type(doc.get("id")) is not int:
        raise InputError(MALFORMED_ANNOTATION, f"{where} has id {short(doc.get('id'))}, not an integer")
    category_id = doc.get("category_id")
    if type(category_id) is not int:
        raise InputError(MALFORMED_ANNOTATION, f"{where} has category_id {short(category_id)}, not an integer")
    if category_id not in categories:
        raise InputError(UNKNOWN_CATEGORY, f"{where} has category_id {category_id}, which is not in categories")
    label = categories[category_id]
    where = f"{where} ({label!r})"
    iscrowd = doc.get("iscrowd", 0)
    if type(iscrowd) is not int or iscrowd not in (0, 1):
        raise InputError(MALFORMED_ANNOTATION, f"{where} has iscrowd {short(iscrowd)}, not 0 or 1")
    attributes = CROWD_ATTRIBUTES[iscrowd]
    segmentation = doc.get("segmentation")
    if segmentation is None or segmentation == []:
        return Shape(label, "box", rings=(_bbox_ring(doc.get("bbox"), where, image),), attributes=attributes)
    if isinstance(segmentation, list):
        return Shape(label, "polygon", rings=polygon_rings(segmentation, where, image), attributes=attributes)
    if isinstance(segmentation, dict):
        return Shape(label, "mask", mask=_rle_mask(segmentation, where, image), attributes=attributes)
    raise InputError(
        MALFORMED_ANNOTATION, f"{where} has a segmentation that is neither a list of rings nor an RLE object")


def _bbox_ring(bbox: Any, where: str, image: AnnotatedImage) -> np.ndarray:
    """A bbox-only annotation's [x, y, w, h] as the ring of its corners."""
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
        raise InputError(
            MALFORMED_ANNOTATION, f"{where} has no segmentation and bbox {short(bbox)} is not [x, y, w, h]")
    x, y, w, h = bbox
    return box_ring(x, y, x + w, y + h, where, image.width, image.height)


def _is_number(value: Any) -> bool:
    """int or float but not bool, which Python counts as an int and JSON does not."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def polygon_rings(segmentation: list, where: str, image: AnnotatedImage) -> tuple[np.ndarray, ...]:
    """Each part of a (possibly multi-part) polygon, validated by parse_ring."""
    rings = []
    for part, ring in enumerate(segmentation):
        if not isinstance(ring, list):
            raise InputError(
                MALFORMED_POLYGON, f"{where}: segmentation part #{part} is {short(ring)}, not a list of coordinates")
        rings.append(parse_ring(ring, f"{where} part #{part}", image.width, image.height))
    return tuple(rings)


def _rle_mask(rle: dict, where: str, image: AnnotatedImage) -> BoxMask:
    """An RLE over the whole image as the tight box mask every reader produces."""
    if rle_size(rle, where) != (image.height, image.width):
        raise InputError(SIZE_MISMATCH, (
            f"{where} has an RLE of size {rle['size']} ([height, width]) on a {image.width}x{image.height} image"))
    mask = BoxMask.from_array(decode_rle(rle, where))
    if mask is None:
        raise InputError(EMPTY_MASK, f"{where} has an RLE mask with no foreground pixel")
    return mask


COCO_INSTANCES = FormatReader(
    name="coco_instances",
    accepts=(
        "a COCO instances JSON (`images`, `categories`, `annotations`) anywhere in the batch (e.g. annotations/), "
        "with polygon, RLE or bbox-only annotations; file_name is relative to the images folder"
    ),
    annotation_files=coco_files,
    read=read_coco_instances,
    images_named=coco_images_named,
    claims_by_content=True,
)
