"""COCO results JSON: a model's predictions, as detectors and segmenters write them for COCO's evaluation.

Document. A results file is a JSON list of `{image_id, category_id, segmentation, score}`
(pycocotools' loadRes format); `segmentation` is an RLE object (`counts` a compressed string or an
uncompressed list, `size` the image's [height, width]) or a list of polygon rings. A results file
names images and categories only by id, so, as pycocotools' loadRes takes the ground truth's COCO
object, the batch holds one COCO instances file beside it (images, categories; its annotations, the
ground truth if it is one, are not read): it gives each image's file name and size, and each
category's name. Images are found as coco.py finds them.

Which predictions count. A prediction whose score is below its label's threshold (pipeline.yaml
`models`, see ModelSettings) is dropped, and so is one whose mask has no pixel (models write such
for objects they barely saw); each image records how many of its predictions were read and how many
count (image attributes `predictions`, `counted`). Overlapping predictions are resolved by score:
the shapes are ordered by score (z_order), so the higher score paints over the lower.

Errors. Each fault names the file and the prediction (`results[i]`): a prediction that is not an
object, or whose image_id is not in `images`, is reported as coco.py reports an annotation of a
missing image (an entry `<results file>#image_id=<id>`); an unknown category_id, a score that is not
a number from 0 to 1 (invalid_score), a bad RLE or polygon is an error on its image, which is then
quarantined, as a bad annotation quarantines a person's image. A results file that is not a JSON
list, or a batch without exactly one instances file, concerns every image: the batch is
quarantined.

Detection. A JSON file whose first bytes are a list of objects with `"image_id"` and `"score"`.
The instances file beside it is also a coco_instances file, so a batch holding both matches two
formats equally: declare `"format": "coco_results"` in batch.json.
"""

import dataclasses
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from segpipe.core.ingest.formats.annotation import AnnotatedImage, BoxMask, Shape
from segpipe.core.ingest.formats.coco import (
    MAX_LISTED_IDS, ImageTable, category_table, coco_files, coco_images_named, polygon_rings, scan_images, short,
    stream_items,
)
from segpipe.core.ingest.formats.reader import FormatReader, ReaderOptions
from segpipe.core.ingest.formats.strict_json import UTF8_BOM, scan_json
from segpipe.core.ingest.image_lookup import ImageIndex
from segpipe.core.ingest.model_settings import ModelSettings
from segpipe.core.ingest.sources.source import BatchSource
from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import (
    ANNOTATIONS_MISSING, IMAGE_MISSING, INVALID_SCORE, MALFORMED_ANNOTATION, MALFORMED_MASK, SIZE_MISMATCH,
    UNKNOWN_CATEGORY, UNPARSEABLE_ANNOTATIONS,
)
from segpipe.core.shared.rle import decode_rle, rle_size

RESULTS_HEAD = re.compile(rb'^\s*\[\s*\{')


def is_results_head(head: bytes) -> bool:
    """A results list's first bytes: a list of objects naming an image_id and a score."""
    data = head.removeprefix(UTF8_BOM)
    return bool(RESULTS_HEAD.match(data)) and b'"image_id"' in data and b'"score"' in data


def coco_results_files(names: Sequence[str], head: Callable[[str], bytes]) -> list[str]:
    """The batch's instances files, then its results files; none when it holds no results file."""
    results = [name for name in names if name.lower().endswith(".json") and is_results_head(head(name))]
    return [*coco_files(names, head), *results] if results else []


def _images_named(name: str, head: Callable[[str], bytes], index: ImageIndex, images_dir: str) -> list[str]:
    """Detection's evidence: the images the instances file names (a results file names none by file name)."""
    return [] if is_results_head(head(name)) else coco_images_named(name, head, index, images_dir)


def read_coco_results(source: BatchSource, files: list[str], options: ReaderOptions) -> Iterator[AnnotatedImage]:
    """Every image of the instances file, with the predictions that count as its shapes; then an entry per
    image id that predictions name but `images` lacks."""
    index = options.image_index(source, files)
    results, instances = [], []
    for name in files:
        with source.open(name) as stream:
            (results if is_results_head(stream.read(64 * 1024)) else instances).append(name)
    if len(instances) != 1:
        raise InputError(ANNOTATIONS_MISSING, (
            f"{source.uri}: COCO results name images and categories by id, so the batch needs exactly one COCO "
            f"instances file (images, categories) beside them; it holds {len(instances)}: {instances}"))
    [companion] = instances
    origin, scan, entries = scan_images(source, companion, options.images_dir, index)
    categories = category_table(scan.values.pop("categories"), origin)
    images = _Predictions(companion, origin, entries, categories, options.models)
    for name in results:
        images.read(source, name)
    yield from images.drain()


class _Predictions:
    """The instances file's images, collecting each prediction that counts onto its image."""

    def __init__(self, name: str, origin: str, entries: list, categories: dict[int, str],
                 models: ModelSettings) -> None:
        self.table = ImageTable(name, origin, entries)
        self.categories, self.models = categories, models
        self.kept: dict[int, list[tuple[float, int, Shape]]] = defaultdict(list)  # id(image) -> (score, order, shape)
        self.read_count: dict[int, int] = defaultdict(int)
        self.not_objects: list[AnnotatedImage] = []
        self.missing: dict[tuple[str, str, str], list[str]] = defaultdict(list)  # (file, origin, image id) -> items
        self.order = 0

    def read(self, source: BatchSource, name: str) -> None:
        origin = source.origin(name)
        with source.open(name) as stream:
            scan = scan_json(stream, origin)
        if scan.root != "list":
            raise InputError(UNPARSEABLE_ANNOTATIONS, f"{origin}: not a COCO results file: the top level is not a list")
        for position, doc in enumerate(stream_items(source, name, "item", origin)):
            where = f"{origin}: results[{position}]"
            if not isinstance(doc, dict):
                self.not_objects.append(AnnotatedImage(f"{name}#results[{position}]", 0, 0, error=InputError(
                    MALFORMED_ANNOTATION, f"{where} is {short(doc)}, not an object")))
                continue
            image_id = doc.get("image_id")
            images = self.table.by_id.get(image_id, []) if type(image_id) is int else []
            if not images:
                self.missing[(name, origin, repr(image_id))].append(f"results[{position}]")
            for image in images:
                if not image.has_frame:
                    continue
                self.read_count[id(image)] += 1
                try:
                    kept = self._prediction(doc, f"{where} (image {image.file_name!r})", image)
                except InputError as exc:
                    image.add_error(exc)
                    continue
                if kept is not None:
                    self.order += 1
                    self.kept[id(image)].append((kept[0], self.order, kept[1]))

    def _prediction(self, doc: dict, where: str, image: AnnotatedImage) -> tuple[float, Shape] | None:
        """(score, shape) of a prediction that counts; None for one below its threshold or without pixels."""
        category_id = doc.get("category_id")
        if type(category_id) is not int:
            raise InputError(MALFORMED_ANNOTATION, f"{where} has category_id {short(category_id)}, not an integer")
        if category_id not in self.categories:
            raise InputError(UNKNOWN_CATEGORY, f"{where} has category_id {category_id}, which is not in categories")
        label = self.categories[category_id]
        score = doc.get("score")
        if not isinstance(score, int | float) or isinstance(score, bool) or not 0 <= score <= 1:
            raise InputError(INVALID_SCORE, f"{where} ({label!r}) has score {short(score)}, not a number from 0 to 1")
        shape = _shape(doc.get("segmentation"), label, f"{where} ({label!r})", image)
        if shape is None or score < self.models.threshold(label):
            return None
        return float(score), shape

    def drain(self) -> Iterator[AnnotatedImage]:
        """The images in file order, shapes ordered by score (ties by position: the later paints over),
        then the entries for image ids no image has and for predictions that are not objects."""
        for image in self.table.images:
            kept = sorted(self.kept.pop(id(image), []))
            image.attributes = {**image.attributes, "predictions": str(self.read_count.get(id(image), 0)),
                                "counted": str(len(kept))}
            for z_order, (_, _, shape) in enumerate(kept):
                image.add_shape(dataclasses.replace(shape, z_order=z_order))
        yield from self.table.drain()
        for (name, origin, image_id), items in self.missing.items():
            yield AnnotatedImage(f"{name}#image_id={image_id}", 0, 0, error=InputError(IMAGE_MISSING, (
                f"{origin}: {len(items)} prediction(s) ({', '.join(items[:MAX_LISTED_IDS])}"
                f"{', ...' if len(items) > MAX_LISTED_IDS else ''}) name image id {image_id}, which is not in "
                f"the `images` of {self.table.name}")))
        yield from self.not_objects


def _shape(segmentation: Any, label: str, where: str, image: AnnotatedImage) -> Shape | None:
    """A prediction's mask or polygon as a shape of its image; None for a mask with no pixel."""
    if isinstance(segmentation, dict):
        if rle_size(segmentation, where) != (image.height, image.width):
            raise InputError(SIZE_MISMATCH, (
                f"{where} has an RLE of size {segmentation['size']} ([height, width]) on a "
                f"{image.width}x{image.height} image"))
        mask = BoxMask.from_array(decode_rle(segmentation, where))
        return None if mask is None else Shape(label, "mask", mask=mask)
    if isinstance(segmentation, list) and segmentation:
        return Shape(label, "polygon", rings=polygon_rings(segmentation, where, image))
    raise InputError(MALFORMED_MASK if segmentation is not None else MALFORMED_ANNOTATION, (
        f"{where} has segmentation {short(segmentation)}, neither an RLE object nor a list of polygon rings"))


COCO_RESULTS = FormatReader(
    name="coco_results",
    accepts=(
        "a model's COCO results JSON (a list of {image_id, category_id, segmentation, score}) with one COCO instances "
        "file beside it for the images and categories; declare it, as the instances file alone is coco_instances"
    ),
    annotation_files=coco_results_files,
    read=read_coco_results,
    images_named=_images_named,
    claims_by_content=True,
)
