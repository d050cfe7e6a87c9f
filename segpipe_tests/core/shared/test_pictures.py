"""Pictures for Markdown metadata: shrunk into a byte budget, shown in order, the rest counted."""

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from segpipe.core.shared.pictures import (
    DATA_URI_PREFIX, LegendEntry, Picture, PictureBudget, PictureTooLarge, colour_distance, colour_swatch, data_uri,
    fit_png, hex_colour, legend_markdown, legend_png, most_distinct_colour, picture_gallery,
)

DATA_URI = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def noisy_photo(width: int, height: int, seed: int = 0) -> bytes:
    """A picture PNG cannot compress much: smooth gradients under noise, like a photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], axis=-1)
    noise = rng.integers(-40, 40, size=(height, width, 3))
    return png(Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)))


def decoded(uri_png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(uri_png))
    image.load()
    return image


def test_a_large_picture_is_shrunk_until_its_data_uri_fits_and_stays_a_valid_png_of_the_same_shape():
    large = noisy_photo(1200, 600)
    assert len(data_uri(large)) > 10 * 24_000
    fitted = fit_png(large, 24_000, 800)
    assert len(data_uri(fitted)) <= 24_000
    image = decoded(fitted)
    assert image.format == "PNG" and 60 <= image.width <= 800
    assert abs(image.width / image.height - 2.0) < 0.05  # the aspect ratio is kept
    assert fit_png(large, 24_000, 800) == fitted  # deterministic: the same bytes in the event log every time


def test_a_picture_within_the_budget_is_kept_as_it_is_and_a_wide_one_is_only_narrowed():
    small = png(Image.new("RGB", (300, 100), (10, 200, 30)))
    assert fit_png(small, 24_000, 800) is small
    wide = png(Image.new("L", (2000, 500), 255))
    narrowed = decoded(fit_png(wide, 24_000, 800))
    assert narrowed.size == (800, 200) and narrowed.mode == "L"


def test_a_budget_no_picture_can_meet_is_an_error_naming_it_and_a_gallery_still_says_where_the_picture_is():
    with pytest.raises(PictureTooLarge, match="does not fit 100 bytes"):
        fit_png(noisy_photo(400, 200), 100, 800)
    text = picture_gallery([Picture("huge", lambda: noisy_photo(400, 200), "/store/huge.png")],
                           PictureBudget(max_uri_bytes=100))
    assert "data:image" not in text and "(not shown: a 400x200 picture does not fit 100 bytes" in text
    assert "full size: `/store/huge.png`" in text


def test_a_gallery_shows_the_first_pictures_in_order_within_the_budget_and_counts_the_rest():
    reads: list[str] = []

    def picture(name: str) -> Picture:
        def read() -> bytes:
            reads.append(name)
            return noisy_photo(900, 300, seed=len(name))
        return Picture(f"rule: {name}.jpg", read, f"s3://bucket/qa-thumbnails/{name}.png")

    budget = PictureBudget(max_uri_bytes=20_000, max_pictures=2, max_width=800)
    names = [f"p{k}" for k in range(14)]
    text = picture_gallery([picture(n) for n in names], budget, everything="s3://bucket/qa-thumbnails", note="How to read")
    assert reads == ["p0", "p1"]  # only the pictures shown are read
    uris = DATA_URI.findall(text)
    assert len(uris) == 2 and all(len(DATA_URI_PREFIX) + len(u) <= 20_000 for u in uris)
    assert all(decoded(base64.b64decode(u)).format == "PNG" for u in uris)
    assert text.index("rule: p0.jpg") < text.index("rule: p1.jpg") < text.index("+12 more")
    assert text.startswith("How to read")
    assert "full size: `s3://bucket/qa-thumbnails/p0.png`" in text  # a location a browser cannot open: text to copy
    more = text[text.index("+12 more"):]
    assert "(all in `s3://bucket/qa-thumbnails`)" in more
    assert "rule: p2.jpg; rule: p3.jpg" in more and "rule: p11.jpg" in more and "rule: p12.jpg" not in more
    assert more.endswith(", and 2 more")
    assert picture_gallery([], budget) == "none"


def test_an_http_location_is_a_link_and_captions_cannot_break_the_markdown():
    picture = Picture("a | b [c]", lambda: png(Image.new("RGB", (4, 4))), "https://example.org/x.png")
    text = picture_gallery([picture], PictureBudget())
    assert "full size: [https://example.org/x.png](https://example.org/x.png)" in text
    assert "**a \\| b \\[c\\]**" in text and "+" not in text.split("base64,")[0]


def test_colours_are_hex_codes_with_a_swatch_never_python_lists():
    assert hex_colour((128, 64, 128)) == "#804080" and hex_colour([0, 0, 142]) == "#00008e"
    swatch = colour_swatch((128, 64, 128))
    [uri] = DATA_URI.findall(swatch)
    image = decoded(base64.b64decode(uri)).convert("RGB")
    assert image.getpixel((image.width // 2, image.height // 2)) == (128, 64, 128)
    assert swatch.endswith("`#804080`") and "[128" not in swatch and "(128" not in swatch


def test_a_legend_is_a_table_row_per_entry_and_a_picture_with_every_colour():
    entries = [LegendEntry((128, 64, 128), "road", "class 0"), LegendEntry((0, 255, 0), "QA problem", "the failure"),
               LegendEntry(None, "unlabelled (255)", "no class")]
    table = legend_markdown(entries).splitlines()
    assert table[0] == "| colour | name | marks |" and len(table) == 2 + len(entries)
    assert "`#804080` | road | class 0 |" in table[2] and table[4].startswith("|  | unlabelled (255) |")
    picture = decoded(legend_png(entries)).convert("RGB")
    colours = {colour for _, colour in picture.getcolors(1 << 16)}
    assert {(128, 64, 128), (0, 255, 0)} <= colours
    assert decoded(legend_png(entries[:1])).height < picture.height


def test_the_most_distinct_colour_is_farther_from_the_used_ones_than_any_other_candidate():
    used = [(128, 64, 128), (244, 35, 232), (70, 70, 70), (0, 255, 0), (0, 0, 255)]
    chosen = most_distinct_colour(used)
    nearest = min(colour_distance(chosen, c) for c in used)
    levels = np.linspace(0, 255, 18).round().astype(int)
    for candidate in [(r, g, b) for r in levels[::3] for g in levels[::3] for b in levels[::3]]:
        assert nearest >= min(colour_distance(candidate, c) for c in used) - 1e-9
    assert most_distinct_colour(used) == chosen
