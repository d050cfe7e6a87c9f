"""coco/coco.json: the released images' annotations, in the form each mask came from."""

from collections.abc import Callable, Iterable, Iterator, Mapping

import orjson
import polars as pl

from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.core.release import layout
from segpipe.core.release.coco_annotations import shape_annotations
from segpipe.core.release.coco_document import CocoDocument, annotation_tails, held_block
from segpipe.core.release.writers.writer import Member, ReleaseContext, ReleaseItem, ReleaseWriter
from segpipe.core.shared.artefacts import ArtefactStore, content_digest
from segpipe.core.shared.rle import encode_value_rles
from segpipe.core.taxonomy.model import Taxonomy
from segpipe.store import keys as store_keys


class Coco(ReleaseWriter):
    """coco/coco.json: every released image with its annotations, one per drawn shape for a mask drawn
    from polygons (see coco_annotations; read pre-serialized from the batch's fragment, see
    coco_fragments), else one RLE per class present (from the fragment of the item's group, or the
    mask's own memo when no fragment holds it). Streamed (CocoDocument): the annotations are read
    back from the shelf when the document is written, not held; the content version covers them.
    The images follow their batches' landing order (ReleaseContext.batch_order), so a new batch's
    come last and the ids before it stay."""

    name = "coco"

    def __init__(self, release: ReleaseContext) -> None:
        super().__init__(release)
        # the tails_block of each mask no fragment holds, made and held here (build_release shelves every mask)
        self.made: dict[str, bytes] = {}
        self.document = CocoDocument(release.taxonomy, release.dataset_name, self.block, release.batch_order)

    def block(self, mask_key: str) -> bytes:
        shelved = self.release.coco_annotations.block(mask_key)
        return self.made[mask_key] if shelved is None else shelved

    def item_members(self, item: ReleaseItem) -> Iterable[Member]:
        row = item.row
        held = self.release.coco_annotations.held(row["mask_key"])
        if held is None:
            found = class_annotations(row["mask_key"], self.release.store, lambda: item.mask)
            block, count, name = held_block(annotation_tails(found, self.release.taxonomy.class_ids))
            self.made[row["mask_key"]], held = block, (count, name)
        self.document.add_image(item.image_path, row["width"], row["height"], row["mask_key"], *held, item.group)
        return ()

    def version_content(self) -> bytes:
        return self.document.annotations_digest().encode()

    def closing_members(self) -> Iterator[Member]:
        yield Member(layout.COCO, lambda out: self.document.write(out, self.release.version))


def remember_shape_annotations(batches: Iterable[pl.DataFrame], sizes: Mapping[str, tuple[int, int]],
                               taxonomy: Taxonomy, store: ArtefactStore) -> dict[str, str]:
    """mask key -> where the COCO annotations of its drawn shapes are remembered, for each mask of
    `sizes` (mask key -> width, height) with shapes in `batches` (released_shapes of one batch
    each): the shapes are turned into annotations batch by batch, so only one batch's outlines are
    ever in memory; coco_fragments reads them back into the batch's fragment."""
    memos = {}
    for shapes in batches:
        for mask_key, drawn in slices_by_mask(shapes).items():
            if mask_key in sizes:
                memos[mask_key] = _shape_annotations(mask_key, drawn, taxonomy, *sizes[mask_key], store)
    return memos


def slices_by_mask(shapes: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Each mask's shapes as a zero-copy slice of the table (released_shapes sorts it by mask_key):
    grouping would copy every shape of the release once more."""
    if not shapes["mask_key"].is_sorted():
        raise ValueError("release shapes must be sorted by mask_key (see released_shapes)")
    runs = (shapes.select("mask_key").with_row_index("start")
            .group_by("mask_key").agg(pl.col("start").min(), pl.len().alias("rows")))
    return {key: shapes.slice(start, rows) for key, start, rows in runs.iter_rows()}


def class_annotations(mask_key: str, store: ArtefactStore, mask: Callable[[], bytes] | None = None) -> list[dict]:
    """COCO-Stuff style annotations of one mask, one per value present: an RLE of its pixels.
    Mask keys are content-derived, so the result is remembered beside the mask and a release
    that ships the mask again does not read it. `mask` gives its PNG when the caller holds it."""
    memo = store_keys.coco_annotations_memo(mask_key)
    remembered = store.recall(memo)
    if remembered is not None:
        return remembered
    found = encode_value_rles(decode_mask_png(store.read_png(mask_key) if mask is None else mask()))
    annotations = [{"category_id": value, **found[value]} for value in sorted(found)]
    store.remember(memo, annotations)
    return annotations


def _shape_annotations(mask_key: str, shapes: pl.DataFrame, taxonomy: Taxonomy, width: int, height: int,
                       store: ArtefactStore) -> str:
    """Where the COCO annotations of a mask's shapes are remembered, made there first if they are not."""
    memo = shapes_memo(mask_key, shapes, taxonomy, width, height)
    if store.recall(memo) is None:  # never made, or partly written: made again
        store.remember(memo, shape_annotations(shapes, taxonomy, width, height))
    return memo


def shapes_memo(mask_key: str, shapes: pl.DataFrame, taxonomy: Taxonomy, width: int, height: int) -> str:
    """Where the COCO annotations of a mask's shapes are remembered: under the mask and a digest of
    the shapes and trainable classes, so a backfill that leaves them alone does not draw them again."""
    trainable = sorted(c.id for c in taxonomy.classes if c.trainable)
    digest = content_digest(mask_key.encode(), orjson.dumps(shapes.to_dicts()), orjson.dumps([trainable, width, height]))
    return store_keys.coco_shapes_memo(mask_key, digest)
