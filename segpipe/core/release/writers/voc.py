"""voc/: the release in PASCAL VOC's segmentation layout, as Datumaro's `voc_segmentation` reads it."""

from collections.abc import Iterator
from functools import partial

from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.core.release import layout
from segpipe.core.release.writers.cityscapes import image_list
from segpipe.core.release.writers.writer import Deferred, Member, ReleaseContext, ReleaseItem, ReleaseWriter
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.shared.png import encode_mask_png
from segpipe.core.taxonomy.model import Taxonomy

VOC_SPLITS = ("train", "val", "test")  # and trainval, train and val together
VOID_COLOUR = (224, 224, 192)  # VOC's colour of its ignore value 255


class Voc(ReleaseWriter):
    """voc/SegmentationClass/<stem>.png: palette PNGs of class ids coloured as the taxonomy says (as
    VOC's own: indices for PIL, colours for the tools that unpaint them); voc/ImageSets/Segmentation/
    {train,val,test,trainval}.txt listing the stems of each split; voc/labelmap.txt, the classes in id
    order with their colours and `void` for the ignore index last (`name:r,g,b::`, Datumaro's
    format); voc/images.csv naming each image's place, JPEGImages/<stem>.<suffix>, filled at fetch."""

    name = "voc"
    export = True

    def __init__(self, release: ReleaseContext) -> None:
        super().__init__(release)
        self.palette = voc_palette(release.taxonomy)
        self.stems: dict[str, list[str]] = {split: [] for split in VOC_SPLITS}
        self.images: list[tuple[str, str]] = []

    def item_members(self, item: ReleaseItem) -> Iterator[Member]:
        row = item.row
        self.stems.setdefault(row["split"], []).append(item.stem)
        self.images.append((layout.VOC_IMAGE.format(item.stem, item.image_path.rsplit(".", 1)[-1]), item.image_path))
        yield Member(layout.VOC_MASK.format(item.stem),
                     Deferred(partial(_painted, self.release.store, row["mask_key"], self.palette)), compress=False,
                     source=f"voc mask:{row['mask_key']}:{self.palette}")

    def closing_members(self) -> Iterator[Member]:
        lists = {split: sorted(stems) for split, stems in self.stems.items()}
        lists["trainval"] = sorted(lists["train"] + lists["val"])
        for split, stems in lists.items():
            yield Member(layout.VOC_LIST.format(split), "".join(f"{stem}\n" for stem in stems).encode())
        yield Member(layout.VOC_LABELMAP, labelmap(self.release.taxonomy).encode())
        yield Member(layout.EXPORT_IMAGES.format(self.name), image_list(self.images))


def voc_palette(taxonomy: Taxonomy) -> list[tuple[int, int, int]]:
    palette = [(0, 0, 0)] * 256
    for c in taxonomy.classes:
        palette[c.id] = tuple(c.color)
    palette[taxonomy.ignore_index] = VOID_COLOUR
    return palette


def labelmap(taxonomy: Taxonomy) -> str:
    """labelmap.txt: `name:r,g,b::` per class in id order, then `void` in the ignore index's colour, so
    every colour a mask holds is named."""
    rows = [(c.name, c.color) for c in sorted(taxonomy.classes, key=lambda c: c.id)] + [("void", VOID_COLOUR)]
    return "# label:color_rgb:parts:actions\n" + "".join(f"{name}:{r},{g},{b}::\n" for name, (r, g, b) in rows)


def _painted(store: ArtefactStore, mask_key: str, palette: list[tuple[int, int, int]]) -> bytes:
    return encode_mask_png(decode_mask_png(store.read_png(mask_key)), palette)
