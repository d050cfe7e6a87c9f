"""The release's per-image annotation work, done ahead of the writers on several processes.

Tracing a mask's YOLO outlines and drawing the COCO annotations of its shapes are most of the
CPU a release spends per image, and each depends on its image alone. Both writers remember their
result under a content-derived key (writers/yolo.py, writers/coco.py); before the writers run,
`remember_item_annotations` computes whatever is not remembered yet on `workers` processes (this
one and spawned helpers) and remembers it, so the writers, one item after the other in archive order, only read it back.
What a worker computes is exactly what the writer would (the same functions), so the release is
the same whatever the number of workers. At most a few tasks per helper are in flight: memory does
not grow with the release.

Most of it can be done earlier still: `remember_mask_annotations` computes a batch's share in the
batch run that drew its masks (runs a build spreads over its processes), keyed as the release
recalls it, so a release of masks drawn that way computes nothing here.
"""

import itertools
import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import numpy as np
import polars as pl

from segpipe.core.rasterize.label_masks import render_class_masks
from segpipe.core.release.coco_annotations import SHAPE_COLUMNS, POLYGON_SOURCES, released_shapes, shape_annotations
from segpipe.core.release.writers.coco import remember_shape_annotations, shapes_memo, slices_by_mask
from segpipe.core.release.writers.yolo import trace_outlines
from segpipe.core.release.yolo_labels import class_exteriors, label_digest, yolo_label_text
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.taxonomy.model import Taxonomy
from segpipe.store import keys as store_keys

IN_FLIGHT_PER_WORKER = 4
# Fewer tasks are computed here: a helper's start (its imports, about 2.5 CPU s, 4 s on a busy host)
# outweighs the half of them it would take (a task is 10-30 ms). A mask makes up to two tasks (its
# COCO shapes, its YOLO outlines), so a nightly's 50 new images are 100 tasks: at 64 they started a
# helper: 5.2 s of a 2,000-image nightly's 9.8 s release, where computing them here took 1.2 s.
FEW_TASKS = 256

Task = tuple[str | None, bytes | None, str | None, pl.DataFrame | None, int, int]  # memo, mask, memo, shapes, w, h


def remember_item_annotations(items: pl.DataFrame, shape_batches: Iterable[pl.DataFrame], taxonomy: Taxonomy,
                              store: ArtefactStore, workers: int) -> dict[str, str]:
    """Remember the COCO shape annotations of `items` (release_items rows) and, on several workers,
    their YOLO outlines, where the store does not hold them yet; mask key -> where its shape
    annotations are (coco.remember_shape_annotations). `shape_batches` are released_shapes of one
    batch each, read one after the other, so only one batch's outlines are ever in memory. The work
    is shared by this process and `workers` - 1 helper processes (every `workers`-th task here: a
    helper costs the memory of its imports); with one worker the YOLO writer traces as it goes."""
    sizes = {key: (width, height) for key, width, height in items.select("mask_key", "width", "height").iter_rows()}
    if workers < 2:
        return remember_shape_annotations(shape_batches, sizes, taxonomy, store)
    memos: dict[str, str] = {}
    tasks = itertools.chain(_shape_tasks(shape_batches, sizes, taxonomy, store, memos),
                            _outline_tasks(items, taxonomy, store))
    first = list(itertools.islice(tasks, FEW_TASKS))
    if len(first) < FEW_TASKS:  # a nightly's new images: starting a helper would cost more than it saves
        for task in first:
            _remember(task, _compute(task, taxonomy), store)
        return memos
    with ProcessPoolExecutor(workers - 1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: deque[tuple[Task, Future]] = deque()
        for n, task in enumerate(itertools.chain(first, tasks)):
            if n % workers == 0:
                _remember(task, _compute(task, taxonomy), store)
            else:
                pending.append((task, pool.submit(_compute, task, taxonomy)))
            while len(pending) > (workers - 1) * IN_FLIGHT_PER_WORKER or (pending and pending[0][1].done()):
                task, future = pending.popleft()
                _remember(task, future.result(), store)
        for task, future in pending:
            _remember(task, future.result(), store)
    return memos


def render_class_masks_ahead(label_masks: pl.DataFrame, mapped_shapes: pl.DataFrame, images: pl.DataFrame,
                             taxonomy: Taxonomy, mask_encoding: str, store: ArtefactStore) -> tuple[pl.DataFrame, int]:
    """render_class_masks in a batch stage's own run, with what the release will ship of each mask
    made here remembered ahead (its outlines from the pixels as drawn, then
    remember_mask_annotations): the batch runs of a build, and the remapping runs of a backfill,
    share the machine's processes, while the release runs on one. A mask found in the store (a
    taxonomy edit that left it as it was) has had its annotations remembered when it was made, so
    it is not looked at again. The masks, and how many annotations it computed."""
    traced: dict[str, bool] = {}

    def trace(mask_key: str, mask: np.ndarray) -> None:
        traced[mask_key] = remember_outlines(mask_key, mask, taxonomy, store)

    masks = render_class_masks(label_masks, mapped_shapes, images, taxonomy, mask_encoding, store, drawn=trace)
    made_here = masks.filter(pl.col("mask_key").is_in(list(traced)))
    return masks, sum(traced.values()) + remember_mask_annotations(made_here, mapped_shapes, taxonomy, store)


def remember_mask_annotations(masks: pl.DataFrame, mapped_shapes: pl.DataFrame, taxonomy: Taxonomy,
                              store: ArtefactStore) -> int:
    """Ahead of any release, in the batch's own run: the YOLO outlines and the COCO shape annotations
    of each class mask of `masks` (a batch's annotation_masks), remembered where the store lacks
    them under the keys remember_item_annotations looks them up by; how many it computed.
    The release releases an entry's own mask with the shapes behind it (released_shapes), so each
    mask is taken as released that way: the same shapes, the same functions, the same keys. A mask
    the release does not ship as drawn (a fused one is another mask) leaves its memos unread."""
    as_released = masks.select("mask_key").with_columns(status=pl.lit("accepted"),
                                                        mask_source=pl.lit(POLYGON_SOURCES[0]))
    shapes = released_shapes(as_released, masks, mapped_shapes.select(SHAPE_COLUMNS))
    sizes = {key: (width, height) for key, width, height in masks.select("mask_key", "width", "height").iter_rows()}
    computed = 0
    for task in itertools.chain(_shape_tasks([shapes], sizes, taxonomy, store, {}),
                                _outline_tasks(masks, taxonomy, store)):
        _remember(task, _compute(task, taxonomy), store)
        computed += 1
    return computed


def remember_outlines(mask_key: str, mask: np.ndarray, taxonomy: Taxonomy, store: ArtefactStore) -> bool:
    """The YOLO outlines of a class mask whose pixels are at hand (as its run drew them), and the
    label text made from them at the mask's size, remembered as the release recalls them where
    the store lacks them, so neither remember_mask_annotations nor the release reads the mask
    back or formats its label; whether it traced them. The PNG is lossless: tracing its pixels is
    tracing it."""
    height, width = mask.shape
    outlines_memo = store_keys.yolo_outlines_memo(mask_key, taxonomy.ignore_index)
    label_memo = store_keys.yolo_label_memo(mask_key, label_digest(taxonomy, width, height))
    if store.exists(outlines_memo) and store.exists(label_memo):
        return False
    outlines = class_exteriors(mask, taxonomy.ignore_index)
    store.remember(outlines_memo, outlines.to_json())
    store.remember(label_memo, yolo_label_text(outlines, taxonomy, width, height))
    return True


def _shape_tasks(shape_batches: Iterable[pl.DataFrame], sizes: Mapping[str, tuple[int, int]], taxonomy: Taxonomy,
                 store: ArtefactStore, memos: dict[str, str]) -> Iterator[Task]:
    """One task per released mask drawn from shapes whose annotations are not remembered (or are
    damaged); `memos` gains every such mask's memo key."""
    for shapes in shape_batches:
        for mask_key, drawn in slices_by_mask(shapes).items():
            if mask_key not in sizes:
                continue
            memos[mask_key] = memo = shapes_memo(mask_key, drawn, taxonomy, *sizes[mask_key])
            if store.recall(memo) is None:
                yield None, None, memo, drawn, *sizes[mask_key]


def _outline_tasks(items: pl.DataFrame, taxonomy: Taxonomy, store: ArtefactStore) -> Iterator[Task]:
    """One task per released mask whose YOLO outlines are not remembered."""
    seen: set[str] = set()
    for mask_key, width, height in items.select("mask_key", "width", "height").iter_rows():
        if mask_key in seen:
            continue
        seen.add(mask_key)
        outlines = store_keys.yolo_outlines_memo(mask_key, taxonomy.ignore_index)
        if not store.exists(outlines):
            yield outlines, store.read_png(mask_key), None, None, width, height
def _compute(task: Task, taxonomy: Taxonomy) -> tuple[Any, Any]:
    """In a worker: the outlines' and the annotations' JSON values (None where not asked for)."""
    _, mask_png, _, drawn, width, height = task
    outlines = None if mask_png is None else trace_outlines(mask_png, taxonomy.ignore_index).to_json()
    annotations = None if drawn is None else shape_annotations(drawn, taxonomy, width, height)
    return outlines, annotations


def _remember(task: Task, computed: tuple[Any, Any], store: ArtefactStore) -> None:
    outlines_memo, _, annotations_memo, _, _, _ = task
    outlines, annotations = computed
    if outlines_memo is not None:
        store.remember(outlines_memo, outlines)
    if annotations_memo is not None:
        store.remember(annotations_memo, annotations)
