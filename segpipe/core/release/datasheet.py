"""The README.md datasheet a release ships: what is in it, how it was checked, how to load it.

Written from meta.json and the release's own pictures, so it says nothing the release does not
hold, and leaves out the build's run id and time (the datasheet is part of the content, which a
rebuild of the same data repeats). Pictures are members of the release, linked by their paths.
"""

from collections.abc import Sequence

from segpipe.core.release import layout
from segpipe.core.release.provenance import NOT_STATED, licences
from segpipe.core.shared.pictures import hex_colour

TERMS = ("source", "licence", "origin", "attribution")
SHOWN_BATCHES = 3  # a row or a licence of more batches gives their number; meta.json lists them all

PYTORCH_SNIPPET = '''```python
import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image


class ReleaseDataset(torch.utils.data.Dataset):
    """One split of the unzipped release: (image as 3xHxW uint8, mask as HxW int64 class ids)."""

    def __init__(self, root: str, split: str):
        self.root = Path(root)
        with open(self.root / "index.csv", newline="") as f:
            self.rows = [row for row in csv.DictReader(f) if row["split"] == split]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        row = self.rows[i]
        image = np.array(Image.open(self.root / row["image_path"]).convert("RGB"))
        mask = np.array(Image.open(self.root / row["mask_path"]))  # class ids, also for palette PNGs
        return torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(mask.astype(np.int64))


train = ReleaseDataset("path/to/unzipped/release", "train")
# loss: torch.nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
```'''


PRIVACY = (
    "Images carry their pixels and nothing about who took them or where: EXIF (GPS position, camera serial "
    "number, artist), XMP, IPTC and comments were removed, without re-encoding, so an image's `image_sha256` is "
    "of the released file while its `image_id` stays the hash of the file as delivered. Annotators and batches "
    "are named by keyed pseudonyms (`annotator-…`, `batch-…`), and file names are paths in their batch.")


def datasheet(meta: dict, distribution_chart: str | None, qa_pictures: Sequence[tuple[str, str]]) -> str:
    """The datasheet of a release described by `meta` (meta.json's content), showing the legend
    (layout.LEGEND), the distribution chart (its path in the ZIP, when the release has one) and
    qa_pictures, (caption, path) of the QA thumbnails to show."""
    total = sum(meta["class_pixels"].values()) + meta["ignored_pixels"]
    lines = [
        f"# {meta['dataset']} {meta['version']}", "",
        f"Semantic segmentation, taxonomy `{meta['taxonomy_version']}`: {sum(meta['splits'].values())} images, "
        f"masks are `{meta['mask_encoding']}` PNGs of class ids, `{meta['ignore_index']}` where nothing is labelled. "
        "`meta.json` has the full description and lineage, `index.csv` one row per image, "
        "`coco/coco.json` the masks as COCO RLE, `labels/` and `yolo/data.yaml` as YOLO segmentation polygons, "
        "`dataset_meta.json` the class map Datumaro reads, `SHA256SUMS` a checksum of every file "
        "(`sha256sum -c SHA256SUMS` in the unzipped folder).", "",
        "## Classes", "",
        "| id | name | colour | pixel share |", "|---|---|---|---|",
        *[f"| {c['id']} | {c['name']} | `{hex_colour(c['color'])}` | {_share(meta['class_pixels'][c['name']], total)} |"
          for c in sorted(meta["classes"], key=lambda c: c["id"])],
        f"| {meta['ignore_index']} | (ignored) | | {_share(meta['ignored_pixels'], total)} |", "",
        f"![Colours of masks and QA pictures]({layout.LEGEND})", "",
        "## Splits", "",
        "| split | images |", "|---|---|",
        *[f"| {split} | {n} |" for split, n in meta["splits"].items()], "",
    ]
    if distribution_chart is not None:
        lines += [f"![Class distribution per split]({distribution_chart})", ""]
    lines += _sources(meta["sources"])
    lines += ["## Privacy", "", PRIVACY, ""]
    lines += ["## QA", ""]
    failures = meta["qa_failures"]
    lines += (["| rule | failures |", "|---|---|", *[f"| {rule} | {n} |" for rule, n in failures.items()]]
              if failures else ["No QA rule failed."])
    lines += ["", "`qa/report.csv` lists each failure with its reason; `qa/thumbnails/` shows the first ones: the "
              "image beside its mask, the problem in the colour the legend names.", ""]
    lines += [line for caption, path in qa_pictures for line in (f"![{_alt(caption)}]({path})", "")]
    lines += ["## Loading in PyTorch", "", PYTORCH_SNIPPET.replace("IGNORE_INDEX", str(meta["ignore_index"])), ""]
    lines += _layouts(meta)
    return "\n".join(lines)


def _layouts(meta: dict) -> list[str]:
    """How to get and load each trainer layout the release carries (release.exports)."""
    exports = meta.get("exports", [])
    if not exports:
        return []
    version = meta["version"]
    lines = ["## Trainer layouts", "",
             "The layouts' label files and lists are in this release; their images are the release's own "
             "`images/`, which `segpipe fetch` links into place (and checks against `SHA256SUMS`):", "",
             f"```sh\nsegpipe fetch {version} {meta['dataset']}-{version} "
             + " ".join(f"--layout {name}" for name in exports) + "\n```", ""]
    loaders = {"cityscapes": LOAD_CITYSCAPES, "voc": LOAD_VOC, "hf": LOAD_HF}
    for name in exports:
        lines += [loaders[name].replace("RELEASE", f"{meta['dataset']}-{version}"), ""]
    return lines


LOAD_CITYSCAPES = """### Cityscapes (`cityscapes/`)

`cityscapes/gtFine/<split>/<city>/<city>_<stem>_<id>_gtFine_labelTrainIds.png` holds class ids with 255 where \
nothing is labelled (with a Cityscapes preset also `_gtFine_labelIds.png`, which cityscapesScripts' evaluation \
reads); images are `cityscapes/leftImg8bit/<split>/<city>/<city>_<stem>_<id>_leftImg8bit.<suffix>`, under the \
suffix they were delivered with (set `img_suffix` for JPEG).

```python
# mmsegmentation
dataset = dict(type="CityscapesDataset", data_root="RELEASE/cityscapes",
               data_prefix=dict(img_path="leftImg8bit/train", seg_map_path="gtFine/train"))
# cityscapesScripts' evaluation (labelIds, with a Cityscapes preset)
# CITYSCAPES_DATASET=RELEASE/cityscapes python -m cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling
```"""

LOAD_VOC = """### PASCAL VOC (`voc/`)

`voc/SegmentationClass/<stem>.png` are palette PNGs of class ids in the taxonomy's colours (255: `void`), \
`voc/ImageSets/Segmentation/{train,val,test,trainval}.txt` list the stems, `voc/labelmap.txt` names the classes, \
`voc/JPEGImages/` holds the images under their own suffix.

```python
import datumaro as dm

dataset = dm.Dataset.import_from("RELEASE/voc", "voc_segmentation")
```"""

LOAD_HF = """### Hugging Face `datasets` (`hf/`)

One Parquet file per split with the image and its class mask (`label`) as `Image` features and `classes`, \
the classes present, as `ClassLabel`s whose index is the mask's pixel value.

```python
from datasets import load_dataset

dataset = load_dataset("RELEASE/hf")  # the card keeps the release's split names
# or the Parquet files alone (data_dir= would rename val to validation):
# load_dataset("parquet", data_files={"train": "RELEASE/hf/data/train-*.parquet", ...})
names = dataset["train"].features["classes"].feature.names
```"""


def _sources(sources: list[dict]) -> list[str]:
    """The source batches and their terms, one row per source and terms (meta.json lists every batch);
    a release whose batches differ in licence says so first."""
    lines = ["## Sources and licences", ""]
    by_licence = licences(sources)
    if len(by_licence) > 1:
        terms = "; ".join(f"{_cell(licence)} ({_batches(batches)})" for licence, batches in by_licence.items())
        lines += [f"**Mixed licences.** The images of this release come under {len(by_licence)} licences: {terms}. "
                  "`index.csv`'s `source_batches` says which batches delivered each image: use each image under "
                  "the terms of its batches.", ""]
    elif by_licence:
        [licence] = by_licence
        lines += ["No source batch states a licence: ask the data's owner before you use or share it." if
                  licence == NOT_STATED else f"Every source batch states the licence {_cell(licence)}.", ""]
    rows: dict[tuple, list[dict]] = {}
    for entry in sources:
        rows.setdefault(tuple(entry[key] for key in TERMS), []).append(entry)
    lines += ["| source | licence | origin | attribution | batches | images delivered |", "|---|---|---|---|---|---|",
              *[f"| {' | '.join(_cell(value) for value in terms)} | {_batches([e['batch_id'] for e in entries])} | "
                f"{sum(e['images'] for e in entries)} |" for terms, entries in rows.items()], ""]
    return lines


def _batches(batches: list[str]) -> str:
    return ", ".join(batches) if len(batches) <= SHOWN_BATCHES else f"{len(batches)} batches"


def _cell(text: str | None) -> str:
    """Free text from batch.json as one Markdown table cell."""
    return NOT_STATED if text is None else " ".join(text.split()).replace("|", "\\|")


def _alt(text: str) -> str:
    """A caption as a Markdown image's alternative text."""
    return " ".join(text.split()).replace("[", "\\[").replace("]", "\\]")


def _share(pixels: int, total: int) -> str:
    return f"{100 * pixels / total:.2f}%" if total else "0.00%"
