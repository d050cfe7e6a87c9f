"""Released images without the metadata their camera or editor wrote into them.

Images are stored as delivered, and a delivered photo can carry its GPS position, the camera's
serial number or the photographer's name (EXIF, XMP, IPTC, comments). None of it is needed to use
the pixels, so a release drops it. Losslessly: JPEG segments and PNG chunks are copied or left
out, the compressed image data is never decoded, so the pixels are bit for bit those delivered.
What the pixels need is kept: JFIF (APP0), the ICC colour profile (APP2, iCCP) and Adobe's colour
transform (APP14); a rotation tag was applied at ingest, so none is left to keep.
"""

import struct

_JPEG_SOI = b"\xff\xd8"
_JPEG_SOS = 0xDA
# APP1 holds Exif and XMP, APP13 Photoshop's IPTC (creator, location), COM free-text comments.
_JPEG_DROPPED = frozenset({0xE1, 0xED, 0xFE})
# Markers that stand alone, without a length: TEM, RST0-7, SOI, EOI.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_DROPPED = frozenset({b"tEXt", b"zTXt", b"iTXt", b"eXIf"})


def strip_metadata(data: bytes) -> bytes:
    """The image without EXIF, XMP, IPTC and text comments; raises ValueError for bytes that are
    neither a JPEG nor a PNG, or are truncated (stored images were decoded at ingest, so that is a bug)."""
    if data.startswith(_JPEG_SOI):
        return _strip_jpeg(data)
    if data.startswith(_PNG_SIGNATURE):
        return _strip_png(data)
    raise ValueError("image is neither a JPEG nor a PNG")


def _strip_jpeg(data: bytes) -> bytes:
    """Walk the marker segments up to the first scan, leaving out the dropped ones; from the scan on
    (entropy-coded data, and the tables between a progressive JPEG's scans) everything is copied."""
    out = bytearray(_JPEG_SOI)
    at = len(_JPEG_SOI)
    while at < len(data):
        if data[at] != 0xFF:
            raise ValueError(f"JPEG: expected a marker at byte {at}")
        marker = data[at + 1] if at + 1 < len(data) else None
        if marker == 0xFF:  # a fill byte before the marker
            at += 1
            continue
        if marker is None:
            raise ValueError("JPEG: truncated marker")
        if marker in _JPEG_STANDALONE:
            out += data[at:at + 2]
            at += 2
            continue
        if marker == _JPEG_SOS:
            out += data[at:]
            return bytes(out)
        if at + 4 > len(data):
            raise ValueError("JPEG: truncated segment length")
        end = at + 2 + struct.unpack(">H", data[at + 2:at + 4])[0]
        if end > len(data):
            raise ValueError(f"JPEG: segment 0x{marker:02X} at byte {at} runs past the end")
        if marker not in _JPEG_DROPPED:
            out += data[at:end]
        at = end
    return bytes(out)


def _strip_png(data: bytes) -> bytes:
    """Copy every chunk but the text and EXIF ones; each chunk carries its own CRC, so those copied
    stay valid."""
    out = bytearray(_PNG_SIGNATURE)
    at = len(_PNG_SIGNATURE)
    while at < len(data):
        if at + 8 > len(data):
            raise ValueError("PNG: truncated chunk header")
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        end = at + 12 + length
        if end > len(data):
            raise ValueError(f"PNG: chunk {kind!r} at byte {at} runs past the end")
        if kind not in _PNG_DROPPED:
            out += data[at:end]
        at = end
        if kind == b"IEND":
            break
    return bytes(out)
