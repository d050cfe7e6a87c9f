"""CVAT for images 1.1 XML (task, job and project exports), streamed.

What the file holds, per https://docs.cvat.ai/docs/other/xml_format and CVAT's exporter
(cvat/apps/dataset_manager/formats/cvat.py, bindings.py):

- `<meta>` holds one `<task>`, `<job>` or `<project>` (a project lists its tasks under `<tasks>`).
  The annotator is that element's assignee username, else its owner username; in a project export
  each image's `task_id` picks its task's. E-mails sit next to the usernames and are never read.
- Image files: task and job exports write `images/<name>`; project exports write
  `images/<subset>/<name>`, where the subset is the task's or "default", and every `<image>` carries
  `subset` and `task_id` (`_export_project`, `get_defaulted_subset`). So a project image is looked
  up (image_lookup) at `{images_dir}/{subset}/{name}` first and the same name in two subsets is
  two images; a task image at `{images_dir}/{name}`; then both layouts, `images/` for a custom
  images_dir, and the batch root beside the XML; then by file name anywhere. Frames of a video task
  (mode "interpolation") are named `frame_NNNNNN` without extension and written with ".PNG"
  appended (`dump_media_files`, `VIDEO_FRAME_EXT`), so such names match any PNG or JPEG extension
  in any case, and are called `frame_NNNNNN.PNG` when missing. An image not found keeps its shapes
  and gets `image_error`. `subset` goes to AnnotatedImage.attributes, from the image or else from
  the task/job `<subset>`.
- Labels are the `label` strings, matched by name downstream; `label=""` stays "".
- Shapes: `<polygon>` is kind "polygon"; `<box>` is "box", its `rotation` (degrees, clockwise on
  screen, about the box centre, as CVAT's RotatedBoxesToPolygons) turning the corners; `<mask>` is
  "mask" (cvat_rle); `<ellipse cx cy rx ry rotation>` is a "polygon" with enough vertices that the
  polygon is within ELLIPSE_TOLERANCE pixels of the ellipse (CVAT itself draws it with cv2.ellipse
  after rounding centre and axes); `<polyline>` and `<points>` keep their kind and `<skeleton>`
  becomes "points" of its visible elements: accounted for, never drawn. `<tag>` is image-level and
  becomes attributes["tag:<label>"] = "1". Anything else (`<cuboid>`, ...) is an
  "unsupported_shape" error on its image.
- z_order (may be negative), occluded="1", group_id (0 means none) and `<attribute>` children are
  kept on the Shape.

A bad shape or image size is an error on its image, naming the file, the image and the shape. A
file that cannot be trusted as a whole (not XML, a DTD, an entity, truncated, the wrong root, a
`<track>`, over MAX_XML_BYTES) raises InputError "unparseable_annotations" and ingest quarantines
the batch. The XML is parsed by defusedxml with DTDs forbidden, because the Expat here (2.5.0)
predates the 2.6.0 fixes for quadratic and large-token attacks; the size cap bounds what is left.
"""

import math
import posixpath
import re
from html import unescape
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
import numpy as np

from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import (
    DEGENERATE_POLYGON,
    MALFORMED_ANNOTATION,
    MALFORMED_POLYGON,
    NON_FINITE_COORDINATES,
    UNPARSEABLE_ANNOTATIONS,
    UNSUPPORTED_SHAPE,
)
from segpipe.core.ingest.formats.annotation import (
    AnnotatedImage,
    BoxMask,
    Shape,
    ShapeKind,
    box_ring,
    parse_ring,
    shape_origin,
)
from segpipe.core.ingest.formats.cvat_rle import decode_cvat_rle
from segpipe.core.ingest.formats.reader import EVIDENCE_IMAGES, FormatReader, ReaderOptions
from segpipe.core.ingest.image_lookup import ImageIndex, ImageLookup
from segpipe.core.ingest.sources.source import BatchSource

MAX_XML_BYTES = 1 << 30
VIDEO_FRAME_SUFFIX = ".PNG"
ELLIPSE_TOLERANCE = 0.25
# Expat before 2.6.0 rescans an unfinished token on every feed; iterparse asks for 16 KiB at a
# time, which makes one long attribute (a big mask rle) quadratic. 1 MiB feeds bound the rescans.
_READ_BYTES = 1 << 20
_INTEGER = re.compile(r"-?\d{1,18}")
_IMAGE_TAG = re.compile(rb"<image\s([^>]*)")
_ATTRIBUTE = re.compile(rb'([A-Za-z_]+)="([^"]*)"')

Geometry = tuple[ShapeKind, tuple[np.ndarray, ...], BoxMask | None]


class _CappedStream:
    """A file-like object for iterparse that reads in big chunks and stops past a byte limit."""

    def __init__(self, stream: BinaryIO, origin: str, limit: int) -> None:
        self._stream, self._origin, self._limit, self._total = stream, origin, limit, 0

    def read(self, _size: int = -1) -> bytes:
        """Ignores the requested size on purpose: see _READ_BYTES."""
        data = self._stream.read(_READ_BYTES)
        self._total += len(data)
        if self._total > self._limit:
            raise InputError(UNPARSEABLE_ANNOTATIONS,
                             f"{self._origin}: larger than the {self._limit}-byte limit for CVAT XML")
        return data


def iter_export(source: BatchSource, name: str) -> Iterator[Element]:
    """The children of `<annotations>`, each once complete, cleared once the caller moves on.

    Streaming keeps memory flat on exports with hundreds of thousands of images. Any parse
    failure raises InputError "unparseable_annotations": nothing after it can be trusted.
    """
    origin = source.origin(name)
    with source.open(name) as stream:
        capped = _CappedStream(stream, origin, MAX_XML_BYTES)
        events = SafeET.iterparse(capped, events=("start", "end"), forbid_dtd=True)
        depth, root = 0, Element("annotations")  # replaced by the real root at its start event
        try:
            for event, element in events:
                depth += 1 if event == "start" else -1
                if event == "start" and depth == 1:
                    _check_root(element, origin)
                    root = element
                elif event == "end" and depth == 1:
                    yield element
                    element.clear()
                    root.remove(element)
        except InputError:
            raise
        except (SyntaxError, ValueError, LookupError) as exc:  # ParseError, defusedxml's refusals, bad encodings
            raise InputError(UNPARSEABLE_ANNOTATIONS,
                             f"{origin}: not a well-formed XML file without a DTD: {exc}") from exc


def _check_root(element: Element, origin: str) -> None:
    """A CVAT export's root is <annotations>; anything else is some other XML."""
    if element.tag != "annotations":
        raise InputError(UNPARSEABLE_ANNOTATIONS,
                         f"{origin}: root element is <{element.tag}>, expected <annotations>")


def claim_export(names: Sequence[str], head: Callable[[str], bytes], looks_like: Callable[[bytes], bool]) -> list[str]:
    """The batch's CVAT XML when its head passes `looks_like`: annotations.xml, else the only root *.xml."""
    candidates = [name for name in names if "/" not in name and name.lower().endswith(".xml")]
    if "annotations.xml" in candidates:
        candidates = ["annotations.xml"]
    if len(candidates) != 1 or not looks_like(head(candidates[0])):
        return []
    return candidates


def cvat_images_files(names: Sequence[str], head: Callable[[str], bytes]) -> list[str]:
    """The batch's CVAT for images XML, if it has one."""
    return claim_export(names, head, _looks_like_images)


def _images_named(name: str, head: Callable[[str], bytes], index: ImageIndex, images_dir: str) -> list[str]:
    """The batch images the first `<image>` elements in the file's head name: detection's evidence."""
    found = []
    for match in _IMAGE_TAG.finditer(head(name)):
        attributes = dict((key.decode(), unescape(value.decode("utf-8", "replace")))
                          for key, value in _ATTRIBUTE.findall(match.group(1)))
        image_name, subset = attributes.get("name", ""), attributes.get("subset") or None
        frame = not posixpath.splitext(image_name)[1]
        lookup = find_image(index, images_dir, image_name, name, subset=subset, in_subset=subset is not None,
                            frame=frame)
        if image_name and lookup.found:
            found.append(lookup.file_name)
        if len(found) == EVIDENCE_IMAGES:
            break
    return found


def _looks_like_images(head: bytes) -> bool:
    """`<image ` and no `<track `; a head cut off before any of them (a huge project meta) counts too.

    cvat_video's test is the mirror image, so the two formats never both claim a file.
    """
    return (b"<annotations" in head and b"<track " not in head
            and (b"<image " in head or b"</annotations>" not in head))


def username(element: Element) -> str | None:
    """The assignee's username, else the owner's: who did the work, as far as CVAT records it."""
    for path in ("assignee/username", "owner/username"):
        text = (element.findtext(path) or "").strip()
        if text:
            return text
    return None


def positive_int(text: str | None) -> int | None:
    """A strictly positive decimal integer, or None (no signs, no floats, no underscores)."""
    if text is None or not _INTEGER.fullmatch(text.strip()):
        return None
    value = int(text)
    return value if value > 0 else None


def find_image(index: ImageIndex, images_dir: str, name: str, where: str, *, subset: str | None = None,
               in_subset: bool = False, frame: bool = False) -> ImageLookup:
    """The file of an `<image name>` or a video frame: in the subset folder first when the export
    writes one (`in_subset`: project exports), else in images_dir; then every layout CVAT writes."""
    images_dir = images_dir.strip("/")
    subset_dir = "/".join(part for part in (images_dir, subset) if part)
    places = [subset_dir, images_dir, f"images/{subset}", "images", ""] if subset else [images_dir, "images", ""]
    return index.find(name, where, base=subset_dir if in_subset else images_dir, places=places,
                      default_suffix=VIDEO_FRAME_SUFFIX, any_suffix=frame)


@dataclass(frozen=True)
class _Work:
    """One task or job as `<meta>` describes it: who annotated it and how its files are named."""

    annotator: str | None
    video: bool
    subset: str | None


def _work(element: Element, fallback_annotator: str | None = None) -> _Work:
    """The _Work of a `<task>` or `<job>` element."""
    return _Work(
        annotator=username(element) or fallback_annotator,
        video=(element.findtext("mode") or "").strip() == "interpolation",
        subset=(element.findtext("subset") or "").strip() or None,
    )


@dataclass(frozen=True)
class _Meta:
    """What reading images needs from `<meta>`."""

    project: bool
    default: _Work
    tasks: Mapping[str, _Work] = field(default_factory=dict)

    def work(self, task_id: str | None) -> _Work:
        """The task an image belongs to (project exports name it), else the export's own."""
        return self.tasks.get(task_id or "", self.default)


def _read_meta(meta: Element, origin: str) -> _Meta:
    """The export kind, and per task its annotator and naming."""
    project = meta.find("project")
    if project is not None:
        fallback = username(project)
        tasks = {(task.findtext("id") or "").strip(): _work(task, fallback) for task in project.iterfind("tasks/task")}
        return _Meta(project=True, default=_Work(fallback, video=False, subset=None), tasks=tasks)
    for kind in ("task", "job"):
        body = meta.find(kind)
        if body is not None:
            return _Meta(project=False, default=_work(body))
    raise InputError(UNPARSEABLE_ANNOTATIONS, f"{origin}: <meta> holds no <task>, <job> or <project>")


def read_cvat_images(source: BatchSource, files: list[str], options: ReaderOptions) -> Iterator[AnnotatedImage]:
    """One AnnotatedImage per `<image>`, in file order."""
    index = options.image_index(source, files)
    for name in files:
        yield from _read_file(source, name, options.images_dir, index)


def _read_file(source: BatchSource, name: str, images_dir: str, index: ImageIndex) -> Iterator[AnnotatedImage]:
    """The images of one export; `<meta>` must come first, as CVAT writes it."""
    origin = source.origin(name)
    meta: _Meta | None = None
    for element in iter_export(source, name):
        if element.tag == "meta":
            meta = _read_meta(element, origin)
        elif element.tag == "track":
            raise InputError(UNPARSEABLE_ANNOTATIONS, f"{origin}: has <track> elements: a CVAT for video export")
        elif element.tag == "image":
            if meta is None:
                raise InputError(UNPARSEABLE_ANNOTATIONS, f"{origin}: an <image> comes before any <meta>")
            yield _read_image(element, meta, images_dir, index, origin)


def _read_image(element: Element, meta: _Meta, images_dir: str, index: ImageIndex, origin: str) -> AnnotatedImage:
    """An `<image>` and its shapes; each bad shape is an error of the image."""
    name = element.get("name", "")
    work = meta.work(element.get("task_id"))
    subset = element.get("subset") or work.subset
    lookup = find_image(index, images_dir, name, f"{origin}: <image name={name!r}>", subset=subset,
                        in_subset=meta.project, frame=work.video)
    image = AnnotatedImage(lookup.file_name, 0, 0, annotator=work.annotator, image_error=lookup.error)
    if subset:
        image.attributes["subset"] = subset
    width, height = positive_int(element.get("width")), positive_int(element.get("height"))
    if not name or width is None or height is None:
        image.error = InputError(MALFORMED_ANNOTATION, (
            f"{origin}: image {name!r} needs a name and positive integer width and height, "
            f"has width={element.get('width')!r} height={element.get('height')!r}"))
        return image
    image.width, image.height = width, height
    _read_children(element, image, origin)
    return image


def _read_children(element: Element, image: AnnotatedImage, origin: str) -> None:
    """Tags into attributes, everything else through read_shape, indexed in document order; every bad
    shape is an error of the image."""
    index = 0
    for child in element:
        label = child.get("label", "")
        if child.tag == "tag":
            image.attributes[f"tag:{label}"] = "1"
            continue
        where = shape_origin(origin, image.file_name, index, label)
        try:
            image.add_shape(read_shape(child, label, where, image.width, image.height))
        except InputError as exc:
            image.add_error(exc)
        index += 1


def read_shape(element: Element, label: str, where: str, width: int, height: int) -> Shape:
    """A validated Shape from a shape element of an image or a track; InputError names `where`."""
    geometry = _GEOMETRY.get(element.tag)
    if geometry is None:
        raise InputError(UNSUPPORTED_SHAPE, f"{where} is a <{element.tag}>, which segpipe does not read")
    kind, rings, mask = geometry(element, where, width, height)
    return Shape(
        raw_label=label,
        kind=kind,
        z_order=_integer(element.get("z_order", "0"), "z_order", where),
        rings=rings,
        mask=mask,
        occluded=element.get("occluded") == "1",
        group_id=group_id(element.get("group_id"), where),
        attributes={child.get("name", ""): child.text or "" for child in element if child.tag == "attribute"},
    )


def group_id(text: str | None, where: str) -> int | None:
    """CVAT's group_id, None when absent or 0 (CVAT's "no group")."""
    value = _integer(text or "0", "group_id", where)
    return value or None


def _integer(text: str, key: str, where: str) -> int:
    """A decimal integer attribute (z_order may be negative)."""
    if not _INTEGER.fullmatch(text.strip()):
        raise InputError(MALFORMED_ANNOTATION, f"{where} has {key}={text!r}, not an integer")
    return int(text)


def _number(element: Element, key: str, where: str, default: str | None = None) -> float:
    """A float attribute; NaN and infinities pass here and are refused by the ring checks."""
    text = element.get(key, default)
    try:
        return float(text if text is not None else "")
    except ValueError:
        raise InputError(MALFORMED_POLYGON, f"{where} has {key}={text!r}, not a number") from None


def _points(element: Element, where: str) -> list[float]:
    """The flat coordinates of CVAT's points="x0,y0;x1,y1;..."."""
    coords: list[float] = []
    for pair in (element.get("points") or "").split(";"):
        try:
            x, y = (float(v) for v in pair.split(","))  # not exactly two numbers: ValueError too
        except ValueError:
            raise InputError(MALFORMED_POLYGON,
                             f"{where} has points that are not 'x,y;x,y;...' near {pair[:40]!r}") from None
        coords.extend((x, y))
    return coords


def _polygon(element: Element, where: str, width: int, height: int) -> Geometry:
    return "polygon", (parse_ring(_points(element, where), where, width, height),), None


def _polyline(element: Element, where: str, width: int, height: int) -> Geometry:
    return "polyline", (parse_ring(_points(element, where), where, width, height, min_vertices=1),), None


def _point_set(element: Element, where: str, width: int, height: int) -> Geometry:
    return "points", (parse_ring(_points(element, where), where, width, height, min_vertices=1),), None


def _skeleton(element: Element, where: str, width: int, height: int) -> Geometry:
    """A skeleton's visible element points, as one "points" shape (none visible: no ring)."""
    coords = [v for child in element if child.tag == "points" and child.get("outside") != "1"
              for v in _points(child, where)]
    return "points", (parse_ring(coords, where, width, height, min_vertices=1),) if coords else (), None


def _mask(element: Element, where: str, width: int, height: int) -> Geometry:
    return "mask", (), decode_cvat_rle(element.attrib, width, height, where)


def _box(element: Element, where: str, width: int, height: int) -> Geometry:
    """The four corners, turned by `rotation` degrees about the centre when it is set."""
    x1, y1, x2, y2 = (_number(element, key, where) for key in ("xtl", "ytl", "xbr", "ybr"))
    ring = box_ring(x1, y1, x2, y2, where, width, height)
    degrees = _number(element, "rotation", where, "0")
    if degrees:
        ring = parse_ring(_rotate(ring, degrees, (x1 + x2) / 2, (y1 + y2) / 2).tolist(), where, width, height)
    return "box", (ring,), None


def _ellipse(element: Element, where: str, width: int, height: int) -> Geometry:
    """A polygon within ELLIPSE_TOLERANCE pixels of the ellipse: a chord of a circle of radius r
    spanning angle a strays r(1 - cos(a/2)) ~ r a^2 / 8 from it, hence the vertex count."""
    cx, cy, rx, ry = (_number(element, key, where) for key in ("cx", "cy", "rx", "ry"))
    degrees = _number(element, "rotation", where, "0")
    if not all(math.isfinite(v) for v in (cx, cy, rx, ry, degrees)):
        raise InputError(NON_FINITE_COORDINATES, f"{where} has a non-finite ellipse parameter (NaN or infinity)")
    if rx <= 0 or ry <= 0:
        raise InputError(DEGENERATE_POLYGON, f"{where} has an ellipse with radii {rx:g} and {ry:g}")
    vertices = min(4096, max(16, math.ceil(math.pi * math.sqrt(max(rx, ry) / (2 * ELLIPSE_TOLERANCE)))))
    angles = np.linspace(0.0, 2 * math.pi, vertices, endpoint=False)
    ring = np.empty(2 * vertices)
    ring[0::2], ring[1::2] = cx + rx * np.cos(angles), cy + ry * np.sin(angles)
    return "polygon", (parse_ring(_rotate(ring, degrees, cx, cy).tolist(), where, width, height),), None


def _rotate(ring: np.ndarray, degrees: float, cx: float, cy: float) -> np.ndarray:
    """The ring turned about (cx, cy); positive degrees turn clockwise on screen (y points down)."""
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    dx, dy = ring[0::2] - cx, ring[1::2] - cy
    turned = np.empty_like(ring)
    turned[0::2], turned[1::2] = cx + cos * dx - sin * dy, cy + sin * dx + cos * dy
    return turned


_GEOMETRY: dict[str, Callable[[Element, str, int, int], Geometry]] = {
    "polygon": _polygon,
    "box": _box,
    "mask": _mask,
    "ellipse": _ellipse,
    "polyline": _polyline,
    "points": _point_set,
    "skeleton": _skeleton,
}

CVAT_IMAGES = FormatReader(
    name="cvat_images_1.1",
    accepts="annotations.xml exported by CVAT as 'CVAT for images 1.1' (task, job or project)",
    annotation_files=cvat_images_files,
    read=read_cvat_images,
    images_named=_images_named,
    claims_by_content=True,
)
