"""The sampling report as a bar chart (PNG), drawn with Pillow so no plotting stack is needed.

One panel per dimension (the split sizes first, then each strata column, then the class pixel
shares): per value a grey bar for the target, a dark bar for the selection and a thin bar per
split, so a value that missed its target, or a split that lacks it, shows at a glance. Each class
is named beside a swatch of its taxonomy colour, the colour masks and QA pictures show it in.
"""

import io
from collections.abc import Mapping, Sequence

import polars as pl
from PIL import Image, ImageDraw, ImageFont

from segpipe.core.sampling.spec import SPLITS

WIDTH, LABEL_WIDTH, ROW, GAP, TITLE, SWATCH = 760, 170, 30, 14, 22, 12
TARGET, ACHIEVED = (200, 200, 200), (40, 70, 120)
SPLIT_COLOURS = {"train": (70, 150, 90), "val": (220, 150, 40), "test": (190, 60, 60)}


def _panels(distribution: pl.DataFrame, classes: pl.DataFrame,
            class_colours: Mapping[int, Sequence[int]]) -> list[tuple[str, list[dict]]]:
    panels = [(str(dimension), group.to_dicts())
              for (dimension,), group in distribution.group_by("dimension", maintain_order=True)]
    if not classes.is_empty():
        rows = [{"value": row["name"], "target": None, "colour": class_colours.get(row["class_id"]),
                 "achieved": sum(row[f"pixel_share_{s}"] for s in SPLITS) / len(SPLITS),
                 **{s: row[f"pixel_share_{s}"] for s in SPLITS}} for row in classes.to_dicts()]
        panels.append(("class pixel share per split", rows))
    return panels


def render_distribution_chart(distribution: pl.DataFrame, classes: pl.DataFrame,
                              class_colours: Mapping[int, Sequence[int]]) -> bytes:
    """PNG of the report tables of distribution_report; class_colours: the taxonomy's colour per class id."""
    panels = _panels(distribution, classes, class_colours)
    height = GAP + sum(TITLE + ROW * len(rows) + GAP for _, rows in panels) + ROW
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    bar_width = WIDTH - LABEL_WIDTH - 110
    y = GAP
    for title, rows in panels:
        draw.text((8, y), title, fill="black", font=font)
        y += TITLE
        scale = max([1e-9, *[float(r[k] or 0) for r in rows for k in ("target", "achieved", *SPLITS)]])
        for row in rows:
            name_at = 8
            if row.get("colour") is not None:
                draw.rectangle([8, y + 8, 8 + SWATCH, y + 8 + SWATCH], fill=tuple(row["colour"]), outline=(128, 128, 128))
                name_at += SWATCH + 6
            draw.text((name_at, y + 8), str(row["value"])[:24], fill="black", font=font)
            left = LABEL_WIDTH

            def bar(top: int, thickness: int, value: float | None, colour: tuple[int, int, int],
                    left: int = left) -> None:
                if value is not None:
                    draw.rectangle([left, top, left + max(1, round(bar_width * value / scale)), top + thickness], fill=colour)

            bar(y + 2, 10, row.get("target"), TARGET)
            bar(y + 4, 6, row["achieved"], ACHIEVED)
            for k, split in enumerate(SPLITS):
                bar(y + 15 + 4 * k, 2, row.get(split), SPLIT_COLOURS[split])
            share = row["achieved"]
            target = row.get("target")
            label = f"{share:.1%}" + ("" if target is None else f" / {target:.0%}")
            draw.text((left + bar_width + 6, y + 2), label, fill="black", font=font)
            y += ROW
        y += GAP
    legend = [("target", TARGET), ("selection", ACHIEVED), *SPLIT_COLOURS.items()]
    x = 8
    for name, colour in legend:
        draw.rectangle([x, y + 4, x + 12, y + 14], fill=colour)
        draw.text((x + 16, y + 3), name, fill="black", font=font)
        x += 110
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
