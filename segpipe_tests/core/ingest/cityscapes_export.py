"""A generated Cityscapes `gtFine` export, in the dataset's exact layout.

The Cityscapes licence forbids redistributing its files, so the corpus holds a generated export
instead: polygon JSON as the Cityscapes annotators' tool writes it (`imgHeight`, `imgWidth`,
`objects` of `{label, polygon}`, a deleted object marked `deleted: 1`), rendered into
`_labelIds.png`, `_instanceIds.png` and `_color.png` by cityscapesScripts itself
(json2labelImg, json2instanceImg's createInstanceImage), which is how the official gtFine PNGs were made, beside
`leftImg8bit/` images of noise. `python -m segpipe_tests.core.ingest.cityscapes_export DIR`
writes it; a test checks that the committed copy equals a fresh one.
"""

import json
import sys
from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
from cityscapesscripts.preparation.json2labelImg import json2labelImg
from PIL import Image

SPLIT, CITY = "val", "testcity"
WIDTH, HEIGHT = 64, 32

# Per frame: objects in paint order, as [label, [[x, y], ...]] or [label, points, "deleted"].
FRAMES: dict[str, list[list]] = {
    f"{CITY}_000000_000019": [
        ["sky", [[0, 0], [64, 0], [64, 8], [0, 8]]],
        ["building", [[0, 4], [40, 4], [40, 18], [0, 18]]],
        ["road", [[0, 18], [64, 18], [64, 32], [0, 32]]],
        ["sidewalk", [[40, 14], [64, 14], [64, 20], [40, 20]]],
        ["car", [[4, 16], [20, 16], [20, 26], [4, 26]]],
        ["license plate", [[9, 23], [15, 23], [15, 25], [9, 25]]],
        ["car", [[24, 17], [34, 17], [34, 25], [24, 25]]],
        ["cargroup", [[44, 18], [62, 18], [62, 24], [44, 24]]],
        ["person", [[36, 10], [39, 10], [39, 24], [36, 24]]],
        ["car", [[50, 2], [60, 2], [60, 6], [50, 6]], "deleted"],
        ["ego vehicle", [[0, 29], [64, 29], [64, 32], [0, 32]]],
    ],
    f"{CITY}_000001_000019": [
        ["vegetation", [[0, 0], [64, 0], [64, 14], [0, 14]]],
        ["road", [[0, 14], [64, 14], [64, 32], [0, 32]]],
        ["rider", [[20, 8], [26, 8], [26, 20], [20, 20]]],
        ["bicycle", [[18, 16], [30, 16], [30, 26], [18, 26]]],
        ["polegroup", [[44, 2], [47, 2], [47, 22], [44, 22]]],
        ["person", [[52, 10], [56, 10], [56, 26], [52, 26]]],
        ["out of roi", [[0, 30], [64, 30], [64, 32], [0, 32]]],
    ],
}


def polygons_document(objects: list[list]) -> dict:
    """The gtFine polygon JSON of one frame."""
    entries = []
    for label, polygon, *flags in objects:
        entry: dict = {"label": label, "polygon": polygon}
        if "deleted" in flags:
            entry["deleted"] = 1
        entries.append(entry)
    return {"imgHeight": HEIGHT, "imgWidth": WIDTH, "objects": entries}


def write_cityscapes_gtfine(root: Path) -> list[Path]:
    """Write the export under root; returns the files written, sorted."""
    for index, (stem, objects) in enumerate(FRAMES.items()):
        gt = root / "gtFine" / SPLIT / CITY
        gt.mkdir(parents=True, exist_ok=True)
        polygons = gt / f"{stem}_gtFine_polygons.json"
        polygons.write_text(json.dumps(polygons_document(objects), indent=4) + "\n")
        json2labelImg(str(polygons), str(gt / f"{stem}_gtFine_labelIds.png"), "ids")
        json2labelImg(str(polygons), str(gt / f"{stem}_gtFine_color.png"), "color")
        _write_instance_ids(polygons, gt / f"{stem}_gtFine_instanceIds.png")
        images = root / "leftImg8bit" / SPLIT / CITY
        images.mkdir(parents=True, exist_ok=True)
        noise = np.random.default_rng(index).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        Image.fromarray(noise).save(images / f"{stem}_leftImg8bit.png")
    return sorted(path for path in root.rglob("*") if path.is_file())


def _write_instance_ids(polygons: Path, out: Path) -> None:
    """json2instanceImg's image, saved as the 16-bit PNG the official files are: the Pillow here
    no longer writes mode "I" as PNG, which older Pillow silently stored as 16-bit."""
    annotation = Annotation()
    annotation.fromJsonFile(str(polygons))
    createInstanceImage(annotation, "ids").convert("I;16").save(out)


if __name__ == "__main__":
    write_cityscapes_gtfine(Path(sys.argv[1]))
