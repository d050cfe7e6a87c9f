"""A small LabelMe export as a user brings it: images and one JSON per image, no batch.json, no
metadata CSV, labels no taxonomy of segpipe knows."""

import io
from pathlib import Path

import numpy as np
import orjson
from PIL import Image

LABELS = ("dent", "scratch", "rust")  # not the label of any packaged preset


def write_labelme_export(folder: Path, n_images: int = 12, width: int = 96, height: int = 64, seed: int = 0) -> Path:
    """`n_images` distinct PNG images, each with a background polygon over the whole frame (the part)
    and one or two defects on it, in paint order; returns the folder."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        pixels = rng.integers(0, 256, size=(height // 8, width // 8, 3), dtype=np.uint8)
        image = Image.fromarray(pixels).resize((width, height), Image.NEAREST)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        (folder / f"part_{i:03d}.png").write_bytes(buffer.getvalue())
        shapes = [_polygon("part", [[0, 0], [width, 0], [width, height], [0, height]])]
        for k in range(1 + i % 2):
            label = LABELS[(i + k) % len(LABELS)]
            x, y = int(rng.integers(4, width - 24)), int(rng.integers(4, height - 24))
            shapes.append(_polygon(label, [[x, y], [x + 20, y + 2], [x + 16, y + 18], [x + 2, y + 14]]))
        document = {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": f"part_{i:03d}.png",
                    "imageData": None, "imageHeight": height, "imageWidth": width}
        (folder / f"part_{i:03d}.json").write_bytes(orjson.dumps(document))
    return folder


def _polygon(label: str, points: list[list[int]]) -> dict:
    return {"label": label, "points": points, "group_id": None, "description": "", "shape_type": "polygon",
            "flags": {}}
