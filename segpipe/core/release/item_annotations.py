"""The release's per-image annotation work, done ahead of the writers on several processes.

Tracing a mask's YOLO outlines and drawing the COCO annotations of its shapes are most of the
CPU a release spends per image, and each depends on its image alone. Both writers remember their
result under a content-derived key (writers/yolo.py, writers/coco.py); before the writers run,
`remember_item_annotations` computes whatever is not remembered yet on `workers` processes (this
one and spawned helpers) and remembers it, so the writers, one item after the other in archive order, only read it back.
What a worker computes is exactly what the writer would (the same functions), so the release is
the same whatever the number of workers. At most a few tasks per helper are in flight: memory does
not grow with the release.
"""

import itertools
import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import polars as pl

from segpipe.core.release.coco_annotations import shape_annotations
from segpipe.core.release.writers.coco import shapes_memo, slices_by_mask
from segpipe.core.release.writers.yolo import trace_outlines
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.taxonomy.model import Taxonomy
from segpipe.store import keys as store_keys

IN_FLIGHT_PER_WORKER = 4
FEW_TASKS = 64  # fewer are computed here: a helper's start (its imports, about 2.5 CPU s) outweighs them

Task = tuple[str | None, bytes | None, str | None, pl.DataFrame | None, int, int]  # memo, mask, memo, shapes, w, h


def remember_item_annotations(items: pl.DataFrame, shapes: pl.DataFrame | None, taxonomy: Taxonomy,
                              store: ArtefactStore, workers: int) -> int:
    """Remember the YOLO outlines and COCO shape annotations of `items` (release_items rows) that
    the store does not hold yet, computed by this process and `workers` - 1 helper processes (every
    `workers`-th item here: a helper costs the memory of its imports); how many items needed any.
    With one worker nothing is done here: the writers compute as they go."""
    if workers < 2:
        return 0
    shapes_of = {} if shapes is None else slices_by_mask(shapes)
    tasks = _tasks(items, shapes_of, taxonomy, store)
    first = list(itertools.islice(tasks, FEW_TASKS))
    if len(first) < FEW_TASKS:  # a nightly's new images: starting a helper would cost more than it saves
        return sum(_remember(task, _compute(task, taxonomy), store) for task in first)
    done = 0
    with ProcessPoolExecutor(workers - 1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: deque[tuple[Task, Future]] = deque()
        for n, task in enumerate(itertools.chain(first, tasks)):
            if n % workers == 0:
                done += _remember(task, _compute(task, taxonomy), store)
            else:
                pending.append((task, pool.submit(_compute, task, taxonomy)))
            while len(pending) > (workers - 1) * IN_FLIGHT_PER_WORKER or (pending and pending[0][1].done()):
                task, future = pending.popleft()
                done += _remember(task, future.result(), store)
        for task, future in pending:
            done += _remember(task, future.result(), store)
    return done


def _tasks(items: pl.DataFrame, shapes_of: dict[str, pl.DataFrame], taxonomy: Taxonomy,
           store: ArtefactStore) -> Iterator[Task]:
    """One task per released mask whose outlines or shape annotations are not remembered."""
    seen: set[str] = set()
    for mask_key, width, height in items.select("mask_key", "width", "height").iter_rows():
        if mask_key in seen:
            continue
        seen.add(mask_key)
        outlines = store_keys.yolo_outlines_memo(mask_key, taxonomy.ignore_index)
        outlines = None if store.exists(outlines) else outlines
        drawn = shapes_of.get(mask_key)
        annotations = None if drawn is None else shapes_memo(mask_key, drawn, taxonomy, width, height)
        if annotations is not None and store.exists(annotations):
            annotations = None
        if outlines is not None or annotations is not None:
            yield (outlines, None if outlines is None else store.read_png(mask_key),
                   annotations, None if annotations is None else drawn, width, height)


def _compute(task: Task, taxonomy: Taxonomy) -> tuple[Any, Any]:
    """In a worker: the outlines' and the annotations' JSON values (None where not asked for)."""
    _, mask_png, _, drawn, width, height = task
    outlines = None if mask_png is None else trace_outlines(mask_png, taxonomy.ignore_index).to_json()
    annotations = None if drawn is None else shape_annotations(drawn, taxonomy, width, height)
    return outlines, annotations


def _remember(task: Task, computed: tuple[Any, Any], store: ArtefactStore) -> int:
    outlines_memo, _, annotations_memo, _, _, _ = task
    outlines, annotations = computed
    if outlines_memo is not None:
        store.remember(outlines_memo, outlines)
    if annotations_memo is not None:
        store.remember(annotations_memo, annotations)
    return 1
