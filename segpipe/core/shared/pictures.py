"""Pictures in Markdown metadata: PNGs shrunk until their data URI fits a byte budget.

The Dagster UI renders Markdown images, and data: URIs among them, but the event log keeps every
metadata value forever: a presigned store URL in it would expire, a full-size picture would bloat
it. So a picture travels as a data URI of at most `max_uri_bytes` (downscaled and reduced to a
palette until it fits), a value shows at most `max_pictures` of them and counts the rest, and the
full-size object's location stands beside each picture. The UI's Markdown links only http(s)
URLs, so any other location (s3://, file://) is shown as text to copy.
"""

import base64
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

DATA_URI_PREFIX = "data:image/png;base64,"
SHRINK_STEP = 0.8  # each further attempt is this much narrower
PALETTE_SIZES = (256, 64)  # colours tried at each size, most first
MIN_WIDTH = 16
SWATCH_PX = 14
HIDDEN_NAMED = 10  # captions of pictures not shown that "+N more" names

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class PictureBudget:
    """How much of the event log one metadata value may take: max_pictures data URIs of at most
    max_uri_bytes each, and at most max_width pixels wide (wider ones are narrowed, to fit the page)."""

    max_uri_bytes: int = 24_000
    max_pictures: int = 3
    max_width: int = 800


@dataclass(frozen=True)
class Picture:
    """A picture to show: its caption, how to read its full-size PNG (read only if it is shown), and
    where the full-size object is (a URL or a path), shown beside it."""

    caption: str
    read: Callable[[], bytes]
    location: str | None = None


class PictureTooLarge(ValueError):
    """Even MIN_WIDTH pixels wide and with the fewest colours, the picture does not fit the budget."""


def data_uri(png: bytes) -> str:
    return DATA_URI_PREFIX + base64.b64encode(png).decode("ascii")


def _uri_length(png: bytes) -> int:
    """len(data_uri(png)), without encoding it: base64 writes 4 characters per 3 bytes, padded."""
    return len(DATA_URI_PREFIX) + 4 * -(-len(png) // 3)


def fit_png(png: bytes, max_uri_bytes: int, max_width: int) -> bytes:
    """`png` itself when its data URI fits `max_uri_bytes` and it is at most `max_width` wide, else
    the largest version that does: reduced to a palette of 256, then 64 colours, and narrowed by
    SHRINK_STEP until one fits (a first guess from the byte ratio skips the sizes that cannot).
    Deterministic: the same PNG and budget give the same bytes."""
    with Image.open(io.BytesIO(png)) as opened:
        if _uri_length(png) <= max_uri_bytes and opened.width <= max_width:
            return png
        image = opened.convert("L" if opened.mode in ("1", "L", "I", "I;16") else "RGB")
    width, height = image.size
    # bytes go roughly with the area, and a palette about halves them: start where that would fit
    scale = min(1.0, max_width / width, (max_uri_bytes / _uri_length(png)) ** 0.5 * 2)
    while True:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        resized = image if size == image.size else image.resize(size, Image.Resampling.BOX)
        for colours in PALETTE_SIZES if resized.mode == "RGB" else (None,):
            candidate = _encode(resized if colours is None else resized.quantize(
                colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE))
            if _uri_length(candidate) <= max_uri_bytes:
                return candidate
        if size[0] <= MIN_WIDTH:
            raise PictureTooLarge(f"a {width}x{height} picture does not fit {max_uri_bytes} bytes even "
                                  f"{size[0]} pixels wide")
        scale = max(scale * SHRINK_STEP, MIN_WIDTH / width)


def _encode(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=9)
    return out.getvalue()


def location_markdown(location: str) -> str:
    """A link where the UI follows it (http, https), else the location as text to copy."""
    if location.startswith(("http://", "https://")):
        return f"[{_escaped(location)}]({location})"
    return f"`{location}`"


def inline_picture(picture: Picture, budget: PictureBudget) -> str:
    """The picture as Markdown: its caption, the image within the budget, the full-size location."""
    caption = _escaped(picture.caption)
    try:
        shown = f"![{caption}]({data_uri(fit_png(picture.read(), budget.max_uri_bytes, budget.max_width))})"
    except PictureTooLarge as exc:  # a freak shape (thousands of pixels tall): the location still shows it
        shown = f"(not shown: {_escaped(str(exc))})"
    lines = [f"**{caption}**", "", shown]
    if picture.location is not None:
        lines += ["", f"full size: {location_markdown(picture.location)}"]
    return "\n".join(lines)


def picture_gallery(pictures: Sequence[Picture], budget: PictureBudget, everything: str | None = None,
                    note: str | None = None) -> str:
    """`note` (how to read the pictures), the first budget.max_pictures pictures in order, then
    "+N more" naming the others' captions (the first HIDDEN_NAMED) and where all of them are
    (`everything`, a location such as a folder)."""
    if not pictures:
        return "none"
    shown, hidden = pictures[:budget.max_pictures], pictures[budget.max_pictures:]
    parts = ([] if note is None else [_escaped(note)]) + [inline_picture(picture, budget) for picture in shown]
    if hidden:
        names = "; ".join(_escaped(p.caption) for p in hidden[:HIDDEN_NAMED])
        more = f", and {len(hidden) - HIDDEN_NAMED} more" if len(hidden) > HIDDEN_NAMED else ""
        where = f" (all in {location_markdown(everything)})" if everything else ""
        parts.append(f"+{len(hidden)} more{where}: {names}{more}")
    return "\n\n".join(parts)


def hex_colour(rgb: Sequence[int]) -> str:
    """#rrggbb, as colour pickers and CSS write it."""
    return "#" + "".join(f"{int(v):02x}" for v in rgb)


def swatch_png(rgb: Sequence[int]) -> bytes:
    """A square of one colour in a grey frame, so white and black still show as squares."""
    image = Image.new("RGB", (SWATCH_PX, SWATCH_PX), "white")
    _draw_swatch(ImageDraw.Draw(image), 0, 0, rgb)
    return _encode(image)


def _draw_swatch(draw: ImageDraw.ImageDraw, left: int, top: int, rgb: Sequence[int]) -> None:
    draw.rectangle([left, top, left + SWATCH_PX - 1, top + SWATCH_PX - 1], fill=tuple(int(v) for v in rgb),
                   outline=(128, 128, 128))


def colour_swatch(rgb: Sequence[int]) -> str:
    """Markdown for a colour: a small swatch image and its hex code."""
    code = hex_colour(rgb)
    return f"![{code}]({data_uri(swatch_png(rgb))}) `{code}`"


@dataclass(frozen=True)
class LegendEntry:
    """One row of a legend: a colour (None for what has no colour of its own), its name, what it marks."""

    colour: RGB | None
    name: str
    marks: str


def legend_markdown(entries: Sequence[LegendEntry]) -> str:
    """The legend as a Markdown table, each colour as a swatch and its hex code."""
    rows = ["| colour | name | marks |", "|---|---|---|"]
    rows += [f"| {'' if e.colour is None else colour_swatch(e.colour)} | {_escaped(e.name)} | {_escaped(e.marks)} |"
             for e in entries]
    return "\n".join(rows)


def legend_png(entries: Sequence[LegendEntry]) -> bytes:
    """The legend as a picture, one row per entry and a column each for the swatch, the name, the hex
    code and what it marks (for a file beside the pictures it explains, where Markdown swatches do
    not travel)."""
    font = ImageFont.load_default()
    row, margin, gap = 20, 10, 12
    cells = [(e.name, "" if e.colour is None else hex_colour(e.colour), e.marks) for e in entries]
    widths = [max((round(font.getlength(text)) for text in column), default=0) for column in zip(*cells, strict=True)]
    lefts = [margin + SWATCH_PX + gap]
    for width in widths[:-1]:
        lefts.append(lefts[-1] + width + gap)
    image = Image.new("RGB", (lefts[-1] + (widths[-1] if widths else 0) + margin, row * len(entries) + 8), "white")
    draw = ImageDraw.Draw(image)
    for k, (entry, texts) in enumerate(zip(entries, cells, strict=True)):
        top = 4 + k * row
        if entry.colour is not None:
            _draw_swatch(draw, margin, top + 2, entry.colour)
        for left, text in zip(lefts, texts, strict=True):
            draw.text((left, top + 3), text, fill="black", font=font)
    return _encode(image)


def _escaped(text: str) -> str:
    """Text inside a Markdown table cell, caption or link text."""
    return " ".join(str(text).split()).replace("|", "\\|").replace("[", "\\[").replace("]", "\\]")


def lab(rgb: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65) of sRGB colours (..., 3) in 0..255: Euclidean distance there is roughly
    how different two colours look (CIE76)."""
    linear = np.asarray(rgb, dtype=np.float64) / 255
    linear = np.where(linear > 0.04045, ((linear + 0.055) / 1.055) ** 2.4, linear / 12.92)
    xyz = linear @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def colour_distance(a: Sequence[int], b: Sequence[int]) -> float:
    """CIE76 colour difference: about 2 is barely noticeable, above 20 clearly another colour."""
    return float(np.linalg.norm(lab(np.array(a)) - lab(np.array(b))))


def most_distinct_colour(used: Sequence[Sequence[int]], levels: int = 18) -> RGB:
    """The colour of a `levels`-step grid over the RGB cube whose nearest colour in `used` (at least
    one) is farthest away in L*a*b*; the first such in grid order on a tie, so always the same one."""
    steps = np.linspace(0, 255, levels).round().astype(np.int64)
    grid = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), axis=-1).reshape(-1, 3)
    distances = np.linalg.norm(lab(grid)[:, None, :] - lab(np.asarray(used))[None, :, :], axis=-1).min(axis=1)
    r, g, b = grid[int(distances.argmax())].tolist()
    return (r, g, b)
