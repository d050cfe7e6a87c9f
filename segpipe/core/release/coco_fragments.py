"""coco.json's drawn-shape annotations, remembered a batch at a time as pre-serialized fragments.

coco.json is one document over every released image, so a nightly that adds 1% of images still
writes all of it. What made that cost grow with the dataset was not the writing but the reading:
each image's annotations were a memo of their own (writers/coco.py), found by hashing the image's
shapes and parsed back into Python objects, twice. A fragment holds the annotations of every
released mask of one batch, already serialized as coco.json holds them except for the two ids that
depend on the image's place in the document (the annotation's `id` and `image_id`). It is named
after the batch's stored shape table (its digest), the batch's released masks and the taxonomy, so a
build reads one object per batch and parses none of it, and a batch whose tables or released masks
changed gets a new fragment, made from its masks' memos (computed first where missing). The
document is then assembled by prefixing each stored annotation with its ids (coco_document.py),
byte for byte what serializing the annotations would give.

A fragment starts with a line naming its format and the SHA-256 of the rest; one whose hash does not
match (partly written, overwritten) is made again, never trusted.
"""

import os
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import orjson
import polars as pl

from segpipe.core.release.coco_annotations import POLYGON_SOURCES, SHAPE_COLUMNS, released_shapes
from segpipe.core.release.coco_document import annotation_tails, held_block
from segpipe.core.release.item_annotations import remember_item_annotations
from segpipe.core.release.writers.coco import class_annotations
from segpipe.core.shared.artefacts import ArtefactStore, DamagedArtefact, content_digest, sealed, unsealed
from segpipe.core.shared.batch_tables import BatchTables
from segpipe.core.taxonomy.model import Taxonomy
from segpipe.store import keys as store_keys

FRAGMENT_FORMAT = b"segpipe-coco-fragment-3"  # 2: whole-number vertices without `.0`; 3: counts, SHA-256s
READ_AHEAD = 2  # fragments read and hashed ahead of the one being shelved


@dataclass(frozen=True)
class ShapeBatch:
    """One batch's released masks drawn from shapes: where their fragment is (`key`), the masks, and
    their released shapes (released_shapes), read only if the fragment must be made."""

    key: str
    masks: tuple[str, ...]
    shapes: Callable[[], pl.DataFrame]


Placed = list[tuple[str, tuple[int, int, int, bytes]]]  # AnnotationShelf.place: each mask and where its tails are


class AnnotationShelf:
    """mask key -> its COCO annotations as coco.json holds them, minus the ids (coco_document's
    tails_block), for the masks of the fragments shelved. The fragments wait in a temporary file, not
    in memory: a release's annotations are hundreds of MB at Cityscapes scale. A fragment names each
    mask's count of annotations and the SHA-256 of its block, so the document learns both without
    reading the block (a block's own hash, not its fragment's: the same annotations give the same
    content version however a build groups masks into fragments).
    Fragments are placed (checked and copied into the file) on several threads at once, then held
    in order by the caller."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="segpipe-coco-fragments-")
        self._end = 0
        self._reserving = threading.Lock()
        # mask key -> offset and length of its tails, their count and SHA-256
        self._where: dict[str, tuple[int, int, int, bytes]] = {}
        self.fragments: set[str] = set()  # the store keys of the fragments shelved, read or made

    def shelve(self, fragment: bytes) -> bool:
        """Hold the masks of a stored fragment; False (nothing held) if it is not a whole fragment."""
        return self.hold(self.place(fragment))

    def place(self, fragment: bytes) -> Placed | None:
        """Copy a whole fragment's body into the shelf's file, and say where each of its masks' tails
        are, for hold(); None if it is not a whole fragment. Safe on several threads at once."""
        body = fragment_body(fragment)
        if body is None:
            return None
        with self._reserving:
            offset, self._end = self._end, self._end + len(body)
        os.pwrite(self._file.fileno(), body, offset)
        return [(mask_key, (offset + start, end - start, count, digest))
                for mask_key, start, end, count, digest in _mask_spans(body)]

    def hold(self, placed: Placed | None) -> bool:
        """Hold the masks place() placed; False (nothing held) for None."""
        if placed is None:
            return False
        self._where.update(placed)
        return True

    def block(self, mask_key: str) -> bytes | None:
        """The mask's annotations as coco_document's tails_block (b"" for none), or None for a mask
        no fragment holds."""
        where = self._where.get(mask_key)
        if where is None:
            return None
        offset, length, _, _ = where
        return os.pread(self._file.fileno(), length, offset) if length else b""

    def held(self, mask_key: str) -> tuple[int, bytes] | None:
        """How many annotations the mask's block holds, and its SHA-256 (hex); None for a mask no
        fragment holds."""
        where = self._where.get(mask_key)
        return None if where is None else where[2:]

    def masks(self) -> Iterable[str]:
        return self._where.keys()

    def __contains__(self, mask_key: str) -> bool:
        return mask_key in self._where

    def __len__(self) -> int:
        return len(self._where)

    def close(self) -> None:
        self._file.close()


def encode_fragment(masks: Iterable[tuple[str, Sequence[bytes]]]) -> bytes:
    """A fragment of each mask's tails: a line `<mask key> <length> <count> <sha256>` (the tails_block's
    bytes, annotations and SHA-256), then the tails_block, sealed (a header line naming the format
    and the SHA-256 of the rest)."""
    body = bytearray()
    for mask_key, tails in masks:
        block, count, digest = held_block(tails)
        body += f"{mask_key} {len(block)} {count} ".encode() + digest + b"\n" + block + b"\n"
    return sealed(FRAGMENT_FORMAT, body)


def fragment_body(fragment: bytes) -> bytes | None:
    """The body of a whole fragment, or None when its header or hash says it is not one."""
    return unsealed(FRAGMENT_FORMAT, fragment)


def _stored_fragments(batches: Iterable[ShapeBatch], store: ArtefactStore, shelf: AnnotationShelf) -> Iterator[
        tuple[ShapeBatch, Placed | None]]:
    """Each batch with its stored fragment placed on `shelf` (None: not stored whole), read, hashed and
    copied on threads a few batches ahead of the caller, who holds the one before (4 MB a batch)."""
    def read(batch: ShapeBatch) -> tuple[ShapeBatch, Placed | None]:
        return batch, (shelf.place(stored) if (stored := store.stored(batch.key)) is not None else None)

    with ThreadPoolExecutor(READ_AHEAD, thread_name_prefix="segpipe-fragments") as pool:
        pending: deque[Future] = deque()
        for batch in batches:
            pending.append(pool.submit(read, batch))
            if len(pending) > READ_AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _mask_spans(body: bytes) -> Iterator[tuple[str, int, int, int, bytes]]:
    """(mask key, start, end, count, SHA-256) of each mask's tails in a fragment's body."""
    position = 0
    while position < len(body):
        line_end = body.index(b"\n", position)
        mask_key, length, count, digest = body[position:line_end].decode().rsplit(" ", 3)
        start = line_end + 1
        yield mask_key, start, start + int(length), int(count), digest.encode()
        position = start + int(length) + 1


def shelve_shape_annotations(items: pl.DataFrame, batches: Iterable[ShapeBatch], taxonomy: Taxonomy,
                             store: ArtefactStore, workers: int) -> AnnotationShelf:
    """The shelf of every batch's fragment: read where stored whole, else made from its masks'
    annotations, which remember_item_annotations computes where not remembered (on `workers`,
    with the YOLO outlines of the `items`, release_items rows, no stored fragment holds), and
    stored for the next build."""
    shelf, missing = AnnotationShelf(), []
    for batch, placed in _stored_fragments(batches, store, shelf):
        shelf.fragments.add(batch.key)
        if not shelf.hold(placed):
            missing.append(batch)
    # the masks whose fragments were read whole had their annotations remembered when those were made
    # (a YOLO outline gone since is traced by the writer): only the others are looked up
    unshelved = items.filter(~pl.col("mask_key").is_in(list(shelf.masks())))
    memos = remember_item_annotations(unshelved, (batch.shapes() for batch in missing), taxonomy, store, workers)
    for batch in missing:
        fragment = encode_fragment(
            (mask_key, annotation_tails(_recalled(memos[mask_key], store), taxonomy.class_ids))
            for mask_key in sorted(batch.masks) if mask_key in memos)
        store.write(batch.key, fragment)
        shelf.shelve(fragment)
    return shelf


def shelve_class_annotations(items: pl.DataFrame, shelf: AnnotationShelf, taxonomy: Taxonomy,
                             store: ArtefactStore) -> None:
    """Add to `shelf` the class annotations (writers/coco.class_annotations) of every item whose mask it
    does not hold (a fused mask, one drawn from no shapes), a fragment per part group (the group
    whose parts hold the item, see build.write_release): mask keys are content-derived, so a
    fragment is named after its masks and the taxonomy's classes, and a group whose masks stayed
    the same is read back whole instead of one memo per mask."""
    groups: dict[str, set[str]] = {}
    for mask_key, group in items.select("mask_key", _part_group(items)).iter_rows():
        if mask_key not in shelf:
            groups.setdefault(group, set()).add(mask_key)
    for masks in (sorted(masks) for _, masks in sorted(groups.items())):
        key = store_keys.coco_fragment(content_digest(FRAGMENT_FORMAT, b"classes", orjson.dumps(masks),
                                                      orjson.dumps(sorted(taxonomy.class_ids))))
        shelf.fragments.add(key)
        if (stored := store.stored(key)) is not None and shelf.shelve(stored):
            continue
        fragment = encode_fragment((mask_key, annotation_tails(class_annotations(mask_key, store), taxonomy.class_ids))
                                   for mask_key in masks)
        store.write(key, fragment)
        shelf.shelve(fragment)


def _part_group(items: pl.DataFrame) -> pl.Expr:
    first_batch = pl.col("source_batches").str.split(";").list.first()
    group = pl.coalesce(pl.col("part_group"), first_batch) if "part_group" in items.columns else first_batch
    return group.alias("group")


def shape_batches(items: pl.DataFrame, consensus: pl.DataFrame, masks: BatchTables, shapes: BatchTables,
                  taxonomy: Taxonomy) -> Iterator[ShapeBatch]:
    """One ShapeBatch per batch of the pipeline's tables: its fragment is named after the digest of
    the batch's stored shape table, its released masks (with their entries and sizes) and the
    taxonomy's classes, so only a batch whose shapes or released masks changed is drawn again."""
    sizes = _sizes(items)
    drawn = (consensus.filter((pl.col("status") == "accepted") & pl.col("mask_source").is_in(POLYGON_SOURCES)
                              & pl.col("mask_key").is_in(items["mask_key"].implode()))
             .select("mask_key"))
    for batch in shapes.batches:
        entries = masks.read(batch, ("mask_key", "entry_id"))
        released = entries.join(drawn, on="mask_key").sort("mask_key")
        made_of = [(mask_key, entry_id, *sizes[mask_key]) for mask_key, entry_id in released.iter_rows()]
        key = _fragment_key(shapes.digest(batch).encode(), made_of, taxonomy)
        yield ShapeBatch(key, tuple(released["mask_key"]),
                         lambda batch=batch, entries=entries: released_shapes(
                             consensus, entries, shapes.read(batch, SHAPE_COLUMNS)))


def frame_shape_batch(items: pl.DataFrame, shapes: pl.DataFrame, taxonomy: Taxonomy) -> ShapeBatch:
    """The ShapeBatch of released shapes held as a frame (released_shapes' table), named after its rows."""
    sizes = _sizes(items)
    masks = sorted(set(shapes["mask_key"]) & set(sizes))
    rows = orjson.dumps(shapes.to_dicts())
    return ShapeBatch(_fragment_key(rows, [(mask_key, *sizes[mask_key]) for mask_key in masks], taxonomy),
                      tuple(masks), lambda: shapes)


def _fragment_key(table_digest: bytes, made_of: list, taxonomy: Taxonomy) -> str:
    classes = [sorted(taxonomy.class_ids), sorted(c.id for c in taxonomy.classes if c.trainable),
               sorted(c.id for c in taxonomy.classes if c.rasterize_boxes)]
    return store_keys.coco_fragment(content_digest(FRAGMENT_FORMAT, table_digest, orjson.dumps(made_of),
                                                   orjson.dumps(classes)))


def _sizes(items: pl.DataFrame) -> Mapping[str, tuple[int, int]]:
    return {key: (width, height) for key, width, height in items.select("mask_key", "width", "height").iter_rows()}


def _recalled(memo: str, store: ArtefactStore) -> list[dict]:
    """A mask's annotations, remembered by remember_item_annotations in this build."""
    annotations = store.recall(memo)
    if annotations is None:
        raise DamagedArtefact(f"{memo}: the COCO annotations remembered in this build are gone or damaged; "
                              "build the release again")
    return annotations
