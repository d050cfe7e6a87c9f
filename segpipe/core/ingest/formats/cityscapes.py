"""Cityscapes polygon JSON: one `*_polygons.json` per image, read as cityscapesScripts' json2labelImg reads it.

File layout. `gtFine/<split>/<city>/<stem>_gtFine_polygons.json` annotates
`leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png` (the last folder named after the annotation
type, `gtFine` or `gtCoarse`, is swapped for `leftImg8bit`). A flat batch, where the JSON and
`<stem>_leftImg8bit.png` sit in the same folder, is read too; when both images exist the dataset
layout wins. Then the image is looked up by its file name anywhere in the batch (image_lookup); an
image not found keeps its shapes and gets `image_error`, named where Cityscapes would keep it.

Document. `imgWidth` and `imgHeight` are positive integers; `objects` is a list of
`{label, polygon: [[x, y], ...], deleted?, verified?, user?, date?, id?}`.

Rules, each matching json2labelImg:
- An object with a truthy `deleted` is skipped before any other check: it is not a shape. The
  number skipped is kept in `AnnotatedImage.attributes["deleted_objects"]` so the loss is visible.
- Objects become polygons in document order, all with z_order 0: document order is the paint
  order (later objects paint over earlier ones). Void labels such as `ego vehicle`,
  `rectification border` and `out of roi` are ordinary polygons, painted in their place in that
  order. json2labelImg never paints `license plate` (its id is -1); a taxonomy does that by
  mapping it to no class.
- A label ending in `group` (`cargroup`) marks a crowd of objects that could not be separated.
  json2labelImg looks such a label up and, when it is not a label of its own, strips the suffix.
  The reader keeps `raw_label` exactly as written, so the taxonomy decides (`polegroup` is a class
  of its own in Cityscapes), and records `attributes["group"] = "1"` and
  `attributes["base_label"] = "car"`.
- `user`, `date` and `verified` are not read: annotator identity is pseudonymized per image by
  ingest, and a per-object user in shape attributes would bypass that.

Errors are per image: an unreadable or invalid JSON file, a wrong type anywhere or a bad vertex
(parse_ring) gives the image an error naming the file, the image and the object's index in
`objects` (deleted objects count in that index, so it points at the object in the file).

Companions. A gtFine download ships the label PNGs cityscapesScripts renders from the polygons
(`_labelIds.png`, `_instanceIds.png`, `_labelTrainIds.png`, `_color.png`) beside each JSON: they are
listed unused, never taken for images. So are such PNGs of an image without its JSON: the batch
is read from its polygons (cityscapes_label_pngs reads a batch that has none).
"""

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import MALFORMED_ANNOTATION
from segpipe.core.ingest.formats.annotation import AnnotatedImage, Shape, flatten_points, parse_ring, shape_origin
from segpipe.core.ingest.formats.reader import FormatReader, ReaderOptions
from segpipe.core.ingest.formats.strict_json import load_json
from segpipe.core.ingest.image_lookup import ImageIndex, ImageLookup
from segpipe.core.ingest.sources.source import BatchSource

SUFFIX = "_polygons.json"
IMAGE_SUFFIX = "_leftImg8bit.png"
IMAGE_FOLDER = "leftImg8bit"
GROUP_SUFFIX = "group"
# A label PNG: `<stem>_gt<Kind>_<kind>.png`; `stem` ends with `_gt<Kind>`, as a polygon JSON's name before SUFFIX.
GT_PNG = re.compile(r"(?P<stem>.+_gt[A-Za-z]+)_(?P<kind>instanceIds|labelIds|labelTrainIds|color)\.png")


def _polygon_files(names: Sequence[str], head: Callable[[str], bytes]) -> list[str]:
    """Every `*_polygons.json`: the name alone identifies the format, so no file is opened."""
    return sorted(name for name in names if name.endswith(SUFFIX))


def _read_polygons(source: BatchSource, files: list[str], options: ReaderOptions) -> Iterator[AnnotatedImage]:
    """One AnnotatedImage per JSON file, in file order; a bad file is an error on its image, never a raise."""
    index = options.image_index(source, files)
    for name in files:
        yield _read_file(source, name, find_image(name, SUFFIX, index, source.origin(name)))


def _label_pngs(names: Sequence[str], files: Sequence[str]) -> dict[str, str]:
    """Every gt label PNG of the batch, with why it is not read."""
    polygons = {name[: -len(SUFFIX)] for name in files}
    found = {}
    for name in names:
        if (png := GT_PNG.fullmatch(name)) is not None:
            found[name] = (f"Cityscapes label PNG rendered from the polygons segpipe reads, {png['stem']}{SUFFIX}"
                           if png["stem"] in polygons else
                           f"Cityscapes label PNG without its polygons {png['stem']}{SUFFIX}: a batch with polygon "
                           "files is read from them alone; land the JSON, or the PNGs without any JSON as a batch "
                           "of their own")
    return found


def _images_named(name: str, head: Callable[[str], bytes], index: ImageIndex, images_dir: str) -> list[str]:
    """The image a JSON file pairs with by its name, if the batch holds it: detection's evidence."""
    lookup = find_image(name, SUFFIX, index, name)
    return [lookup.file_name] if lookup.found else []


def find_image(annotation_name: str, suffix: str, index: ImageIndex, where: str) -> ImageLookup:
    """The image an annotation file (`<stem>_gtFine<suffix>`: a polygon JSON, a label PNG)
    annotates. Under its `gt*` folder that is the dataset-layout image, else, or when only it
    exists, the flat one beside the file; then one of its name anywhere. A missing image is named
    where Cityscapes would keep it."""
    folder, _, base = annotation_name.rpartition("/")
    stem, kind = _split_stem(base[: -len(suffix)])
    parts = folder.split("/")
    layout = folder
    if kind is not None and kind in parts:
        at = len(parts) - 1 - parts[::-1].index(kind)
        layout = "/".join([*parts[:at], IMAGE_FOLDER, *parts[at + 1:]])
    return index.find(stem + IMAGE_SUFFIX, where, base=layout, places=[folder])


def _split_stem(base: str) -> tuple[str, str | None]:
    """`aachen_000000_000019_gtFine` -> (`aachen_000000_000019`, `gtFine`); no `_gt*` tail -> (base, None)."""
    stem, sep, kind = base.rpartition("_")
    if sep and stem and kind.startswith("gt"):
        return stem, kind
    return base, None


def _read_file(source: BatchSource, name: str, lookup: ImageLookup) -> AnnotatedImage:
    """Parse one file, turning every InputError into an error on its image."""
    origin = source.origin(name)
    try:
        image = _parse_document(load_json(source.read(name), origin), origin, lookup.file_name)
    except InputError as exc:
        return AnnotatedImage(lookup.file_name, 0, 0, error=exc, image_error=lookup.error)
    image.image_error = lookup.error
    return image


def _parse_document(doc: Any, origin: str, file_name: str) -> AnnotatedImage:
    """Validate the frame and the object list, then every object in document (paint) order; each bad
    object is an error of the image."""
    if not isinstance(doc, dict):
        raise InputError(MALFORMED_ANNOTATION, f"{origin}: image {file_name!r}: the document is not a JSON object")
    width, height = _dimension(doc, "imgWidth", origin, file_name), _dimension(doc, "imgHeight", origin, file_name)
    objects = doc.get("objects")
    if not isinstance(objects, list):
        raise InputError(MALFORMED_ANNOTATION, f"{origin}: image {file_name!r}: `objects` is not a list")
    image = AnnotatedImage(file_name, width, height)
    deleted = 0
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict):
            image.add_error(InputError(
                MALFORMED_ANNOTATION, f"{origin}: image {file_name!r}: object #{index} is not a JSON object"))
            continue
        if obj.get("deleted"):
            deleted += 1
            continue
        where = shape_origin(origin, file_name, index, str(obj.get("label")))
        try:
            image.add_shape(_parse_object(obj, where, width, height))
        except InputError as exc:
            image.add_error(exc)
    image.attributes["deleted_objects"] = str(deleted)
    return image


def _dimension(doc: dict, key: str, origin: str, file_name: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InputError(MALFORMED_ANNOTATION, f"{origin}: image {file_name!r}: {key} is {value!r}, not a positive integer")
    return value


def _parse_object(obj: dict, where: str, width: int, height: int) -> Shape:
    """One polygon object; its `[[x, y], ...]` points are flattened and validated by parse_ring."""
    label, points = obj.get("label"), obj.get("polygon")
    if not isinstance(label, str) or not label:
        raise InputError(MALFORMED_ANNOTATION, f"{where} has no label string")
    ring = parse_ring(flatten_points(points, "polygon", where), where, width, height)
    return Shape(label, "polygon", rings=(ring,), attributes=_group_attributes(label))


def _group_attributes(label: str) -> dict[str, str]:
    """Mark a `<label>group` crowd label with its base label; every other label has no attributes."""
    if label.endswith(GROUP_SUFFIX) and len(label) > len(GROUP_SUFFIX):
        return {"group": "1", "base_label": label[: -len(GROUP_SUFFIX)]}
    return {}


CITYSCAPES = FormatReader(
    name="cityscapes_polygons",
    accepts=(
        "Cityscapes polygon JSON files (`*_gtFine_polygons.json`, `*_gtCoarse_polygons.json`, any `*_polygons.json`), "
        "one per image, under gtFine/<split>/<city>/ next to leftImg8bit/<split>/<city>/, or flat beside "
        "`<stem>_leftImg8bit.png`"
    ),
    annotation_files=_polygon_files,
    read=_read_polygons,
    images_named=_images_named,
    companions=_label_pngs,
)
