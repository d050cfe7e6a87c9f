"""The reader-neutral form every annotation format is parsed into."""

import math
from dataclasses import dataclass, field

from segpipe.core.errors import InputError


@dataclass(frozen=True)
class Shape:
    """A polygon in source-label space; several rings are one shape drawn as their union."""

    raw_label: str
    z_order: int
    rings: tuple[tuple[float, ...], ...]


@dataclass
class AnnotatedImage:
    """The annotation of one image, or the error that makes it unusable."""

    file_name: str
    width: int
    height: int
    shapes: list[Shape] = field(default_factory=list)
    error: InputError | None = None


def parse_ring(coords: list[float], origin: str, file_name: str, index: int, label: str) -> tuple[float, ...]:
    """Validate a flat [x1, y1, x2, y2, ...] ring: finite vertices, at least three of them."""
    where = f"{origin}: image {file_name!r}: shape #{index} ({label!r})"
    if len(coords) % 2:
        raise InputError("malformed_polygon", f"{where} has an odd number of coordinates ({len(coords)})")
    if not all(math.isfinite(v) for v in coords):
        raise InputError("non_finite_coordinates", f"{where} has a non-finite vertex (NaN or infinity)")
    if len(coords) < 6:
        raise InputError("degenerate_polygon", f"{where} has fewer than 3 vertices")
    return tuple(coords)
