import io

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from PIL.ExifTags import GPS, IFD, Base

from segpipe.core.release.image_metadata import strip_metadata

XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><dc:creator>Alice Example</dc:creator></x:xmpmeta>'


def _pixels() -> Image.Image:
    rng = np.random.default_rng(7)
    return Image.fromarray(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8))


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[Base.Artist] = "Alice Example"
    exif[Base.Orientation] = 1
    exif.get_ifd(IFD.Exif)[Base.BodySerialNumber] = "SN-4711"
    gps = exif.get_ifd(IFD.GPSInfo)
    gps[GPS.GPSLatitudeRef], gps[GPS.GPSLatitude] = "N", (48.0, 8.0, 14.0)
    gps[GPS.GPSLongitudeRef], gps[GPS.GPSLongitude] = "E", (11.0, 34.0, 31.0)
    return exif


def _jpeg() -> bytes:
    out = io.BytesIO()
    _pixels().save(out, format="JPEG", quality=90, exif=_exif(), comment=b"shot by Alice Example", xmp=XMP,
                   icc_profile=b"icc-profile-bytes")
    return out.getvalue()


def _png() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Alice Example")
    info.add_text("Comment", "shot by Alice Example", zip=True)
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    out = io.BytesIO()
    _pixels().save(out, format="PNG", pnginfo=info, exif=_exif())
    return out.getvalue()


@pytest.mark.parametrize(("encode", "container"), [(_jpeg, b"Exif\x00\x00"), (_png, b"eXIf")])
def test_gps_serial_artist_comments_and_xmp_are_gone_and_the_pixels_stay(encode, container: bytes) -> None:
    delivered = encode()
    with Image.open(io.BytesIO(delivered)) as before:
        assert before.getexif().get_ifd(IFD.GPSInfo)  # the fixture does carry GPS
        pixels = np.asarray(before.convert("RGB"))

    released = strip_metadata(delivered)

    for secret in (b"Alice Example", b"SN-4711", b"xmpmeta", container):
        assert secret in delivered
        assert secret not in released
    with Image.open(io.BytesIO(released)) as after:
        after.load()
        assert not after.getexif()
        assert np.array_equal(np.asarray(after.convert("RGB")), pixels)


def test_jpeg_is_not_reencoded_and_keeps_its_colour_profile() -> None:
    delivered = _jpeg()
    released = strip_metadata(delivered)
    scan = delivered.index(b"\xff\xda")
    assert released.endswith(delivered[scan:])  # the compressed scan, byte for byte
    with Image.open(io.BytesIO(released)) as after:
        assert after.info["icc_profile"] == b"icc-profile-bytes"


def test_an_image_without_metadata_is_unchanged() -> None:
    out = io.BytesIO()
    _pixels().save(out, format="PNG")
    assert strip_metadata(out.getvalue()) == out.getvalue()


@pytest.mark.parametrize("data", [b"GIF89a....", _jpeg()[:30], _png()[:20]])
def test_bytes_that_are_not_a_whole_jpeg_or_png_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        strip_metadata(data)
