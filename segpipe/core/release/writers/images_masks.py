"""images/, masks/ and instances/: each released image with its class mask and instance mask."""

from collections.abc import Iterator

from segpipe.core.release.image_metadata import strip_metadata
from segpipe.core.release.writers.writer import Member, ReleaseItem, ReleaseWriter
from segpipe.core.shared.png import png_frame


class ImagesAndMasks(ReleaseWriter):
    """images/<split>/<stem>.<suffix>, masks/<split>/<stem>.png (8-bit class ids) and, for an image
    that has one, instances/<split>/<stem>.png (16-bit): images with their EXIF, XMP and text metadata
    left out (image_metadata), masks as stored; packaged uncompressed, since JPEG and PNG are
    compressed already."""

    name = "images_masks"

    def item_members(self, item: ReleaseItem) -> Iterator[Member]:
        row = item.row
        _check_frame(row["mask_key"], item.mask, row["width"], row["height"], 8)
        yield Member(item.image_path, strip_metadata(self.release.store.read(row["image_key"])), compress=False)
        yield Member(item.mask_path, item.mask, compress=False)
        if item.instance_path is not None:
            instances = self.release.store.read_png(row["instance_mask_key"])
            _check_frame(row["instance_mask_key"], instances, row["width"], row["height"], 16)
            yield Member(item.instance_path, instances, compress=False)


def _check_frame(key: str, png: bytes, width: int, height: int, bit_depth: int) -> None:
    """A stored mask must be the image's size: a mismatch here is a bug upstream, never shipped."""
    frame = png_frame(png)
    if frame != (width, height, bit_depth):
        raise ValueError(f"{key}: stored mask is {frame[0]}x{frame[1]} at {frame[2]} bits, "
                         f"the image is {width}x{height} and the mask should have {bit_depth} bits")
