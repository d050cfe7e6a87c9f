"""Pixel-level consensus between annotators, and honeypot scoring against gold.

Fusion is a per-pixel plurality vote: a pixel keeps the class most annotators chose if
that class has a unique plurality and at least `quorum` of the annotators chose it;
otherwise it becomes ignore, because a disputed pixel is worse for training than none.

Each image's outcome (fused mask, agreement, honeypot scores) is remembered in the object store
under a digest of its masks' content-derived keys and the settings, so a rerun after a taxonomy
edit decodes and fuses only the images whose masks the edit changed.
"""

from itertools import combinations

import numpy as np
import orjson
import polars as pl

from segpipe.core.artefact_keys import ArtefactStore, content_digest
from segpipe.core.png import encode_mask_png
from segpipe.core.raster import decode_mask_png
from segpipe.core.schemas import AnnotatorScoreRecord, ConsensusRecord
from segpipe.core.settings import ConsensusSettings

CLASS_VALUES = 256


def fuse_masks(masks: list[np.ndarray], quorum: float, ignore_index: int) -> np.ndarray:
    """Plurality vote over masks of one image; ignore-index votes abstain.

    Votes are counted per annotator rather than per class: votes[i] is how many annotators chose
    the class annotator i chose, so the cost grows with annotators squared, not with classes."""
    valid = [mask != ignore_index for mask in masks]
    votes = []
    for mask in masks:
        count = np.zeros(mask.shape, dtype=np.uint8)
        for other, other_valid in zip(masks, valid, strict=True):
            count += (mask == other) & other_valid
        votes.append(count)
    best = np.zeros(masks[0].shape, dtype=np.uint8)
    winner = np.full(masks[0].shape, ignore_index, dtype=np.uint8)
    for mask, count, labelled in zip(masks, votes, valid, strict=True):
        ahead = labelled & (count > best)
        best = np.where(ahead, count, best)
        winner = np.where(ahead, mask, winner)
    contested = np.zeros(masks[0].shape, dtype=bool)
    for mask, count, labelled in zip(masks, votes, valid, strict=True):
        contested |= labelled & (count == best) & (mask != winner)
    needed = max(1, int(np.ceil(quorum * len(masks))))
    return np.where((best >= needed) & ~contested, winner, np.uint8(ignore_index)).astype(np.uint8)


def confusion(a: np.ndarray, b: np.ndarray, ignore_index: int) -> np.ndarray:
    """256x256 pixel counts of (class in a, class in b) over pixels both masks label."""
    both = (a != ignore_index) & (b != ignore_index)
    pairs = a[both].astype(np.int32) * CLASS_VALUES + b[both]
    return np.bincount(pairs, minlength=CLASS_VALUES * CLASS_VALUES).reshape(CLASS_VALUES, CLASS_VALUES)


def mean_iou(a: np.ndarray, b: np.ndarray, ignore_index: int) -> float:
    """Mean IoU over the classes either mask uses, on pixels both masks label."""
    counts = confusion(a, b, ignore_index)
    intersection = np.diag(counts)
    union = counts.sum(axis=0) + counts.sum(axis=1) - intersection
    used = union > 0
    return float((intersection[used] / union[used]).mean()) if used.any() else 0.0


def pixel_accuracy(mask: np.ndarray, gold: np.ndarray, ignore_index: int) -> float:
    """Share of gold-labelled pixels the mask labels with the gold class."""
    labelled = gold != ignore_index
    if not labelled.any():
        return 0.0
    return float((mask[labelled] == gold[labelled]).mean())


def label_boundaries(mask: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another value (both sides of every edge between labels)."""
    edge = np.zeros(mask.shape, dtype=bool)
    vertical, horizontal = mask[1:] != mask[:-1], mask[:, 1:] != mask[:, :-1]
    edge[1:] |= vertical
    edge[:-1] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    return edge


def _dilate(binary: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2r+1)-pixel square, as two separable passes of shifted ORs."""
    out = binary.copy()
    for shift in range(1, radius + 1):
        out[shift:] |= binary[:-shift]
        out[:-shift] |= binary[shift:]
    rows = out.copy()
    for shift in range(1, radius + 1):
        out[:, shift:] |= rows[:, :-shift]
        out[:, :-shift] |= rows[:, shift:]
    return out


def boundary_f1(mask: np.ndarray, gold: np.ndarray, ignore_index: int, tolerance: int) -> float:
    """F1 of the mask's label boundaries against gold's, a boundary pixel counting as matched when
    the other has one within `tolerance` pixels (chessboard distance). Only gold-labelled pixels
    take part, as in pixel_accuracy: where gold is ignore, the mask's labels are not judged. IoU
    misses a sloppy outline on a large region; this measures the outline itself."""
    judged = np.where(gold == ignore_index, np.uint8(ignore_index), mask)
    ours, theirs = label_boundaries(judged), label_boundaries(gold)
    if not ours.any() and not theirs.any():
        return 1.0
    if not ours.any() or not theirs.any():
        return 0.0
    precision = float((ours & _dilate(theirs, tolerance)).sum() / ours.sum())
    recall = float((theirs & _dilate(ours, tolerance)).sum() / theirs.sum())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def agreement(masks: list[np.ndarray], ignore_index: int) -> float:
    """Mean pairwise mean IoU between annotators of one image."""
    return float(np.mean([mean_iou(a, b, ignore_index) for a, b in combinations(masks, 2)]))


def _image_outcome(
    image_id: str, gold_key: str | None, workers: list[tuple[str, str]], store: ArtefactStore,
    settings: ConsensusSettings, ignore_index: int, palette: list[tuple[int, int, int]] | None,
) -> dict:
    """Honeypot scores against gold, or the fused mask and agreement of several annotators; a
    single annotator's mask needs neither."""
    def load(key: str) -> np.ndarray:
        return decode_mask_png(store.read(key))

    if gold_key is not None:
        gold = load(gold_key)
        scores = []
        for annotator, key in workers:
            mask = load(key)
            scores.append({"annotator": annotator, "iou": mean_iou(mask, gold, ignore_index),
                           "accuracy": pixel_accuracy(mask, gold, ignore_index),
                           "boundary_f1": boundary_f1(mask, gold, ignore_index, settings.boundary_tolerance)})
        return {"scores": scores, "agreement": None, "fused_key": None}
    masks = [load(key) for _, key in workers]
    png = encode_mask_png(fuse_masks(masks, settings.quorum, ignore_index), palette)
    fused_key = f"masks/fused/{image_id}-{content_digest(png)}.png"
    store.write_once(fused_key, png)
    return {"scores": [], "agreement": agreement(masks, ignore_index), "fused_key": fused_key}


def build_consensus(
    entries: pl.DataFrame,
    store: ArtefactStore,
    settings: ConsensusSettings,
    ignore_index: int,
    palette: list[tuple[int, int, int]] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decide each image's released mask and score annotators on honeypots.

    `entries` are usable masks (columns image_id, annotator, is_gold, mask_key, instance_mask_key). Gold wins
    where it exists; otherwise two or more annotators are fused, one is released as is. Fused
    masks are encoded with `palette` when given (palette PNG), else as grayscale.
    """
    encoding = bytes(v for rgb in palette for v in rgb) if palette else b"grayscale"
    settings_key = orjson.dumps([settings.quorum, settings.boundary_tolerance, ignore_index])
    images, scores = [], []
    for image_id, group in entries.sort("image_id", "annotator", "mask_key").group_by("image_id", maintain_order=True):
        image_id = image_id[0]
        gold = group.filter(pl.col("is_gold"))["mask_key"].to_list()
        workers = list(group.filter(~pl.col("is_gold")).select("annotator", "mask_key").iter_rows())
        instance_keys = dict(group.select("mask_key", "instance_mask_key").iter_rows())
        row = {"image_id": image_id, "n_annotators": len(workers), "annotators": [a for a, _ in workers],
               "agreement": None}
        gold_key = gold[0] if gold else None
        if gold_key is None and len(workers) == 1:
            images.append({**row, "mask_source": "single", "mask_key": workers[0][1],
                           "instance_mask_key": instance_keys[workers[0][1]], "status": "accepted"})
            continue
        if gold_key is not None and not workers:
            images.append({**row, "mask_source": "gold", "mask_key": gold_key,
                           "instance_mask_key": instance_keys[gold_key], "status": "accepted"})
            continue
        memo = f"consensus/{image_id}-{content_digest(orjson.dumps([gold_key, workers]), settings_key, encoding)}.json"
        outcome = store.recall(memo)
        if outcome is None:
            outcome = _image_outcome(image_id, gold_key, workers, store, settings, ignore_index, palette)
            store.remember(memo, outcome)
        scores.extend({**score, "image_id": image_id} for score in outcome["scores"])
        if gold_key is not None:
            images.append({**row, "mask_source": "gold", "mask_key": gold_key,
                           "instance_mask_key": instance_keys[gold_key], "status": "accepted"})
        else:
            status = "accepted" if outcome["agreement"] >= settings.min_agreement else "low_agreement"
            images.append({**row, "agreement": outcome["agreement"], "mask_source": "fused",
                           "mask_key": outcome["fused_key"], "instance_mask_key": None, "status": status})
    consensus_schema = {"image_id": pl.String, "n_annotators": pl.Int64, "annotators": pl.List(pl.String),
                        "agreement": pl.Float64, "mask_source": pl.String, "mask_key": pl.String,
                        "instance_mask_key": pl.String, "status": pl.String}
    consensus = ConsensusRecord.validate(pl.DataFrame(images, schema=consensus_schema))
    return consensus, leaderboard(pl.DataFrame(scores, schema={
        "annotator": pl.String, "image_id": pl.String, "iou": pl.Float64, "accuracy": pl.Float64,
        "boundary_f1": pl.Float64}))


def leaderboard(scores: pl.DataFrame) -> pl.DataFrame:
    """Per-annotator honeypot score, best first."""
    board = scores.group_by("annotator").agg(
        pl.len().alias("n_honeypots"), pl.col("iou").mean().alias("mean_iou"), pl.col("accuracy").mean().alias("pixel_accuracy"),
        pl.col("boundary_f1").mean().alias("boundary_f1"),
    ).sort("mean_iou", "annotator", descending=[True, False])
    return AnnotatorScoreRecord.validate(board.with_columns(pl.col("n_honeypots").cast(pl.Int64)))
