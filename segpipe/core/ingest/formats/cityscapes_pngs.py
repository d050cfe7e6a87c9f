"""Cityscapes label PNGs: `*_gtFine_instanceIds.png` or `*_gtFine_labelIds.png`, one per image.

These are what cityscapesScripts renders from the polygons (json2instanceImg, json2labelImg) and
what Cityscapes ships beside them; teams that keep only the PNGs, or export Cityscapes from CVAT
or Datumaro, deliver these. `gtFine/<split>/<city>/<stem>_gtFine_<kind>.png` annotates
`leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png`, or the flat `<stem>_leftImg8bit.png` beside
it, then one of that name anywhere in the batch, looked up exactly as for the polygon JSON
(cityscapes.find_image, image_lookup); `gtCoarse` works the same way. An image not found keeps
the PNG's shapes and gets `image_error`, so check-source can lint the labels without the images.

Which file is read, per image: `_instanceIds.png` when it exists (classes and instances), else
`_labelIds.png` (classes only). `_labelTrainIds.png` and `_color.png` of the same image are
claimed but not read, so none of them is taken for an image; an image with only those is not
claimed at all (trainIds lose the label, colours repeat across labels).

Pixel values. labelIds: the Cityscapes label id. instanceIds (16-bit): a value v >= 1000 is
instance v % 1000 of label v // 1000; below 1000 it is the label id itself, which for a label
with instances means a crowd its annotators could not separate (json2instanceImg paints
`cargroup` with 26). Shapes, one "mask" per value present, ascending, never overlapping: the
raw label is the label's name from cityscapesScripts' labels.py, as the polygon reader emits
it, so one taxonomy serves both; a crowd is `<name>group` with attributes `group` = "1" and
`base_label`, again as the polygon reader marks it. A value labels.py does not name keeps its
number as its label. Label 0 (`unlabeled`) is a shape like any other; the taxonomy maps it.

When the batch holds `*_polygons.json`, the polygons are the source and this reader claims
nothing (a full gtFine download holds both; the polygon reader lists the PNGs as unused); delete
the JSON files to read the PNGs instead.
A PNG that cannot be decoded, or is not 8-bit or 16-bit grayscale, is an error on its image.
"""

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import MASK_MODE_UNSUPPORTED
from segpipe.core.ingest.formats.annotation import AnnotatedImage, BoxMask, Shape
from segpipe.core.ingest.formats.cityscapes import GT_PNG, find_image
from segpipe.core.ingest.formats.cityscapes import SUFFIX as POLYGONS_SUFFIX
from segpipe.core.ingest.formats.mask_folders import decode_mask_png
from segpipe.core.ingest.formats.reader import FormatReader, ReaderOptions
from segpipe.core.ingest.image_lookup import ImageIndex, ImageLookup
from segpipe.core.ingest.sources.source import BatchSource

# cityscapesScripts 2.3.0 helpers/labels.py: id -> name for ids 0..33 (license plate, -1, is never a pixel).
LABEL_NAMES: dict[int, str] = {
    0: "unlabeled", 1: "ego vehicle", 2: "rectification border", 3: "out of roi", 4: "static", 5: "dynamic",
    6: "ground", 7: "road", 8: "sidewalk", 9: "parking", 10: "rail track", 11: "building", 12: "wall",
    13: "fence", 14: "guard rail", 15: "bridge", 16: "tunnel", 17: "pole", 18: "polegroup",
    19: "traffic light", 20: "traffic sign", 21: "vegetation", 22: "terrain", 23: "sky", 24: "person",
    25: "rider", 26: "car", 27: "truck", 28: "bus", 29: "caravan", 30: "trailer", 31: "train",
    32: "motorcycle", 33: "bicycle",
}
HAS_INSTANCES: frozenset[int] = frozenset(range(24, 34))
INSTANCE_FACTOR = 1000
READ_KINDS = ("instanceIds", "labelIds")  # in order of preference
GREY_MODES = ("L", "I;16", "I;16B", "I")


def _parts(name: str) -> tuple[str, str] | None:
    """(path up to `_gtFine`, kind) for a gt PNG; None for any other file."""
    match = GT_PNG.fullmatch(name)
    return (match["stem"], match["kind"]) if match else None


def _png_files(names: Sequence[str], head: Callable[[str], bytes]) -> list[str]:
    """Every gt PNG of each image that has an instanceIds or labelIds PNG, unless polygons are present."""
    if any(name.endswith(POLYGONS_SUFFIX) for name in names):
        return []
    parts = {name: found for name in names if (found := _parts(name)) is not None}
    readable = {stem for stem, kind in parts.values() if kind in READ_KINDS}
    return sorted(name for name, (stem, _) in parts.items() if stem in readable)


def _images_named(name: str, head: Callable[[str], bytes], index: ImageIndex, images_dir: str) -> list[str]:
    """The image a PNG that is read pairs with by its name, if the batch holds it: detection's evidence."""
    parts = _parts(name)
    if parts is None or parts[1] not in READ_KINDS:
        return []
    lookup = find_image(name, f"_{parts[1]}.png", index, name)
    return [lookup.file_name] if lookup.found else []


def _read_pngs(source: BatchSource, files: list[str], options: ReaderOptions) -> Iterator[AnnotatedImage]:
    """One AnnotatedImage per image, from its preferred PNG."""
    by_stem: dict[str, dict[str, str]] = {}
    for name in files:
        stem, kind = _parts(name) or ("", "")
        by_stem.setdefault(stem, {})[kind] = name
    index = options.image_index(source, files)
    for stem in sorted(by_stem):
        kind = next(kind for kind in READ_KINDS if kind in by_stem[stem])
        name = by_stem[stem][kind]
        lookup = find_image(name, f"_{kind}.png", index, source.origin(name))
        yield _read_png(source, name, lookup, kind == "instanceIds")


def _read_png(source: BatchSource, name: str, image: ImageLookup, instances: bool) -> AnnotatedImage:
    """One PNG as the annotation of its image; any problem with it is an error on that image, and an
    image not found is its `image_error`, the PNG's shapes still read."""
    origin, file_name = source.origin(name), image.file_name
    try:
        mode, values = decode_mask_png(source.read(name), origin)
        if mode not in GREY_MODES or values.ndim != 2:
            raise InputError(MASK_MODE_UNSUPPORTED, (
                f"{origin}: image {file_name!r}: a Cityscapes label PNG must be 8- or 16-bit grayscale, not {mode!r}"))
    except InputError as exc:
        return AnnotatedImage(file_name, 0, 0, error=exc)
    height, width = values.shape
    return AnnotatedImage(file_name, width, height, shapes=_shapes(values.astype(np.int64), instances),
                          image_error=image.error)


def _shapes(values: np.ndarray, instances: bool) -> list[Shape]:
    """One mask per value present, in ascending value order."""
    return [_shape(value, BoxMask.from_array(values == value), instances) for value in np.unique(values).tolist()]


def _shape(value: int, mask: BoxMask | None, instances: bool) -> Shape:
    """In instanceIds, an instance (value >= 1000) or a crowd (a label with instances, below 1000);
    otherwise, and for every other label, the label itself."""
    label_id = value // INSTANCE_FACTOR if instances and value >= INSTANCE_FACTOR else value
    name = LABEL_NAMES.get(label_id, str(label_id))
    if instances and value < INSTANCE_FACTOR and label_id in HAS_INSTANCES:
        return Shape(f"{name}group", "mask", mask=mask, attributes={"group": "1", "base_label": name})
    return Shape(name, "mask", mask=mask)


CITYSCAPES_PNGS = FormatReader(
    name="cityscapes_label_pngs",
    accepts=(
        "Cityscapes label PNGs `<stem>_gtFine_instanceIds.png` (preferred) or `<stem>_gtFine_labelIds.png` under "
        "gtFine/<split>/<city>/ next to leftImg8bit/<split>/<city>/, when the batch has no `*_polygons.json`"
    ),
    annotation_files=_png_files,
    read=_read_pngs,
    images_named=_images_named,
)
