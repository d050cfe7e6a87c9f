"""LabelMe JSON: one file per image, read as labelme's own LabelFile and shape_to_mask read it.

Document. `{version, flags, shapes: [{label, points: [[x, y], ...], group_id, description,
shape_type, flags, mask}], imagePath, imageData, imageHeight, imageWidth}`. `imageWidth` and
`imageHeight` are positive integers. `imagePath` is relative to the JSON file's folder
(backslashes, as labelme writes them on Windows, are separators). `imageData`, when not null, is
the image itself in base64: it becomes `AnnotatedImage.image_data`.

Images. `imagePath` is looked up (image_lookup) beside the JSON, then by its file name anywhere
in the batch; a path that is absolute or climbs out of the batch, as labelme writes it on many
machines, is never followed, only its file name is looked for. When no file is found, ingest
uses `imageData`; only when that is null too does the image get `image_error`, whose message
says both were tried.

Shapes, in document order (labelme paints later shapes over earlier ones), all with z_order 0:
- `polygon` (or no shape_type, as labelme reads it) -> "polygon".
- `rectangle`, two opposite corners in any order -> "polygon" of its four corners: labelme2voc
  fills rectangles like polygons, whereas a "box" shape is painted only for classes that ask.
- `circle`, the centre and a point on the rim -> "mask": the disc Pillow's ellipse draws in the
  box of centre ± radius, clipped to the frame, exactly as labelme's shape_to_mask draws it (a
  polygon approximation would differ from labelme along the rim).
- `mask`, points giving the top-left and bottom-right pixels of a box (truncated to integers,
  as labelme does) and `mask` a base64 PNG of exactly that box -> "mask".
- `line`, `linestrip` -> "polyline"; `point`, `points` -> "points". labelme2voc paints these as
  10 px strokes and 5 px dots; here, as in every reader, they are kept and never painted.
`group_id` -> Shape.group_id; shape flags -> attributes `flag:<name>` = "1"/"0"; a non-empty
`description` -> attributes["description"]. Image-level flags -> AnnotatedImage.attributes, the same way.

Errors never raise: a file that cannot be read, is not strict JSON (NaN, duplicate keys: see
strict_json) or is wrong anywhere becomes an error on the image it annotates. When the file is
too broken to name that image, the image is guessed as the one image beside it with the same
stem, else the JSON file's own path is used.
"""

import base64
import binascii
import io
import json
import math
import posixpath
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import (
    COORDINATES_OUT_OF_FRAME,
    DEGENERATE_POLYGON,
    EMPTY_MASK,
    MALFORMED_ANNOTATION,
    MALFORMED_MASK,
    MALFORMED_POLYGON,
    SIZE_MISMATCH,
    UNSUPPORTED_SHAPE,
)
from segpipe.core.ingest.formats.annotation import (
    AnnotatedImage,
    BoxMask,
    Shape,
    box_ring,
    flatten_points,
    parse_ring,
    shape_origin,
)
from segpipe.core.ingest.formats.reader import FormatReader, ReaderOptions
from segpipe.core.ingest.formats.strict_json import load_json
from segpipe.core.ingest.image_lookup import ImageIndex, ImageLookup
from segpipe.core.ingest.sources.source import BatchSource

# shape_type -> (fewest points, most points or None), as labelme's shape_to_mask asserts them.
POINT_COUNTS: dict[str, tuple[int, int | None]] = {
    "polygon": (3, None), "rectangle": (2, 2), "circle": (2, 2), "mask": (2, 2),
    "line": (2, 2), "linestrip": (2, None), "point": (1, 1), "points": (1, None),
}
IMAGE_PATH = re.compile(rb'"imagePath"\s*:\s*("(?:[^"\\]|\\.)*")')
EMBEDDED = re.compile(rb'"imageData"\s*:\s*"')


def labelme_files(names: Sequence[str], head: Callable[[str], bytes]) -> list[str]:
    """JSON files whose first bytes hold `"shapes"` and either `"imagePath"` or, when large
    shapes push imagePath past the head, the `"points"` of the first shape."""
    return [name for name in names if name.lower().endswith(".json") and _looks_like_labelme(head(name))]


def _looks_like_labelme(data: bytes) -> bool:
    """A plain byte search: the head is cut at 64 KiB, mid-document, so it cannot be parsed."""
    return b'"shapes"' in data and (b'"imagePath"' in data or b'"points"' in data)


def _images_named(name: str, head: Callable[[str], bytes], index: ImageIndex, images_dir: str) -> list[str]:
    """The image the file's head names, when the batch holds it or the file embeds it: detection's evidence."""
    data = head(name)
    match = IMAGE_PATH.search(data)
    try:
        path = json.loads(match.group(1)) if match else None
    except ValueError:
        path = None
    if not isinstance(path, str) or not path:
        return []
    lookup = find_image(index, name, path, name)
    return [lookup.file_name] if lookup.found or EMBEDDED.search(data) else []


def find_image(index: ImageIndex, json_name: str, image_path: str, where: str) -> ImageLookup:
    """The file `imagePath` names: beside the JSON (its own folder), else by file name anywhere."""
    folder = posixpath.dirname(json_name)
    return index.find(image_path, where, base=folder, places=[folder])


def read_labelme(source: BatchSource, files: list[str], options: ReaderOptions) -> Iterator[AnnotatedImage]:
    """One AnnotatedImage per JSON file, in file order; a bad file is an error on its image, never a raise."""
    index = options.image_index(source, files)
    for name in files:
        yield _read_file(source, name, index)


def _read_file(source: BatchSource, name: str, index: ImageIndex) -> AnnotatedImage:
    """Parse one file, turning every InputError into an error on its image."""
    origin = source.origin(name)
    namesakes = index.namesakes(posixpath.splitext(name)[0])
    file_name = namesakes[0] if len(namesakes) == 1 else name
    try:
        doc = load_json(source.read(name), origin)
        lookup = find_image(index, name, _image_path(doc, origin), origin)
        file_name = lookup.file_name
        image = _parse_document(doc, file_name, origin)
    except InputError as exc:
        return AnnotatedImage(file_name, 0, 0, error=exc)
    if lookup.error is not None and image.image_data is None:
        image.image_error = InputError(
            lookup.error.rule, f"{lookup.error}; and imageData is null, so the file embeds no image either")
    return image


def _image_path(doc: Any, origin: str) -> str:
    """The annotated image's path as written, read first so every later error lands on that image."""
    if not isinstance(doc, dict):
        raise InputError(MALFORMED_ANNOTATION, f"{origin}: the document is not a JSON object")
    path = doc.get("imagePath")
    if not isinstance(path, str) or not path:
        raise InputError(MALFORMED_ANNOTATION, f"{origin}: imagePath is {path!r}, not a file name")
    return path


def _parse_document(doc: dict, file_name: str, origin: str) -> AnnotatedImage:
    """Validate the frame, the image-level fields, then every shape in document (paint) order; each bad
    shape is an error of the image."""
    where = f"{origin}: image {file_name!r}"
    width, height = _dimension(doc, "imageWidth", where), _dimension(doc, "imageHeight", where)
    shapes = doc.get("shapes")
    if not isinstance(shapes, list):
        raise InputError(MALFORMED_ANNOTATION, f"{where}: `shapes` is not a list")
    image = AnnotatedImage(
        file_name, width, height, attributes=_flag_attributes(doc.get("flags"), where),
        image_data=_image_data(doc.get("imageData"), where))
    for index, shape in enumerate(shapes):
        try:
            image.add_shape(_parse_shape(shape, index, image, origin))
        except InputError as exc:
            image.add_error(exc)
    return image


def _dimension(doc: dict, key: str, where: str) -> int:
    """imageWidth/imageHeight: required, since ingest checks the image against them and shapes are validated in them."""
    value = doc.get(key)
    if type(value) is not int or value <= 0:
        raise InputError(MALFORMED_ANNOTATION, f"{where}: {key} is {value!r}, not a positive integer")
    return value


def _image_data(value: Any, where: str) -> bytes | None:
    """The embedded image's bytes; line breaks some encoders insert are ignored, anything else not base64 is refused."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(MALFORMED_ANNOTATION, f"{where}: imageData is not a base64 string")
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except binascii.Error as exc:
        raise InputError(MALFORMED_ANNOTATION, f"{where}: imageData is not base64 ({exc})") from exc


def _flag_attributes(flags: Any, where: str) -> dict[str, str]:
    """labelme flags ({name: bool}) as `flag:<name>` = "1"/"0" attributes, so a taxonomy can read them."""
    if flags is None:
        return {}
    if not isinstance(flags, dict) or not all(isinstance(v, bool) for v in flags.values()):
        raise InputError(MALFORMED_ANNOTATION, f"{where}: flags is not an object of true/false values")
    return {f"flag:{name}": "1" if value else "0" for name, value in flags.items()}


def _parse_shape(doc: Any, index: int, image: AnnotatedImage, origin: str) -> Shape:
    """One shape with its geometry, group and attributes; every fault names the file, image and shape."""
    label = doc.get("label") if isinstance(doc, dict) else None
    where = shape_origin(origin, image.file_name, index, str(label))
    if not isinstance(label, str) or not label:
        raise InputError(MALFORMED_ANNOTATION, f"{where} is not an object with a label string")
    shape_type = doc.get("shape_type") or "polygon"
    if not isinstance(shape_type, str) or shape_type not in POINT_COUNTS:
        raise InputError(
            UNSUPPORTED_SHAPE, f"{where} has shape_type {shape_type!r}, not one of {sorted(POINT_COUNTS)}")
    ring = _points(doc.get("points"), shape_type, where, image)
    group_id = doc.get("group_id")
    if group_id is not None and type(group_id) is not int:
        raise InputError(MALFORMED_ANNOTATION, f"{where} has group_id {group_id!r}, not an integer")
    geometry = _geometry(shape_type, ring, doc, where, image)
    return Shape(label, group_id=group_id, attributes=_shape_attributes(doc, where), **geometry)


def _points(points: Any, shape_type: str, where: str, image: AnnotatedImage) -> np.ndarray:
    """`[[x, y], ...]` flattened and validated by parse_ring, with the point count labelme requires."""
    coords = flatten_points(points, "points", where)
    fewest, most = POINT_COUNTS[shape_type]
    if most is not None and len(points) > most:
        raise InputError(MALFORMED_POLYGON, f"{where} is a {shape_type} with {len(points)} points, not {most}")
    return parse_ring(coords, where, image.width, image.height, min_vertices=fewest)


def _shape_attributes(doc: dict, where: str) -> dict[str, str]:
    """A shape's flags and description, the only free-form data labelme keeps per shape."""
    attributes = _flag_attributes(doc.get("flags"), where)
    description = doc.get("description")
    if description is not None and not isinstance(description, str):
        raise InputError(MALFORMED_ANNOTATION, f"{where} has a description that is not a string")
    if description:
        attributes["description"] = description
    return attributes


def _geometry(shape_type: str, ring: np.ndarray, doc: dict, where: str, image: AnnotatedImage) -> dict[str, Any]:
    """The Shape fields for one shape_type, following what labelme2voc paints for it."""
    if shape_type == "polygon":
        return {"kind": "polygon", "rings": (ring,)}
    if shape_type == "rectangle":
        xs, ys = ring[0::2], ring[1::2]
        corners = box_ring(xs.min(), ys.min(), xs.max(), ys.max(), where, image.width, image.height)
        return {"kind": "polygon", "rings": (corners,)}
    if shape_type == "circle":
        return {"kind": "mask", "mask": _disc(ring, where, image)}
    if shape_type == "mask":
        return {"kind": "mask", "mask": _png_mask(ring, doc.get("mask"), where, image)}
    return {"kind": "polyline" if shape_type in ("line", "linestrip") else "points", "rings": (ring,)}


def _disc(ring: np.ndarray, where: str, image: AnnotatedImage) -> BoxMask:
    """The circle as shape_to_mask draws it, on a canvas just large enough: an integer offset
    leaves Pillow's ellipse unchanged, and the frame is never allocated."""
    cx, cy, px, py = (float(v) for v in ring)
    radius = math.sqrt((cx - px) ** 2 + (cy - py) ** 2)
    if radius == 0:
        raise InputError(DEGENERATE_POLYGON, f"{where} is a circle of radius 0")
    left, top = max(math.floor(cx - radius), 0), max(math.floor(cy - radius), 0)
    right, bottom = min(math.ceil(cx + radius) + 1, image.width), min(math.ceil(cy + radius) + 1, image.height)
    if right <= left or bottom <= top:
        raise InputError(EMPTY_MASK, f"{where} is a circle entirely outside the {image.width}x{image.height} frame")
    canvas = Image.new("L", (right - left, bottom - top), 0)
    box = [cx - radius - left, cy - radius - top, cx + radius - left, cy + radius - top]
    ImageDraw.Draw(canvas).ellipse(box, outline=1, fill=1)
    return _non_empty(BoxMask.from_array(np.asarray(canvas, dtype=bool), left, top), where)


def _png_mask(ring: np.ndarray, data: Any, where: str, image: AnnotatedImage) -> BoxMask:
    """A mask shape: a PNG covering the inclusive pixel box of its two points, inside the frame."""
    x1, y1, x2, y2 = (int(v) for v in ring)
    if not (0 <= x1 <= x2 < image.width and 0 <= y1 <= y2 < image.height):
        raise InputError(COORDINATES_OUT_OF_FRAME, (
            f"{where} has a mask box ({x1},{y1})-({x2},{y2}) outside the {image.width}x{image.height} frame"))
    if not isinstance(data, str):
        raise InputError(MALFORMED_MASK, f"{where} has no base64 PNG in `mask`")
    binary = _decode_png(data, (x2 - x1 + 1, y2 - y1 + 1), where)
    return _non_empty(BoxMask.from_array(binary, x1, y1), where)


def _decode_png(data: str, size: tuple[int, int], where: str) -> np.ndarray:
    """A single-channel PNG as booleans (non-zero is foreground, as labelme reads it), checked to
    be `size` (width, height) before its pixels are decoded."""
    try:
        png = Image.open(io.BytesIO(base64.b64decode("".join(data.split()), validate=True)), formats=["PNG"])
    except (binascii.Error, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(MALFORMED_MASK, f"{where} has a mask that is not a base64 PNG ({exc})") from exc
    with png:
        if png.size != size:
            raise InputError(
                SIZE_MISMATCH, f"{where} has a {png.size[0]}x{png.size[1]} mask PNG for a {size[0]}x{size[1]} box")
        try:
            pixels = np.asarray(png)
        except (OSError, ValueError) as exc:
            raise InputError(MALFORMED_MASK, f"{where} has a mask PNG that does not decode ({exc})") from exc
    if pixels.ndim != 2:
        raise InputError(MALFORMED_MASK, f"{where} has a {png.mode} mask PNG, not a single-channel one")
    return pixels != 0


def _non_empty(mask: BoxMask | None, where: str) -> BoxMask:
    """A mask shape must cover a pixel: an empty one would be a shape that paints nothing, silently."""
    if mask is None:
        raise InputError(EMPTY_MASK, f"{where} covers no pixel of the frame")
    return mask


LABELME = FormatReader(
    name="labelme",
    accepts=(
        "LabelMe JSON files, one per image (`shapes`, `imagePath`, `imageHeight`, `imageWidth`, optional "
        "`imageData`), with polygon, rectangle, circle, mask, line, linestrip, point and points shapes"
    ),
    annotation_files=labelme_files,
    read=read_labelme,
    images_named=_images_named,
    claims_by_content=True,
)
