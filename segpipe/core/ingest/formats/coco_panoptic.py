"""COCO panoptic: a JSON of segments per image plus one PNG per image whose colours are segment ids.

Layout (panopticapi, Datumaro, CVAT): `annotations/<name>.json` beside the folder
`annotations/<name>/` that holds the PNGs (a JSON anywhere else in the batch with its folder beside
it is read too). Images are looked up as for COCO instances (coco.coco_places, image_lookup): the
path `file_name` names under the batch's images folder, then `images/<subset>/` for
`panoptic_<subset>.json` (Datumaro's `images/val/`) and COCO's other places, then by file name
anywhere in the batch. An image not found keeps its segments and gets `image_error`, so
check-source can lint the export before its images are uploaded.

Document. `images` and `categories` as in COCO instances, categories with `isthing` (0/1,
default 0); `annotations` a list of `{image_id, file_name, segments_info: [{id, category_id,
iscrowd?, area?, bbox?}]}`, one per image, `file_name` the PNG inside the folder. The PNG is RGB
and a pixel's segment id is R + 256*G + 256^2*B (panopticapi's rgb2id); 0 is unlabeled.

Shapes: one "mask" per entry of `segments_info`, in its order, holding exactly the pixels of that
id; segments never overlap, so the order paints nothing differently. The label is the category
name; attributes `iscrowd` and `isthing` ("0"/"1") are kept for the taxonomy. Unlabeled pixels
(id 0) are no shape: a taxonomy paints them as it paints uncovered pixels.

Errors on one image, naming the file, the image and the segment: a PNG that is missing,
undecodable, not RGB or not the image's size; a segment id that is absent from the PNG, listed
twice or of an unknown category; a key given twice in the image's `images` entry or annotation
(see strict_json); pixels whose id no segment lists (panopticapi's evaluator
refuses those too). An image listed with no annotation has no shapes; an annotation whose
image_id is not in `images` yields an "image_missing" entry, as in COCO instances. What makes the
whole file untrustworthy (not JSON, a bad `categories` table) raises, and ingest quarantines the
batch. The PNGs in the folder are claimed as annotation files, so none is taken for an image.
"""

import posixpath
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segpipe.core.shared.errors import InputError, ItemProblems
from segpipe.core.shared.quarantine_rules import (
    DUPLICATE_KEY,
    EMPTY_MASK,
    FILE_MISSING,
    IMAGE_MISSING,
    MALFORMED_ANNOTATION,
    MASK_MODE_UNSUPPORTED,
    SIZE_MISMATCH,
    UNKNOWN_CATEGORY,
    UNKNOWN_MASK_COLOUR,
    UNPARSEABLE_ANNOTATIONS,
)
from segpipe.core.ingest.formats.annotation import AnnotatedImage, BoxMask, Shape
from segpipe.core.ingest.formats.coco import (
    coco_images_named,
    coco_json_candidates,
    is_panoptic,
    scan_images,
    short,
    stream_items,
)
from segpipe.core.ingest.formats.mask_folders import decode_mask_png
from segpipe.core.ingest.formats.reader import FormatReader, ReaderOptions
from segpipe.core.ingest.image_lookup import ImageIndex
from segpipe.core.ingest.sources.source import BatchSource

MAX_LISTED = 5


@dataclass(frozen=True)
class _Category:
    name: str
    isthing: int


@dataclass
class _Entry:
    """One image of the file and, once its annotation has streamed past, the PNG and segments."""

    image: AnnotatedImage
    png: str | None = None
    segments: list[Any] = field(default_factory=list)


def _panoptic_files(names: Sequence[str], head: Callable[[str], bytes]) -> list[str]:
    """Each panoptic JSON and every PNG in the folder named after it."""
    claimed: list[str] = []
    for name in coco_json_candidates(names, head):
        if is_panoptic(name, names, head(name)):
            folder = name[: -len(".json")] + "/"
            claimed += [name, *(n for n in names if n.startswith(folder) and n.lower().endswith(".png"))]
    return sorted(claimed)


def _images_named(name: str, head: Callable[[str], bytes], index: ImageIndex, images_dir: str) -> list[str]:
    """The batch images a panoptic JSON's first `file_name`s point at, as for COCO instances; its
    PNGs name none."""
    return coco_images_named(name, head, index, images_dir) if name.lower().endswith(".json") else []


def _read_panoptic(source: BatchSource, files: list[str], options: ReaderOptions) -> Iterator[AnnotatedImage]:
    """Every image of every panoptic JSON, one file after another; the claimed PNGs are never images."""
    index = options.image_index(source, files)
    for name in files:
        if name.lower().endswith(".json"):
            yield from _read_file(source, name, options.images_dir, index)


def _read_file(source: BatchSource, name: str, images_dir: str, image_index: ImageIndex) -> Iterator[AnnotatedImage]:
    """Images and categories first, then the streamed annotations; PNGs are decoded one image at a time."""
    origin, scan, entries = scan_images(source, name, images_dir, image_index)
    categories = _categories(scan.values.pop("categories"), origin)
    by_id: dict[int, list[_Entry]] = defaultdict(list)
    ordered = []
    for image_id, image in entries:
        entry = _Entry(image)
        ordered.append(entry)
        if type(image_id) is int:
            by_id[image_id].append(entry)
    missing: dict[str, list[str]] = defaultdict(list)
    folder = name[: -len(".json")]
    duplicates = scan.item_errors.get("annotations", {})
    for index, doc in enumerate(stream_items(source, name, "annotations.item", origin)):
        _attach(doc, index, folder, by_id, missing, origin, duplicates.get(index))
    existing = set(source.names())
    for entry in ordered:
        yield _decoded(source, entry, categories, existing, origin)
    for image_id, pngs in missing.items():
        yield AnnotatedImage(f"{name}#image_id={image_id}", 0, 0, error=InputError(IMAGE_MISSING, (
            f"{origin}: annotation(s) for {', '.join(pngs[:MAX_LISTED])} reference image id {image_id}, "
            "which is not in `images`")))


def _categories(docs: list, origin: str) -> dict[int, _Category]:
    """Category id -> name and isthing; a fault here is a fault of every label of the file."""
    categories: dict[int, _Category] = {}
    for index, doc in enumerate(docs):
        if not isinstance(doc, dict) or type(doc.get("id")) is not int or not isinstance(doc.get("name"), str):
            raise InputError(UNPARSEABLE_ANNOTATIONS, (
                f"{origin}: categories[{index}] is {short(doc)}, not {{\"id\": integer, \"name\": string}}"))
        isthing = doc.get("isthing", 0)
        if type(isthing) is not int or isthing not in (0, 1):
            raise InputError(UNPARSEABLE_ANNOTATIONS, f"{origin}: categories[{index}] has isthing {short(isthing)}, not 0 or 1")
        if doc["id"] in categories:
            raise InputError(UNPARSEABLE_ANNOTATIONS, f"{origin}: category id {doc['id']} is defined twice")
        categories[doc["id"]] = _Category(doc["name"], isthing)
    return categories


def _attach(doc: Any, index: int, folder: str, by_id: dict[int, list[_Entry]],
            missing: dict[str, list[str]], origin: str, duplicate: str | None) -> None:
    """Give one annotation's PNG and segments to its image(s), or record it against an unknown image
    id; one that repeats a key (`duplicate`, also within its segments_info) quarantines its image."""
    image_id = doc.get("image_id") if isinstance(doc, dict) else None
    entries = by_id.get(image_id, []) if type(image_id) is int else []
    png = doc.get("file_name") if isinstance(doc, dict) else None
    if not entries:
        missing[repr(image_id)].append(repr(png) if isinstance(png, str) else f"annotations[{index}]")
    for entry in entries:
        where = f"{origin}: image {entry.image.file_name!r}: annotations[{index}]"
        if entry.image.error is not None:
            continue
        if duplicate is not None:
            entry.image.error = InputError(DUPLICATE_KEY, f"{where}: {duplicate}")
        elif entry.png is not None:
            entry.image.error = InputError(MALFORMED_ANNOTATION, f"{where} is a second annotation of this image")
        elif not isinstance(png, str) or not png or "/" in png or png.startswith("."):
            entry.image.error = InputError(MALFORMED_ANNOTATION, f"{where} has file_name {short(png)}, not a PNG name")
        elif not isinstance(doc.get("segments_info"), list):
            entry.image.error = InputError(MALFORMED_ANNOTATION, f"{where} has no segments_info list")
        else:
            entry.png, entry.segments = posixpath.join(folder, png), doc["segments_info"]


def _decoded(source: BatchSource, entry: _Entry, categories: dict[int, _Category], existing: set[str],
             origin: str) -> AnnotatedImage:
    """The image with one mask shape per segment, or with the error that makes it unusable."""
    image = entry.image
    if image.error is not None or entry.png is None:
        return image
    where = f"{origin}: image {image.file_name!r}: {entry.png}"
    try:
        image.shapes = _segment_shapes(_segment_ids(source, entry.png, image, existing, where), entry.segments,
                                       categories, where)
    except InputError as exc:
        image.add_error(exc)
    return image


def _segment_ids(source: BatchSource, png: str, image: AnnotatedImage, existing: set[str], where: str) -> np.ndarray:
    """The PNG's pixels as segment ids, R + 256*G + 256^2*B."""
    if png not in existing:
        raise InputError(FILE_MISSING, f"{where}: the panoptic PNG does not exist")
    mode, pixels = decode_mask_png(source.read(png), where)
    if mode != "RGB":
        raise InputError(MASK_MODE_UNSUPPORTED, f"{where}: a panoptic PNG must be RGB, not {mode!r}")
    if pixels.shape[:2] != (image.height, image.width):
        raise InputError(SIZE_MISMATCH, (
            f"{where}: the PNG is {pixels.shape[1]}x{pixels.shape[0]}, the image {image.width}x{image.height}"))
    rgb = pixels.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def _segment_shapes(ids: np.ndarray, segments: list[Any], categories: dict[int, _Category], where: str) -> list[Shape]:
    """One mask per listed segment; every non-zero id in the PNG must be listed exactly once. Every
    problem of the image's segments is reported, not only the first."""
    shapes, listed, problems = [], set(), []
    for number, segment in enumerate(segments):
        try:
            shapes.append(_segment_shape(ids, number, segment, categories, listed, f"{where}: segments_info[{number}]"))
        except InputError as exc:
            problems.append(exc)
    try:
        _refuse_unlisted(ids, listed, where)
    except InputError as exc:
        problems.append(exc)
    if problems:
        raise ItemProblems.of(*problems)
    return shapes


def _segment_shape(ids: np.ndarray, number: int, segment: Any, categories: dict[int, _Category], listed: set[int],
                   at: str) -> Shape:
    """The mask of one segments_info entry; its id joins `listed` as soon as it is read, so a bad entry's
    pixels are not reported again as unlisted."""
    if not isinstance(segment, dict) or type(segment.get("id")) is not int or type(segment.get("category_id")) is not int:
        raise InputError(MALFORMED_ANNOTATION, f"{at} is {short(segment)}, not {{\"id\": integer, \"category_id\": integer}}")
    segment_id, category_id = segment["id"], segment["category_id"]
    twice = segment_id in listed
    listed.add(segment_id)
    if category_id not in categories:
        raise InputError(UNKNOWN_CATEGORY, f"{at} (segment id {segment_id}) has category_id {category_id}, which is not in categories")
    category = categories[category_id]
    at = f"{at} (segment id {segment_id}, {category.name!r})"
    iscrowd = segment.get("iscrowd", 0)
    if type(iscrowd) is not int or iscrowd not in (0, 1):
        raise InputError(MALFORMED_ANNOTATION, f"{at} has iscrowd {short(iscrowd)}, not 0 or 1")
    if twice:
        raise InputError(MALFORMED_ANNOTATION, f"{at} is listed twice")
    mask = BoxMask.from_array(ids == segment_id)
    if mask is None:
        raise InputError(EMPTY_MASK, f"{at} has no pixel in the PNG")
    return Shape(category.name, "mask", mask=mask, attributes={"iscrowd": str(iscrowd), "isthing": str(category.isthing)})


def _refuse_unlisted(ids: np.ndarray, listed: set[int], where: str) -> None:
    """Pixels of an id that segments_info does not list would vanish: name them instead."""
    present, counts = np.unique(ids, return_counts=True)
    unlisted = [(int(i), int(n)) for i, n in zip(present, counts) if i != 0 and int(i) not in listed]
    if unlisted:
        named = ", ".join(f"id {i} ({n} px)" for i, n in unlisted[:MAX_LISTED])
        raise InputError(UNKNOWN_MASK_COLOUR, f"{where}: {len(unlisted)} segment id(s) in the PNG are not in segments_info: {named}")


COCO_PANOPTIC = FormatReader(
    name="coco_panoptic",
    accepts=(
        "a COCO panoptic JSON (`segments_info` per image) anywhere in the batch (e.g. annotations/), with its PNGs "
        "(segment id = R + 256*G + 256^2*B) in the folder named after the JSON"
    ),
    annotation_files=_panoptic_files,
    read=_read_panoptic,
    images_named=_images_named,
    claims_by_content=True,
)
