"""Decoding untrusted image bytes: only PNG and JPEG, fully loaded, bombs refused, EXIF orientation resolved.

Orientation policy: a trainer that loads with PIL sees the stored pixels, one that loads with
OpenCV sees them rotated by the EXIF tag, so a release must not carry a rotating tag at all. An
image whose tag rotates (orientation 2-8) is stored as a lossless PNG in the frame its annotation
was drawn in: the displayed (EXIF-applied) frame when the annotation size matches it, which is
what CVAT shows annotators, else the raw pixel frame when that matches. Square images match
both; they take the displayed frame.
"""

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps

from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import IMAGE_UNDECODABLE, SIZE_MISMATCH

ACCEPTED_FORMATS = ["PNG", "JPEG"]
EXIF_ORIENTATION_TAG = 0x0112
assert not ImageFile.LOAD_TRUNCATED_IMAGES, "truncated images must fail to decode, not load silently"


@dataclass(frozen=True)
class DecodedImage:
    format: str
    raw_size: tuple[int, int]
    orientation: int
    perceptual_hash: str  # 64-bit difference hash (hex) of the stored pixels: near duplicates differ in few bits

    @property
    def display_size(self) -> tuple[int, int]:
        width, height = self.raw_size
        return (height, width) if self.orientation in (5, 6, 7, 8) else (width, height)


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)


def inspect_image(data: bytes, origin: str) -> DecodedImage:
    """Decode the whole image, so a truncated file fails here and not in a training job."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _open(data) as image:
                image.load()
                orientation = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
                return DecodedImage(image.format or "", image.size, orientation if orientation in range(1, 9) else 1,
                                    difference_hash(image))
    except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError and its own types on bad input
        raise InputError(IMAGE_UNDECODABLE, f"{origin}: cannot decode image: {type(exc).__name__}: {exc}") from exc


def difference_hash(image: Image.Image) -> str:
    """dHash: the image in grey at 9x8, one bit per pair of horizontal neighbours (is the left one
    brighter). Recompression, resizing and small edits flip few bits; other scenes flip about half."""
    factor = max(1, min(image.width // 36, image.height // 32))
    small = (image.reduce(factor) if factor > 1 else image).convert("L").resize((9, 8), Image.Resampling.BILINEAR)
    pixels = np.asarray(small, dtype=np.int16)
    bits = (pixels[:, :-1] > pixels[:, 1:]).ravel()
    return f"{int(''.join('1' if bit else '0' for bit in bits), 2):016x}"


def annotation_frame(image: DecodedImage, width: int, height: int, origin: str) -> str:
    """'display' or 'raw': the frame the annotation's width x height was drawn in, per the policy above."""
    if (width, height) == image.display_size:
        return "display"
    if (width, height) == image.raw_size:
        return "raw"
    rotated = f" (raw pixels {image.raw_size[0]}x{image.raw_size[1]}, EXIF orientation {image.orientation})" \
        if image.orientation != 1 else ""
    shown = image.display_size
    raise InputError(SIZE_MISMATCH, (
        f"{origin}: image is {shown[0]}x{shown[1]}{rotated} but its annotation says {width}x{height}"))


def stored_image(data: bytes, image: DecodedImage, frame: str) -> tuple[bytes, str]:
    """The bytes a release carries and their suffix: the original when no tag rotates it, else a
    PNG of the annotated frame with no orientation tag left."""
    if image.orientation == 1:
        return data, ".png" if image.format == "PNG" else ".jpg"
    with _open(data) as source:
        pixels = ImageOps.exif_transpose(source) if frame == "display" else source.copy()
        pixels.info.pop("exif", None)
        out = io.BytesIO()
        pixels.save(out, format="PNG")
    return out.getvalue(), ".png"
