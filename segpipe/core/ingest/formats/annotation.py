"""The reader-neutral form every annotation format is parsed into.

Readers validate coordinates before anything is drawn: a shape with a non-finite vertex, fewer
than three vertices or a vertex absurdly far outside its image is an error on its image, naming
the file, the image and the shape. Readers go on past a bad shape, so every bad shape of an image
is named in its error (AnnotatedImage.add_error). Shapes that are not segmentation (polylines, points) are kept
with their kind, so every shape of a file is accounted for, and never drawn.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import Literal

import numpy as np

from segpipe.core.shared.errors import InputError, ItemProblems
from segpipe.core.shared.quarantine_rules import (
    COORDINATES_OUT_OF_FRAME,
    DEGENERATE_BOX,
    DEGENERATE_POLYGON,
    MALFORMED_POLYGON,
    NON_FINITE_COORDINATES,
    TOO_MANY_VERTICES,
)

ShapeKind = Literal["polygon", "box", "mask", "polyline", "points"]
SEGMENTATION_KINDS: frozenset[str] = frozenset({"polygon", "box", "mask"})
SHAPE_KINDS: tuple[str, ...] = ("polygon", "box", "mask", "polyline", "points")
NUMBER_TYPES: frozenset[type] = frozenset({int, float, np.float64})
MAX_VERTICES = 100_000  # per ring; real outlines have at most a few thousand


@dataclass(frozen=True, eq=False)
class BoxMask:
    """A binary mask as CVAT stores it: row-major run lengths over a tight box, first run background.

    Every mask input (CVAT RLE, COCO RLE, LabelMe PNG, rendered mask folders) is converted to this
    one form, so rasterization has one mask path and holes survive exactly.
    """

    left: int
    top: int
    width: int
    height: int
    counts: np.ndarray  # uint32 run lengths, alternating background/foreground, starting with background

    def to_array(self) -> np.ndarray:
        """The (height, width) boolean mask over the box."""
        values = np.zeros(len(self.counts), dtype=bool)
        values[1::2] = True
        return np.repeat(values, self.counts).reshape(self.height, self.width)

    @classmethod
    def from_array(cls, binary: np.ndarray, left: int = 0, top: int = 0) -> "BoxMask | None":
        """The tight box around the true pixels of a 2-D array placed at (left, top); None when empty."""
        rows = np.flatnonzero(binary.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(binary.any(axis=0))
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        flat = np.ascontiguousarray(binary[y0:y1, x0:x1], dtype=bool).ravel()
        changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        counts = np.diff(np.concatenate(([0], changes, [flat.size])))
        if flat[0]:
            counts = np.concatenate(([0], counts))
        return cls(left + x0, top + y0, x1 - x0, y1 - y0, counts.astype(np.uint32))


@dataclass(frozen=True, eq=False)
class Shape:
    """One annotated object in source-label space.

    `rings` holds flat float64 [x1, y1, x2, y2, ...] arrays: several rings of a polygon are drawn
    as their union; a box is one ring of its four corners; polylines and points keep their
    vertices. `mask` is set only for kind "mask".
    """

    raw_label: str
    kind: ShapeKind
    z_order: int = 0
    rings: tuple[np.ndarray, ...] = ()
    mask: BoxMask | None = None
    occluded: bool = False
    group_id: int | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass
class AnnotatedImage:
    """The annotation of one image, or the error that makes it unusable.

    `file_name` is the image's path relative to the batch root, as the batch's ImageIndex found
    it. `image_error` says why no image file was found (missing, ambiguous, outside the batch);
    it is kept apart from `error` so the shapes are still read, and check-source can lint an
    export whose images are not uploaded yet. `annotator` is an identity found in the file (a
    CVAT job assignee, say); ingest pseudonymizes it before it is stored. `image_data` carries an
    image embedded in the annotation (LabelMe's imageData).
    """

    file_name: str
    width: int
    height: int
    shapes: list[Shape] = field(default_factory=list)
    error: InputError | None = None
    annotator: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    image_data: bytes | None = None
    image_error: InputError | None = None

    @property
    def has_frame(self) -> bool:
        """Whether the image's size is known, so shapes can be checked in it: not so for an entry whose own
        fields are unusable (readers give it a 0x0 frame and the error that says why)."""
        return self.width > 0 and self.height > 0

    def add_error(self, error: InputError) -> None:
        """Record a problem of this image; every one is reported, and the first gives its rule. The image
        is refused, so its shapes are dropped: they are never used."""
        self.error = ItemProblems.of(self.error, error)
        self.shapes = []

    def add_shape(self, shape: Shape) -> None:
        """A valid shape of the image, kept unless the image is already refused."""
        if self.error is None:
            self.shapes.append(shape)


def shape_origin(origin: str, file_name: str, index: int, label: str) -> str:
    """How messages name a shape: the annotation file, the image and the shape's position."""
    return f"{origin}: image {file_name!r}: shape #{index} ({label!r})"


def flatten_points(points: object, key: str, where: str) -> list:
    """`[[x, y], ...]` (Cityscapes, LabelMe) as a flat [x, y, ...] list for parse_ring."""
    if not isinstance(points, list):
        raise InputError(MALFORMED_POLYGON, f"{where} has no `{key}` list")
    if set(map(type, points)) <= {list} and set(map(len, points)) <= {2}:  # the common case, at C speed
        return list(chain.from_iterable(points))
    coords: list = []
    for number, point in enumerate(points):
        if not isinstance(point, list) or len(point) != 2:
            raise InputError(MALFORMED_POLYGON, f"{where}: point #{number} is {point!r}, not an [x, y] pair")
        coords.extend(point)
    return coords


def parse_ring(
    coords: list[float], where: str, width: int, height: int, min_vertices: int = 3,
) -> np.ndarray:
    """Validate a flat [x1, y1, x2, y2, ...] ring before anything draws it.

    At most MAX_VERTICES vertices, so one shape cannot make drawing and QA slow. Vertices must be
    finite and lie within one image size of the frame: annotation tools let a vertex overshoot the
    border a little, but a vertex at 1e300 is corrupt data, and Pillow would happily draw it.
    """
    if len(coords) > 2 * MAX_VERTICES:
        raise InputError(TOO_MANY_VERTICES, f"{where} has {len(coords) // 2} vertices, over the bound of {MAX_VERTICES}")
    if len(coords) % 2:
        raise InputError(MALFORMED_POLYGON, f"{where} has an odd number of coordinates ({len(coords)})")
    if not set(map(type, coords)) <= NUMBER_TYPES:  # bools and numeric strings would convert silently
        raise InputError(MALFORMED_POLYGON, f"{where} has a coordinate that is not a number")
    try:
        ring = np.asarray(coords, dtype=np.float64)
    except OverflowError:  # a JSON integer hundreds of digits long does not fit a double
        raise _non_finite(where) from None
    if len(coords) < 2 * min_vertices:
        if not np.isfinite(ring).all():
            raise _non_finite(where)
        raise InputError(DEGENERATE_POLYGON, f"{where} has fewer than {min_vertices} vertices")
    # Two reductions per ring: NaN and infinities propagate into the minimum or maximum.
    points = ring.reshape(-1, 2)
    (x_min, y_min), (x_max, y_max) = points.min(axis=0).tolist(), points.max(axis=0).tolist()
    if not all(map(math.isfinite, (x_min, y_min, x_max, y_max))):
        raise _non_finite(where)
    if x_min < -width or x_max > 2 * width or y_min < -height or y_max > 2 * height:
        raise InputError(COORDINATES_OUT_OF_FRAME, (
            f"{where} has a vertex more than one image size outside the {width}x{height} frame "
            f"(x {x_min:g}..{x_max:g}, y {y_min:g}..{y_max:g})"))
    return ring


def _non_finite(where: str) -> InputError:
    return InputError(NON_FINITE_COORDINATES, f"{where} has a non-finite vertex (NaN, infinity or overflowing)")


def box_ring(x1: float, y1: float, x2: float, y2: float, where: str, width: int, height: int) -> np.ndarray:
    """A box as the ring of its four corners, validated like any ring."""
    ring = parse_ring([x1, y1, x2, y1, x2, y2, x1, y2], where, width, height)
    if x2 <= x1 or y2 <= y1:
        raise InputError(DEGENERATE_BOX, f"{where} has an empty box ({x1:g},{y1:g})-({x2:g},{y2:g})")
    return ring
