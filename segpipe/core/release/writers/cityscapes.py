"""cityscapes/: the release in Cityscapes' layout, which mmsegmentation and many repositories read."""

import csv
import hashlib
import io
from collections.abc import Iterator
from functools import partial

import numpy as np

from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.core.release import layout
from segpipe.core.release.cityscapes_ids import cityscapes_tables
from segpipe.core.release.settings import CITY_FROM_BATCH
from segpipe.core.release.writers.writer import Deferred, Member, ReleaseContext, ReleaseItem, ReleaseWriter
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.shared.png import encode_mask_png

IMAGE_COLUMNS = ("path", "image_path")  # an export's images.csv: path in its layout, released image it is


class Cityscapes(ReleaseWriter):
    """cityscapes/gtFine/<split>/<city>/<city>_<stem>_<id>_gtFine_labelTrainIds.png for every image (class
    ids, the ignore index as 255), and _gtFine_labelIds.png too under a Cityscapes preset (cityscapes_ids),
    which cityscapesScripts' evaluation reads; cityscapes/images.csv names each image's place,
    leftImg8bit/<split>/<city>/..._leftImg8bit.<suffix>, filled from images/ at fetch. <city> is
    release.cityscapes_city: the image's first batch, or a metadata column."""

    name = "cityscapes"
    export = True

    def __init__(self, release: ReleaseContext) -> None:
        super().__init__(release)
        self.to_train, self.to_label = cityscapes_tables(release.taxonomy)
        self.images: list[tuple[str, str]] = []

    def item_members(self, item: ReleaseItem) -> Iterator[Member]:
        row, store = item.row, self.release.store
        city = _city(row, self.release.cityscapes_city)
        place = {"split": row["split"], "city": layout.cityscapes_part(city),
                 "name": layout.cityscapes_name(city, row["file_name"], row["image_id"])}
        suffix = item.image_path.rsplit(".", 1)[-1]
        self.images.append((layout.CITYSCAPES_IMAGE.format(**place, suffix=suffix), item.image_path))
        for kind, table in (("labelTrainIds", self.to_train), ("labelIds", self.to_label)):
            if table is not None:
                yield Member(layout.CITYSCAPES_LABEL.format(**place, kind=kind),
                             Deferred(partial(_relabelled, store, row["mask_key"], table)), compress=False,
                             source=f"cityscapes {kind}:{row['mask_key']}:{hashlib.sha256(table.tobytes()).hexdigest()}")

    def version_content(self) -> bytes:
        return f"{self.name}:{self.release.cityscapes_city}".encode()

    def closing_members(self) -> Iterator[Member]:
        yield Member(layout.EXPORT_IMAGES.format(self.name), image_list(self.images))


def image_list(images: list[tuple[str, str]]) -> bytes:
    """An export's images.csv: where each of its images goes, and the released image it is."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(IMAGE_COLUMNS)
    writer.writerows(sorted(images))
    return out.getvalue().encode()


def _city(row: dict, source: str) -> str:
    value = row["source_batches"].split(";")[0] if source == CITY_FROM_BATCH else row[source]
    return value or "unknown"


def _relabelled(store: ArtefactStore, mask_key: str, table: np.ndarray) -> bytes:
    return encode_mask_png(table.take(decode_mask_png(store.read_png(mask_key))))
