"""A minimal PNG writer for label masks (8-bit) and instance masks (16-bit grayscale).

Masks are long runs of one value, so filter "Up" on every row plus deflate's Z_RLE
strategy gives level-9 sizes at a fraction of Pillow's encode time (see
shared/reference/performance.md). zlib-ng does the deflate; the output is a standard PNG
that Pillow, OpenCV and browsers read. Filters work on bytes, so a 16-bit mask is filtered as
its big-endian byte rows (PNG's sample order): a row equal to the one above still becomes zeros.
"""

import struct
import zlib

import numpy as np
from zlib_ng import zlib_ng

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FILTER_UP = 2


def encode_mask_png(mask: np.ndarray, palette: list[tuple[int, int, int]] | None = None, level: int = 6) -> bytes:
    """Encode a 2-D uint8 mask as grayscale PNG, or as a palette PNG when a 256-colour palette is given."""
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"mask must be a 2-D uint8 array, got {mask.dtype} with shape {mask.shape}")
    if palette is None:
        return _encode(mask, mask.shape[1], 8, 0, level)
    if len(palette) != 256:
        raise ValueError(f"palette must have 256 entries, got {len(palette)}")
    return _encode(mask, mask.shape[1], 8, 3, level, _chunk(b"PLTE", bytes(v for rgb in palette for v in rgb)))


def encode_instance_png(mask: np.ndarray, level: int = 6) -> bytes:
    """Encode a 2-D uint16 instance mask as 16-bit grayscale PNG (the Cityscapes instanceIds format)."""
    if mask.dtype != np.uint16 or mask.ndim != 2:
        raise ValueError(f"instance mask must be a 2-D uint16 array, got {mask.dtype} with shape {mask.shape}")
    height, width = mask.shape
    big_endian = np.ascontiguousarray(mask, dtype=">u2").view(np.uint8).reshape(height, 2 * width)
    return _encode(big_endian, width, 16, 0, level)


def _encode(rows: np.ndarray, width: int, bit_depth: int, color_type: int, level: int, palette_chunk: bytes = b"") -> bytes:
    """The PNG of uint8 scanline bytes (one row per image row), each row Up-filtered, deflated with Z_RLE."""
    height = rows.shape[0]
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    filtered = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = FILTER_UP
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    compressor = zlib_ng.compressobj(level, zlib_ng.DEFLATED, zlib_ng.MAX_WBITS, 9, zlib_ng.Z_RLE)
    idat = compressor.compress(filtered.tobytes()) + compressor.flush()
    chunks = [_chunk(b"IHDR", header), palette_chunk, _chunk(b"IDAT", idat), _chunk(b"IEND", b"")]
    return PNG_SIGNATURE + b"".join(chunks)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _header(data: bytes) -> tuple[int, ...] | None:
    """IHDR's width, height, bit depth, colour type, compression, filter and interlace; None if not a PNG."""
    if data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">IIBBBBB", data[16:29])


def png_damage(data: bytes) -> str | None:
    """What is wrong with a PNG's structure (no signature, a chunk cut short or failing its CRC, no
    IEND at the end), or None: a partly written file fails here without being decoded."""
    if data[:8] != PNG_SIGNATURE:
        return f"not a PNG ({len(data)} bytes, no PNG signature)"
    at = 8
    while at + 12 <= len(data):
        (length,), kind = struct.unpack(">I", data[at:at + 4]), data[at + 4:at + 8]
        end = at + 12 + length
        if end > len(data):
            return f"PNG cut short: chunk {kind!r} at byte {at} needs {end} bytes, the file has {len(data)}"
        if zlib.crc32(data[at + 4:end - 4]) != struct.unpack(">I", data[end - 4:end])[0]:
            return f"PNG chunk {kind!r} at byte {at} fails its CRC"
        if kind == b"IEND":
            return None if end == len(data) else f"PNG has {len(data) - end} bytes after IEND"
        at = end
    return f"PNG cut short: no IEND chunk in its {len(data)} bytes"


def png_frame(data: bytes) -> tuple[int, int, int]:
    """(width, height, bit depth) from a PNG's IHDR, without decoding the image."""
    header = _header(data)
    if header is None:
        raise ValueError("not a PNG (no signature and IHDR chunk)")
    return header[0], header[1], header[2]


def decode_written_mask(data: bytes) -> np.ndarray | None:
    """The 8-bit mask of a PNG as this writer makes them (grayscale or palette, Up filter on every
    row), decoded with one inflate and a running sum down the columns: about a third of Pillow's
    time on the same file. None for any other PNG, for Pillow to read; a damaged file fails its CRC
    or zlib check."""
    header = _header(data)
    if header is None:
        return None
    width, height, bit_depth, color_type, compression, filtering, interlace = header
    if bit_depth != 8 or color_type not in (0, 3) or (compression, filtering, interlace) != (0, 0, 0):
        return None
    idat, position = [], 8
    while position + 12 <= len(data):
        (length,), kind = struct.unpack(">I", data[position:position + 4]), data[position + 4:position + 8]
        payload = data[position + 8:position + 8 + length]
        if struct.unpack(">I", data[position + 8 + length:position + 12 + length])[0] != zlib.crc32(kind + payload):
            raise ValueError(f"PNG chunk {kind!r} at byte {position} fails its CRC")
        if kind == b"IDAT":
            idat.append(payload)
        elif kind == b"IEND":
            break
        position += 12 + length
    expected = height * (width + 1)
    inflater = zlib_ng.decompressobj()
    scanlines = inflater.decompress(b"".join(idat), expected + 1)
    if len(scanlines) != expected or not inflater.eof:
        return None
    rows = np.frombuffer(scanlines, dtype=np.uint8).reshape(height, width + 1)
    if not (rows[:, 0] == FILTER_UP).all():
        return None
    return _sum_down_columns(rows[:, 1:])


def _sum_down_columns(deltas: np.ndarray) -> np.ndarray:
    """Each row plus every row above it, mod 256: the Up filter undone. numpy's cumulative sum down
    axis 0 is several times slower than one add per row, and at this size the calls themselves are
    the cost; so the rows are cut into bands of about sqrt(height), summed down every band at once
    (a call per row of a band), then each band is lifted by the band above's last row (a call per
    band): about 2*sqrt(height) calls instead of height."""
    height, width = deltas.shape
    band = max(1, int(np.sqrt(height)))
    bands = -(-height // band)
    sums = np.zeros((bands * band, width), dtype=np.uint8)
    sums[:height] = deltas
    stacked = sums.reshape(bands, band, width)
    for row in range(1, band):
        np.add(stacked[:, row], stacked[:, row - 1], out=stacked[:, row])
    for index in range(1, bands):
        np.add(stacked[index], stacked[index - 1, -1], out=stacked[index])
    return sums[:height]
