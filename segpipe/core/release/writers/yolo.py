"""labels/ and yolo/data.yaml: the release as an Ultralytics YOLO segmentation dataset."""

from collections.abc import Iterator
from functools import partial

from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.core.release import layout
from segpipe.core.release.writers.writer import Deferred, Member, ReleaseItem, ReleaseWriter
from segpipe.core.release.yolo_labels import (
    ClassOutlines,
    class_exteriors,
    label_digest,
    yolo_class_index,
    yolo_data_yaml,
    yolo_label_text,
)
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.taxonomy.model import Taxonomy
from segpipe.store import keys as store_keys


class Yolo(ReleaseWriter):
    """labels/<split>/<stem>.txt, one polygon per line for each region of a class (see yolo_labels),
    beside images/ where Ultralytics looks for it, and yolo/data.yaml naming the split folders and
    the classes by YOLO index. A label is made from its mask, the taxonomy's YOLO indices and the
    image's size, which name it (its `source`), and traced only when packaged."""

    name = "yolo"

    def item_members(self, item: ReleaseItem) -> Iterator[Member]:
        row, taxonomy = item.row, self.release.taxonomy
        made_from = (row["mask_key"], taxonomy.ignore_index, sorted(yolo_class_index(taxonomy).items()),
                     row["width"], row["height"])
        yield Member(layout.yolo_label(row["split"], item.stem),
                     Deferred(partial(_label, self.release.store, taxonomy, row["mask_key"], row["width"], row["height"])),
                     source=f"yolo label:{made_from}")

    def closing_members(self) -> Iterator[Member]:
        yield Member(layout.YOLO_DATA, yolo_data_yaml(self.release.taxonomy, sorted(self.release.meta["splits"])).encode())


def _label(store: ArtefactStore, taxonomy: Taxonomy, mask_key: str, width: int, height: int) -> bytes:
    """The label as the batch run that drew the mask remembered it (item_annotations), else made
    from the mask's outlines."""
    remembered = store.recall(store_keys.yolo_label_memo(mask_key, label_digest(taxonomy, width, height)))
    if isinstance(remembered, str):
        return remembered.encode()
    outlines = _class_outlines(mask_key, store, taxonomy.ignore_index)
    return yolo_label_text(outlines, taxonomy, width, height).encode()


def _class_outlines(mask_key: str, store: ArtefactStore, ignore_index: int) -> ClassOutlines:
    """The mask's class outlines, remembered beside the mask (its key is content-derived), so a
    release that ships the mask again does not trace it (and item_annotations traces them ahead)."""
    memo = store_keys.yolo_outlines_memo(mask_key, ignore_index)
    remembered = store.recall(memo)
    if remembered is not None:
        return ClassOutlines.from_json(remembered)
    outlines = trace_outlines(store.read_png(mask_key), ignore_index)
    store.remember(memo, outlines.to_json())
    return outlines


def trace_outlines(mask_png: bytes, ignore_index: int) -> ClassOutlines:
    return class_exteriors(decode_mask_png(mask_png), ignore_index)
