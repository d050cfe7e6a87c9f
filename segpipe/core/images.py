"""Decoding untrusted image bytes: only PNG and JPEG, fully loaded, bombs refused."""

import io
import warnings

from PIL import Image

from segpipe.core.errors import InputError

ACCEPTED_FORMATS = ["PNG", "JPEG"]


def decoded_size(data: bytes, origin: str) -> tuple[int, int]:
    """Decode the whole image (a truncated file fails here, not in a training job) and return (width, height)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
                image.load()
                return image.size
    except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError and its own types on bad input
        raise InputError("image_undecodable", f"{origin}: cannot decode image: {type(exc).__name__}: {exc}") from exc
