"""Pixel-level consensus between annotators, and honeypot scoring against gold.

Fusion is a per-pixel plurality vote: a pixel keeps the class most annotators chose if
that class has a unique plurality and at least `quorum` of the annotators chose it;
otherwise it becomes ignore, because a disputed pixel is worse for training than none.
"""

from collections.abc import Callable
from itertools import combinations

import numpy as np
import polars as pl

from segpipe.core.schemas import AnnotatorScoreRecord, ConsensusRecord
from segpipe.core.settings import ConsensusSettings


def fuse_masks(masks: list[np.ndarray], quorum: float, ignore_index: int) -> np.ndarray:
    """Plurality vote over masks of one image; ignore-index votes abstain."""
    stack = np.stack(masks)
    classes = [c for c in np.unique(stack).tolist() if c != ignore_index]
    if not classes:
        return np.full(masks[0].shape, ignore_index, dtype=np.uint8)
    votes = np.stack([(stack == c).sum(axis=0, dtype=np.uint16) for c in classes])
    order = np.argsort(votes, axis=0)
    best = np.take_along_axis(votes, order[-1:], axis=0)[0]
    runner_up = np.take_along_axis(votes, order[-2:-1], axis=0)[0] if len(classes) > 1 else np.zeros_like(best)
    winner = np.asarray(classes, dtype=np.uint8)[order[-1]]
    needed = max(1, int(np.ceil(quorum * len(masks))))
    accepted = (best >= needed) & (best > runner_up)
    return np.where(accepted, winner, np.uint8(ignore_index)).astype(np.uint8)


def mean_iou(a: np.ndarray, b: np.ndarray, ignore_index: int) -> float:
    """Mean IoU over the classes either mask uses, on pixels both masks label."""
    both = (a != ignore_index) & (b != ignore_index)
    a_valid, b_valid = a[both], b[both]
    classes = np.union1d(np.unique(a_valid), np.unique(b_valid))
    if classes.size == 0:
        return 0.0
    ious = []
    for c in classes:
        in_a, in_b = a_valid == c, b_valid == c
        ious.append(np.logical_and(in_a, in_b).sum() / np.logical_or(in_a, in_b).sum())
    return float(np.mean(ious))


def pixel_accuracy(mask: np.ndarray, gold: np.ndarray, ignore_index: int) -> float:
    """Share of gold-labelled pixels the mask labels with the gold class."""
    labelled = gold != ignore_index
    if not labelled.any():
        return 0.0
    return float((mask[labelled] == gold[labelled]).mean())


def agreement(masks: list[np.ndarray], ignore_index: int) -> float:
    """Mean pairwise mean IoU between annotators of one image."""
    return float(np.mean([mean_iou(a, b, ignore_index) for a, b in combinations(masks, 2)]))


def build_consensus(
    entries: pl.DataFrame,
    load_mask: Callable[[str], np.ndarray],
    save_fused: Callable[[str, np.ndarray], str],
    settings: ConsensusSettings,
    ignore_index: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decide each image's released mask and score annotators on honeypots.

    `entries` are usable masks (columns image_id, annotator, is_gold, mask_key). Gold wins
    where it exists; otherwise two or more annotators are fused, one is released as is.
    """
    images, scores = [], []
    for image_id, group in entries.sort("image_id", "annotator", "mask_key").group_by("image_id", maintain_order=True):
        image_id = image_id[0]
        gold = group.filter(pl.col("is_gold"))
        workers = group.filter(~pl.col("is_gold"))
        annotators = workers["annotator"].to_list()
        row = {"image_id": image_id, "n_annotators": len(annotators), "annotators": annotators, "agreement": None}
        if gold.height:
            gold_mask = load_mask(gold["mask_key"][0])
            for annotator, key in workers.select("annotator", "mask_key").iter_rows():
                mask = load_mask(key)
                scores.append({"annotator": annotator, "image_id": image_id,
                               "iou": mean_iou(mask, gold_mask, ignore_index),
                               "accuracy": pixel_accuracy(mask, gold_mask, ignore_index)})
            images.append({**row, "mask_source": "gold", "mask_key": gold["mask_key"][0], "status": "accepted"})
        elif workers.height == 1:
            images.append({**row, "mask_source": "single", "mask_key": workers["mask_key"][0], "status": "accepted"})
        else:
            masks = [load_mask(key) for key in workers["mask_key"]]
            score = agreement(masks, ignore_index)
            status = "accepted" if score >= settings.min_agreement else "low_agreement"
            key = save_fused(image_id, fuse_masks(masks, settings.quorum, ignore_index))
            images.append({**row, "agreement": score, "mask_source": "fused", "mask_key": key, "status": status})
    consensus_schema = {"image_id": pl.String, "n_annotators": pl.Int64, "annotators": pl.List(pl.String),
                        "agreement": pl.Float64, "mask_source": pl.String, "mask_key": pl.String, "status": pl.String}
    consensus = ConsensusRecord.validate(pl.DataFrame(images, schema=consensus_schema))
    return consensus, leaderboard(pl.DataFrame(scores, schema={
        "annotator": pl.String, "image_id": pl.String, "iou": pl.Float64, "accuracy": pl.Float64}))


def leaderboard(scores: pl.DataFrame) -> pl.DataFrame:
    """Per-annotator honeypot score, best first."""
    board = scores.group_by("annotator").agg(
        pl.len().alias("n_honeypots"), pl.col("iou").mean().alias("mean_iou"), pl.col("accuracy").mean().alias("pixel_accuracy"),
    ).sort("mean_iou", "annotator", descending=[True, False])
    return AnnotatorScoreRecord.validate(board.with_columns(pl.col("n_honeypots").cast(pl.Int64)))
