"""Folders of already-rendered masks: PASCAL VOC, ADE20K and plain `images/` + `masks/` folders.

Every mask PNG becomes one AnnotatedImage whose size is the mask's (ingest compares it with the
image's). Its image is looked up (image_lookup) where the layout puts it, then by file name
anywhere in the batch (the masks themselves never count); an image not found keeps the mask's
shapes and gets `image_error`. Each value present in the mask becomes one Shape(kind="mask", raw_label=<class name>)
holding exactly the pixels of that value, in ascending value order; the shapes never overlap, so
the order paints nothing differently. Names come from the format's class map; a value it does not
name keeps its number as its label (`"7"`), so the taxonomy still sees it and can map or refuse it.

Decoding is as careful as for images: PNG only, fully loaded (a truncated file is an error here,
not in a training job), Pillow's decompression-bomb limit turned from a warning into an error.
Modes: palette (`P`), 8-bit grayscale (`L`) and 1-bit (`1`) masks hold the class index itself (a
palette's colours are not consulted, as the VOC devkit and trainers read them); RGB masks are
decoded through the class map's colours, and a colour it does not list is an error on the image
naming the colour and its pixel count. Any other mode is an error on the image. A broken mask is
an error on its image; a broken or ambiguous class map, which serves many images, raises.

Formats:
- `voc_segmentation`: `<root>/SegmentationClass/<stem>.png` annotates `<root>/JPEGImages/<stem>.jpg`.
  Without `<root>/labelmap.txt` the 21 VOC classes apply (0 background ... 20 tvmonitor) with the
  VOC palette colours. A `labelmap.txt` (CVAT / Datumaro export: `name:r,g,b:parts:actions` per
  line, `#` comments) replaces them, the n-th label taking index n; when no line has a colour,
  labels take the VOC palette colour of their index (as Datumaro does). 255 is `void`, the VOC
  boundary, colour (224, 224, 192), unless the label map itself names index 255.
  `SegmentationObject/` (instances), `Annotations/` and `ImageSets/` are not read; the instance
  masks, and the overlays labelme2voc writes in `SegmentationClassVisualization/` and
  `SegmentationObjectVisualization/`, are the reader's companions (listed unused, never images).
- `ade20k`: the full ADE20K dataset's `<stem>_seg.png` annotates `<stem>.jpg` beside it; the object
  class is R/10*256 + G (B encodes instances, which a semantic mask merges). The SceneParsing
  challenge layout (ADEChallengeData2016) `<root>/annotations/<split>/<stem>.png` (grayscale, 0..150)
  annotates `<root>/images/<split>/<stem>.jpg`. In both the label is the class number as a string;
  `"0"` means unlabeled in both, and the taxonomy maps it (usually to ignore). The name files
  (`objectInfo150.csv`, `index_ade20k.pkl`) are not read. The part masks `<stem>_parts_N.png` and
  the 2020 layout's instance masks `<stem>/instance_NNN_*.png` beside a `_seg.png` are the
  reader's companions (listed unused, never images).
- `image_mask_folders`: `<root>/masks/<path>.png` annotates `<root>/images/<path>.<jpg|jpeg|png>`
  (the first that exists, `.jpg` if none does), with exactly one class map beside the two folders,
  `<root>/class_map.json` or `<root>/dataset_meta.json`. Its schema (Datumaro's dataset_meta.json):
    {"labels": ["background", "car"],                  optional: the name of index i is labels[i]
     "label_map": {"0": "background", "255": "ignore"}, optional: index (decimal string) -> name
     "segmentation_colors": [[0, 0, 0], [0, 0, 142]]}  optional: the colour of the i-th label_map
                                                         entry, for RGB masks; needs label_map
  At least one name is required; where labels and label_map both name an index they must agree;
  colours must be distinct. Other keys (`background_label`, `parts`, `actions`) are ignored. An
  ignore value such as 255 is named by the class map like any other, or keeps its number.
"""

import io
import posixpath
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import (
    CLASS_MAP_AMBIGUOUS,
    CLASS_MAP_INVALID,
    CLASS_MAP_MISSING,
    MASK_MODE_UNSUPPORTED,
    MASK_UNDECODABLE,
    UNKNOWN_MASK_COLOUR,
)
from segpipe.core.ingest.formats.annotation import AnnotatedImage, BoxMask, Shape
from segpipe.core.ingest.formats.reader import FormatReader, ReaderOptions
from segpipe.core.ingest.formats.strict_json import load_json
from segpipe.core.ingest.image_lookup import ImageIndex, ImageLookup
from segpipe.core.ingest.sources.source import BatchSource

Rgb = tuple[int, int, int]
INDEX_MODES = ("1", "L", "P")
VOID_INDEX = 255
VOID_COLOUR: Rgb = (224, 224, 192)
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
VOC_LABELMAP = "labelmap.txt"
FOLDER_CLASS_MAPS = ("class_map.json", "dataset_meta.json")
# Pillow stretches 2- and 4-bit grayscale to 0..255 (index 1 reads as 85 or 17); a mask needs the stored index.
_GREY_STRETCH = {"L;2": 85, "L;4": 17}
_INDEX_KEY = re.compile(r"[0-9]{1,9}")
_LABELMAP_COLOUR = re.compile(r"\s*([0-9]{1,3})\s*,\s*([0-9]{1,3})\s*,\s*([0-9]{1,3})\s*")


@dataclass(frozen=True)
class _ClassMap:
    """What a mask's values mean: a name per index and, for RGB masks, the index of each colour."""

    names: Mapping[int, str] = field(default_factory=dict)
    colours: Mapping[Rgb, int] = field(default_factory=dict)

    def name(self, index: int) -> str:
        """An index without a name keeps its number as its label, so the taxonomy still sees it."""
        return self.names.get(index, str(index))


_Decoder = Callable[[str, np.ndarray, str, _ClassMap], np.ndarray]


# --- decoding ---------------------------------------------------------------------------------

def decode_mask_png(data: bytes, origin: str) -> tuple[str, np.ndarray]:
    """The mask's mode and pixels, fully decoded: PNG only, bombs and truncation refused, the stored
    values of low-bit-depth grayscale restored."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
                stretch = _GREY_STRETCH.get(image.tile[0].args if image.tile else "", 1)
                image.load()
                pixels = np.asarray(image)
                return image.mode, pixels // stretch if stretch > 1 else pixels
    except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError and its own types on bad input
        raise InputError(MASK_UNDECODABLE, f"{origin}: cannot decode mask PNG: {type(exc).__name__}: {exc}") from exc


def _class_indices(mode: str, pixels: np.ndarray, origin: str, class_map: _ClassMap) -> np.ndarray:
    """Index masks as they are; RGB masks through the class map's colours."""
    if mode in INDEX_MODES:
        return pixels.astype(np.int32)
    if mode == "RGB" and class_map.colours:
        return _colour_indices(pixels, origin, class_map)
    if mode == "RGB":
        raise InputError(MASK_MODE_UNSUPPORTED, f"{origin}: an RGB mask needs class colours, and none are defined")
    raise InputError(MASK_MODE_UNSUPPORTED, (
        f"{origin}: mask mode {mode!r} is not palette (P), grayscale (L, 1) or RGB"))


def _colour_indices(pixels: np.ndarray, origin: str, class_map: _ClassMap) -> np.ndarray:
    """Each pixel's class index by its colour; every colour must be in the class map.

    Colours are packed into one integer and looked up by binary search in the sorted known colours,
    which is several times faster than `np.unique` over the whole mask."""
    packed = (pixels[..., 0].astype(np.uint32) << 16) | (pixels[..., 1].astype(np.uint32) << 8) | pixels[..., 2]
    by_colour = sorted(((r << 16) | (g << 8) | b, index) for (r, g, b), index in class_map.colours.items())
    known = np.array([colour for colour, _ in by_colour], dtype=np.uint32)
    position = np.searchsorted(known, packed).clip(max=len(known) - 1)
    found = known[position] == packed
    if not found.all():
        _refuse_unknown_colours(packed[~found], origin)
    return np.array([index for _, index in by_colour], dtype=np.int32)[position]


def _refuse_unknown_colours(unknown: np.ndarray, origin: str) -> None:
    """Name the colours the class map lacks, most frequent first, with their pixel counts."""
    colours, counts = np.unique(unknown, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:5]
    listed = ", ".join(
        f"rgb{(c >> 16, (c >> 8) & 255, c & 255)} ({n} px)" for c, n in zip(colours[order].tolist(), counts[order].tolist()))
    raise InputError(UNKNOWN_MASK_COLOUR, (
        f"{origin}: {len(colours)} colour(s) not in the class map, most frequent first: {listed}"))


def _ade_object_classes(mode: str, pixels: np.ndarray, origin: str, class_map: _ClassMap) -> np.ndarray:
    """ADE20K full-dataset `_seg.png`: class = R/10*256 + G (integer division, as ADE's own loader)."""
    if mode != "RGB":
        raise InputError(MASK_MODE_UNSUPPORTED, f"{origin}: an ADE20K `_seg.png` must be RGB, not {mode!r}")
    return (pixels[..., 0] // 10).astype(np.int32) * 256 + pixels[..., 1]


def _mask_shapes(indices: np.ndarray, class_map: _ClassMap) -> list[Shape]:
    """One mask shape per value present, in ascending value order."""
    return [
        Shape(class_map.name(value), "mask", mask=BoxMask.from_array(indices == value))
        for value in np.unique(indices).tolist()
    ]


def _read_mask(source: BatchSource, name: str, image: ImageLookup, decode: _Decoder, class_map: _ClassMap) -> AnnotatedImage:
    """One mask file as the annotation of its image; any problem with it is an error on that image."""
    origin = source.origin(name)
    try:
        mode, pixels = decode_mask_png(source.read(name), origin)
        indices = decode(mode, pixels, origin, class_map)
    except InputError as exc:
        return AnnotatedImage(image.file_name, 0, 0, error=exc)
    height, width = indices.shape
    return AnnotatedImage(image.file_name, width, height, shapes=_mask_shapes(indices, class_map), image_error=image.error)


def _found(lookup: ImageLookup) -> list[str]:
    """A lookup as detection's evidence: the image, if the batch holds it."""
    return [lookup.file_name] if lookup.found else []


# --- layouts ----------------------------------------------------------------------------------

def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def _split_at(name: str, folder: str) -> tuple[str, str] | None:
    """(root, path below it without `.png`) for a PNG under the deepest directory named `folder`."""
    if not name.lower().endswith(".png"):
        return None
    parts = name[: -len(".png")].split("/")
    directories = parts[:-1]
    if folder not in directories:
        return None
    at = len(directories) - 1 - directories[::-1].index(folder)
    return "/".join(parts[:at]), "/".join(parts[at + 1:])


def _masks_under(names: Sequence[str], folder: str) -> dict[str, tuple[str, str]]:
    """Mask name -> (root, path below `folder`) for every PNG under a directory named `folder`."""
    return {name: parts for name in names if (parts := _split_at(name, folder)) is not None}


def _claim(names: Sequence[str], folder: str, class_map_files: tuple[str, ...]) -> list[str]:
    """The masks under `folder` plus the class-map files beside those folders, so ingest knows they were used."""
    masks = _masks_under(names, folder)
    beside = {_join(root, file) for root, _ in masks.values() for file in class_map_files}
    return sorted([*masks, *beside.intersection(names)])


# --- PASCAL VOC -------------------------------------------------------------------------------

def voc_colour(index: int) -> Rgb:
    """The VOC palette colour of an index: its bits spread over R, G and B from the high bit down."""
    r = g = b = 0
    for shift in range(7, -1, -1):
        r |= (index & 1) << shift
        g |= ((index >> 1) & 1) << shift
        b |= ((index >> 2) & 1) << shift
        index >>= 3
    return r, g, b


def _with_void(names: dict[int, str], colours: dict[Rgb, int]) -> _ClassMap:
    """Add VOC's 255 boundary value unless the label map already names index 255."""
    if VOID_INDEX not in names:
        names[VOID_INDEX] = "void"
        colours.setdefault(VOID_COLOUR, VOID_INDEX)
    return _ClassMap(names, colours)


_VOC_DEFAULT = _with_void(dict(enumerate(VOC_CLASSES)), {voc_colour(i): i for i in range(len(VOC_CLASSES))})


def _parse_labelmap(data: bytes, origin: str) -> _ClassMap:
    """A CVAT / Datumaro `labelmap.txt`: `name:r,g,b:parts:actions` lines, index = line order."""
    try:
        lines = data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(CLASS_MAP_INVALID, f"{origin}: not UTF-8 text: {exc}") from exc
    names: dict[int, str] = {}
    colours: dict[Rgb, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.strip().startswith("#"):
            continue
        name, colour = _labelmap_line(line.strip(), f"{origin}: line {number}")
        if name in names.values():
            raise InputError(CLASS_MAP_INVALID, f"{origin}: line {number}: label {name!r} is defined twice")
        if colour is not None and colour in colours:
            raise InputError(CLASS_MAP_INVALID, f"{origin}: line {number}: colour {colour} is used twice")
        names[len(names)] = name
        if colour is not None:
            colours[colour] = len(names) - 1
    if not names:
        raise InputError(CLASS_MAP_INVALID, f"{origin}: defines no labels")
    return _with_void(names, colours or {voc_colour(index): index for index in names})


def _labelmap_line(line: str, where: str) -> tuple[str, Rgb | None]:
    """The name and optional colour of one `name:r,g,b:parts:actions` line (parts and actions unused)."""
    fields = line.split(":")
    if len(fields) != 4 or not fields[0]:
        raise InputError(CLASS_MAP_INVALID, f"{where}: expected `name:r,g,b:parts:actions`, got {line!r}")
    if not fields[1]:
        return fields[0], None
    match = _LABELMAP_COLOUR.fullmatch(fields[1])
    if match is None or any(int(c) > 255 for c in match.groups()):
        raise InputError(CLASS_MAP_INVALID, f"{where}: colour {fields[1]!r} is not `r,g,b` with values 0..255")
    r, g, b = (int(c) for c in match.groups())
    return fields[0], (r, g, b)


def _voc_files(names: Sequence[str], head: Callable[[str], bytes]) -> list[str]:
    """`SegmentationClass/*.png` and the `labelmap.txt` beside each such folder; names alone decide."""
    return _claim(names, "SegmentationClass", (VOC_LABELMAP,))


# What VOC exports write beside SegmentationClass/ that the reader does not read, by folder.
VOC_COMPANIONS = {
    "SegmentationObject": "VOC instance masks: segpipe reads SegmentationClass",
    "SegmentationClassVisualization": "labelme2voc's overlay of a class mask on its image: segpipe reads SegmentationClass",
    "SegmentationObjectVisualization": "labelme2voc's overlay of an instance mask on its image: segpipe reads "
                                       "SegmentationClass",
}


def _voc_companions(names: Sequence[str], files: Sequence[str]) -> dict[str, str]:
    """The files of VOC_COMPANIONS' folders beside a SegmentationClass folder the reader reads."""
    roots = {root for root, _ in _masks_under(files, "SegmentationClass").values()}
    found = {}
    for name in names:
        parts = name.split("/")
        for at, folder in enumerate(parts[:-1]):
            if folder in VOC_COMPANIONS and "/".join(parts[:at]) in roots:
                found[name] = VOC_COMPANIONS[folder]
    return found


def _voc_image(index: ImageIndex, root: str, stem: str, where: str) -> ImageLookup:
    return index.find(f"{stem}.jpg", where, base=_join(root, "JPEGImages"))


def _voc_images_named(name: str, head: Callable[[str], bytes], index: ImageIndex, images_dir: str) -> list[str]:
    parts = _split_at(name, "SegmentationClass")
    return _found(_voc_image(index.without([name]), *parts, name)) if parts else []


def _read_voc(source: BatchSource, files: list[str], options: ReaderOptions) -> Iterator[AnnotatedImage]:
    """One AnnotatedImage per class mask; label maps are all parsed (or refused) before the first image."""
    masks = _masks_under(files, "SegmentationClass")
    class_maps = {root: _voc_class_map(source, _join(root, VOC_LABELMAP), files) for root, _ in masks.values()}
    index = options.image_index(source, files)
    for name, (root, stem) in masks.items():
        image = _voc_image(index, root, stem, source.origin(name))
        yield _read_mask(source, name, image, _class_indices, class_maps[root])


def _voc_class_map(source: BatchSource, labelmap: str, files: list[str]) -> _ClassMap:
    if labelmap not in files:
        return _VOC_DEFAULT
    return _parse_labelmap(source.read(labelmap), source.origin(labelmap))


# --- ADE20K -----------------------------------------------------------------------------------

ADE_FULL_SUFFIX = "_seg.png"
# Masks the full dataset keeps beside `<stem>_seg.png`: parts (every release) and, in the 2020
# layout, one PNG per object in the folder `<stem>/`.
_ADE_PART = re.compile(r"(?P<stem>.+)_parts_[0-9]+\.png")
_ADE_INSTANCE = re.compile(r"(?P<stem>.+)/instance_[0-9]+_[^/]+\.png")


def _ade_pair(name: str) -> tuple[str, str, _Decoder] | None:
    """The image (its folder and its path below it) and decoder of an ADE20K mask: full-dataset
    `_seg.png` beside its `.jpg`, or SceneParsing `annotations/<split>/` for `images/<split>/`."""
    if name.endswith(ADE_FULL_SUFFIX):
        return "", name[: -len(ADE_FULL_SUFFIX)] + ".jpg", _ade_object_classes
    parts = _split_at(name, "annotations")
    if parts is not None and "/" in parts[1]:
        return _join(parts[0], "images"), f"{parts[1]}.jpg", _class_indices
    return None


def _ade_files(names: Sequence[str], head: Callable[[str], bytes]) -> list[str]:
    """`*_seg.png` anywhere and `annotations/<split>/*.png`; ADE20K has no class-map file that is read.
    A folder with a JSON of its name beside it (`annotations/panoptic_val2017/` next to
    `annotations/panoptic_val2017.json`) holds COCO panoptic PNGs, not an ADE20K split."""
    json_folders = {name[: -len(".json")] for name in names if name.endswith(".json")}
    return sorted(
        name for name in names
        if _ade_pair(name) is not None and posixpath.dirname(name) not in json_folders
    )


def _ade_images_named(name: str, head: Callable[[str], bytes], index: ImageIndex, images_dir: str) -> list[str]:
    pair = _ade_pair(name)
    return _found(index.without([name]).find(pair[1], name, base=pair[0])) if pair else []


def _ade_companions(names: Sequence[str], files: Sequence[str]) -> dict[str, str]:
    """The part and instance masks of each `_seg.png` the reader reads."""
    stems = {name[: -len(ADE_FULL_SUFFIX)] for name in files if name.endswith(ADE_FULL_SUFFIX)}
    found = {}
    for name in names:
        if (part := _ADE_PART.fullmatch(name)) and part["stem"] in stems:
            found[name] = f"ADE20K part masks: segpipe reads the object classes of {part['stem']}{ADE_FULL_SUFFIX}"
        elif (instance := _ADE_INSTANCE.fullmatch(name)) and instance["stem"] in stems:
            found[name] = (f"ADE20K instance mask of one object: segpipe reads the object classes of "
                           f"{instance['stem']}{ADE_FULL_SUFFIX}")
    return found


def _read_ade(source: BatchSource, files: list[str], options: ReaderOptions) -> Iterator[AnnotatedImage]:
    """One AnnotatedImage per mask; labels are class numbers as strings."""
    index = options.image_index(source, files)
    for name in files:
        pair = _ade_pair(name)
        if pair is not None:
            folder, image, decode = pair
            yield _read_mask(source, name, index.find(image, source.origin(name), base=folder), decode, _ClassMap())


# --- images/ + masks/ folders -----------------------------------------------------------------

def _parse_class_map_json(data: bytes, origin: str) -> _ClassMap:
    """Datumaro's dataset_meta.json schema (see the module docstring), strictly validated."""
    doc = load_json(data, origin)
    if not isinstance(doc, dict):
        raise InputError(CLASS_MAP_INVALID, f"{origin}: the class map is not a JSON object")
    names = _label_names(doc, origin)
    if not names:
        raise InputError(CLASS_MAP_INVALID, f"{origin}: neither `labels` nor `label_map` names any class")
    return _ClassMap(names, _label_colours(doc, origin))


def _label_names(doc: dict[str, Any], origin: str) -> dict[int, str]:
    """Names by position in `labels`, then by key in `label_map`; the two must agree."""
    labels, label_map = doc.get("labels", []), doc.get("label_map", {})
    if not isinstance(labels, list) or not all(isinstance(n, str) and n for n in labels):
        raise InputError(CLASS_MAP_INVALID, f"{origin}: `labels` is not a list of non-empty names")
    if not isinstance(label_map, dict) or not all(isinstance(n, str) and n for n in label_map.values()):
        raise InputError(CLASS_MAP_INVALID, f"{origin}: `label_map` is not an object of index -> non-empty name")
    names = dict(enumerate(labels))
    for key, name in label_map.items():
        if not _INDEX_KEY.fullmatch(key):
            raise InputError(CLASS_MAP_INVALID, f"{origin}: `label_map` key {key!r} is not a decimal index")
        if names.setdefault(int(key), name) != name:
            raise InputError(CLASS_MAP_INVALID, (
                f"{origin}: index {key} is {name!r} in `label_map` but {names[int(key)]!r} in `labels`"))
    return names


def _label_colours(doc: dict[str, Any], origin: str) -> dict[Rgb, int]:
    """Colour -> index from `segmentation_colors`, aligned with the entries of `label_map`."""
    colours_doc = doc.get("segmentation_colors")
    if colours_doc is None:
        return {}
    keys = list(doc.get("label_map", {}))
    if not isinstance(colours_doc, list) or len(colours_doc) != len(keys):
        raise InputError(CLASS_MAP_INVALID, (
            f"{origin}: `segmentation_colors` must hold one [r, g, b] per `label_map` entry ({len(keys)})"))
    colours: dict[Rgb, int] = {}
    for key, colour in zip(keys, colours_doc, strict=True):
        if not _is_rgb(colour):
            raise InputError(CLASS_MAP_INVALID, f"{origin}: colour {colour!r} of index {key} is not [r, g, b] in 0..255")
        if tuple(colour) in colours:
            raise InputError(CLASS_MAP_INVALID, f"{origin}: colour {colour} is given to two classes")
        colours[(colour[0], colour[1], colour[2])] = int(key)
    return colours


def _is_rgb(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 3
            and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value))


def _folder_files(names: Sequence[str], head: Callable[[str], bytes]) -> list[str]:
    """`masks/**/*.png` and the class map beside each masks folder; names alone decide."""
    return _claim(names, "masks", FOLDER_CLASS_MAPS)


def _folder_image(index: ImageIndex, root: str, path: str, where: str) -> ImageLookup:
    """The image a mask annotates: `images/<path>` with any PNG or JPEG extension, `.jpg` when none is found."""
    return index.find(path, where, base=_join(root, "images"), default_suffix=".jpg", any_suffix=True)


def _folder_images_named(name: str, head: Callable[[str], bytes], index: ImageIndex, images_dir: str) -> list[str]:
    parts = _split_at(name, "masks")
    return _found(_folder_image(index.without([name]), *parts, name)) if parts else []


def _read_folders(source: BatchSource, files: list[str], options: ReaderOptions) -> Iterator[AnnotatedImage]:
    """One AnnotatedImage per mask; every root's class map is parsed (or refused) before the first image."""
    masks = _masks_under(files, "masks")
    class_maps = {root: _folder_class_map(source, root, files) for root, _ in masks.values()}
    index = options.image_index(source, files)
    for name, (root, path) in masks.items():
        image = _folder_image(index, root, path, source.origin(name))
        yield _read_mask(source, name, image, _class_indices, class_maps[root])


def _folder_class_map(source: BatchSource, root: str, files: list[str]) -> _ClassMap:
    """The one class map beside `root/masks`: none or two of them is a batch-level error."""
    found = [_join(root, file) for file in FOLDER_CLASS_MAPS if _join(root, file) in files]
    where = source.origin(_join(root, "masks"))
    if not found:
        raise InputError(CLASS_MAP_MISSING, f"{where}: no {' or '.join(FOLDER_CLASS_MAPS)} beside the masks folder")
    if len(found) > 1:
        raise InputError(CLASS_MAP_AMBIGUOUS, f"{where}: both {' and '.join(found)} are beside the masks folder")
    return _parse_class_map_json(source.read(found[0]), source.origin(found[0]))


VOC_SEGMENTATION = FormatReader(
    name="voc_segmentation",
    accepts=(
        "PASCAL VOC class masks `SegmentationClass/<stem>.png` (palette, grayscale or RGB) for `JPEGImages/<stem>.jpg`, "
        "with an optional CVAT/Datumaro `labelmap.txt`"
    ),
    annotation_files=_voc_files,
    read=_read_voc,
    images_named=_voc_images_named,
    companions=_voc_companions,
)

ADE20K = FormatReader(
    name="ade20k",
    accepts=(
        "ADE20K masks: full-dataset `<stem>_seg.png` beside `<stem>.jpg`, or SceneParsing "
        "`annotations/<split>/<stem>.png` for `images/<split>/<stem>.jpg`"
    ),
    annotation_files=_ade_files,
    read=_read_ade,
    images_named=_ade_images_named,
    companions=_ade_companions,
)

IMAGE_MASK_FOLDERS = FormatReader(
    name="image_mask_folders",
    accepts=(
        "`images/<name>.<jpg|jpeg|png>` with `masks/<name>.png` (palette, grayscale or RGB) and one class map, "
        "`class_map.json` or Datumaro's `dataset_meta.json`"
    ),
    annotation_files=_folder_files,
    read=_read_folders,
    images_named=_folder_images_named,
)
