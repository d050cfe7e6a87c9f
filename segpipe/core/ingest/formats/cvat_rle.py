"""CVAT's mask RLE, as written in `<mask rle="3, 5, 2, ..." left=.. top=.. width=.. height=..>`.

CVAT stores a mask as row-major run lengths over its tight box, the first run background (it may
be 0), which is exactly BoxMask's convention: decoding is validation, encoding is formatting. It is
not COCO RLE (column-major, over the whole image); confusing the two is a known source of broken
masks (cvat-ai/cvat #6487, #8124), so nothing here transposes.

Validation is strict because a bad mask would otherwise be drawn wrong rather than fail: counts
must be non-negative integers summing to width*height, and the box must lie entirely inside the
image (CVAT clips masks to the frame, so a box sticking out is corrupt data, not a tolerance).
"""

import re
from collections.abc import Mapping

import numpy as np

from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import COORDINATES_OUT_OF_FRAME, MALFORMED_MASK
from segpipe.core.ingest.formats.annotation import BoxMask

# Ten digits hold any uint32; a longer run cannot fit BoxMask's counts.
_COUNTS = re.compile(r"\s*\d{1,10}\s*(?:,\s*\d{1,10}\s*)*")
_INTEGER = re.compile(r"-?\d{1,10}")
_MAX_COUNT = int(np.iinfo(np.uint32).max)


def decode_cvat_rle(attributes: Mapping[str, str], image_width: int, image_height: int, where: str) -> BoxMask:
    """The BoxMask of a `<mask>` element's attributes; `where` names the file, image and shape in errors."""
    left, top = _integer(attributes, "left", where), _integer(attributes, "top", where)
    width, height = _integer(attributes, "width", where), _integer(attributes, "height", where)
    if width <= 0 or height <= 0:
        raise InputError(MALFORMED_MASK, f"{where} has an empty mask box ({width}x{height})")
    if left < 0 or top < 0 or left + width > image_width or top + height > image_height:
        raise InputError(COORDINATES_OUT_OF_FRAME, (
            f"{where} has a mask box at ({left},{top}) of {width}x{height} that is not inside "
            f"the {image_width}x{image_height} image"))
    counts = _counts(attributes.get("rle", ""), where)
    if sum(counts) != width * height:
        raise InputError(MALFORMED_MASK, (
            f"{where} has mask run lengths summing to {sum(counts)}, not {width}x{height} = {width * height}"))
    if max(counts) > _MAX_COUNT:
        raise InputError(MALFORMED_MASK, f"{where} has a mask run longer than {_MAX_COUNT} pixels")
    return BoxMask(left, top, width, height, np.asarray(counts, dtype=np.uint32))


def encode_cvat_rle(mask: BoxMask) -> dict[str, str]:
    """The `<mask>` attributes CVAT writes for a BoxMask (rle, left, top, width, height)."""
    return {
        "rle": ", ".join(str(count) for count in mask.counts.tolist()),
        "left": str(mask.left),
        "top": str(mask.top),
        "width": str(mask.width),
        "height": str(mask.height),
    }


def _integer(attributes: Mapping[str, str], key: str, where: str) -> int:
    """A box attribute as an int; CVAT writes plain decimal integers, so anything else is corrupt."""
    text = attributes.get(key)
    if text is None or not _INTEGER.fullmatch(text.strip()):
        raise InputError(MALFORMED_MASK, f"{where} has mask {key}={text!r}, not an integer")
    return int(text)


def _counts(rle: str, where: str) -> list[int]:
    """The run lengths of a comma-separated RLE string, checked by one pattern before any int()."""
    if not _COUNTS.fullmatch(rle):
        raise InputError(MALFORMED_MASK, (
            f"{where} has a mask rle that is not comma-separated non-negative integers: {rle[:60]!r}"))
    return [int(token) for token in rle.split(",")]
