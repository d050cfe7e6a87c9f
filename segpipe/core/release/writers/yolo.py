"""labels/ and yolo/data.yaml: the release as an Ultralytics YOLO segmentation dataset."""

from collections.abc import Iterator

from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.core.release import layout
from segpipe.core.release.writers.writer import Member, ReleaseItem, ReleaseWriter
from segpipe.core.release.yolo_labels import class_outlines, yolo_data_yaml, yolo_label_text
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.store import keys as store_keys


class Yolo(ReleaseWriter):
    """labels/<split>/<stem>.txt, one polygon per line for each region of a class (see yolo_labels),
    beside images/ where Ultralytics looks for it, and yolo/data.yaml naming the split folders and
    the classes by YOLO index."""

    name = "yolo"

    def item_members(self, item: ReleaseItem) -> Iterator[Member]:
        row, taxonomy = item.row, self.release.taxonomy
        outlines = _class_outlines(row["mask_key"], item.mask, self.release.store, taxonomy.ignore_index)
        yield Member(layout.yolo_label(row["split"], item.stem),
                     yolo_label_text(outlines, taxonomy, row["width"], row["height"]).encode())

    def closing_members(self) -> Iterator[Member]:
        yield Member(layout.YOLO_DATA, yolo_data_yaml(self.release.taxonomy, sorted(self.release.meta["splits"])).encode())


def _class_outlines(mask_key: str, mask_bytes: bytes, store: ArtefactStore, ignore_index: int) -> dict[int, list]:
    """The mask's class outlines, remembered beside the mask (its key is content-derived), so a
    release that ships the mask again does not trace it."""
    memo = store_keys.yolo_outlines_memo(mask_key, ignore_index)
    remembered = store.recall(memo)
    if remembered is not None:
        return {value: rings for value, rings in remembered}
    outlines = class_outlines(decode_mask_png(mask_bytes), ignore_index)
    store.remember(memo, sorted(outlines.items()))
    return outlines
