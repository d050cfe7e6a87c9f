"""images/, masks/ and instances/: each released image with its class mask and instance mask."""

from collections.abc import Iterator
from functools import partial

from segpipe.core.release.image_metadata import strip_metadata
from segpipe.core.release.writers.writer import Deferred, Member, ReleaseItem, ReleaseWriter
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.shared.png import png_frame


class ImagesAndMasks(ReleaseWriter):
    """images/<split>/<stem>.<suffix>, masks/<split>/<stem>.png (8-bit class ids) and, for an image
    that has one, instances/<split>/<stem>.png (16-bit): images with their EXIF, XMP and text metadata
    left out (image_metadata), masks as stored; packaged uncompressed, since JPEG and PNG are
    compressed already. Each is made from one stored object, which names it (its `source`), and read
    only when packaged."""

    name = "images_masks"

    def item_members(self, item: ReleaseItem) -> Iterator[Member]:
        row, store = item.row, self.release.store
        yield Member(item.image_path, Deferred(partial(_released_image, store, row["image_key"])), compress=False,
                     source=f"image without metadata:{row['image_key']}")
        yield Member(item.mask_path, Deferred(partial(_mask, store, row["mask_key"], row["width"], row["height"], 8)),
                     compress=False, source=f"mask:{row['mask_key']}")
        if item.instance_path is not None:
            key = row["instance_mask_key"]
            yield Member(item.instance_path, Deferred(partial(_mask, store, key, row["width"], row["height"], 16)),
                         compress=False, source=f"mask:{key}")


def _released_image(store: ArtefactStore, key: str) -> bytes:
    return strip_metadata(store.read(key))


def _mask(store: ArtefactStore, key: str, width: int, height: int, bit_depth: int) -> bytes:
    """A stored mask, which must be the image's size: a mismatch here is a bug upstream, never shipped."""
    png = store.read_png(key)
    frame = png_frame(png)
    if frame != (width, height, bit_depth):
        raise ValueError(f"{key}: stored mask is {frame[0]}x{frame[1]} at {frame[2]} bits, "
                         f"the image is {width}x{height} and the mask should have {bit_depth} bits")
    return png
