"""What consensus learns from decoding one image's masks, remembered so a rerun decodes nothing.

A honeypot: each annotator's scores against gold and how many pixels of each gold class they gave
each label (what anchors the reliability estimate). An image with several annotators: the
agreement (mean pairwise IoU) and each pair's class IoUs, the agreement map, the vote rows (each
distinct combination of labels and its pixels, what the reliability estimate counts), and, under
the plurality rules, the fused mask. A reliability-fused mask waits for the estimate, which needs
every image's vote rows first (segpipe.core.consensus.reliability_fusion).
"""

from collections.abc import Callable
from itertools import combinations

import numpy as np

from segpipe.core.consensus.mask_agreement import boundary_f1, mean_iou, pixel_accuracy
from segpipe.core.consensus.plurality import disputed_labels, disputed_pixels, fuse_with_agreement
from segpipe.core.consensus.reliability_fusion import DecodedCache, DecodedVotes
from segpipe.core.consensus.settings import ConsensusSettings
from segpipe.core.consensus.vote_rows import ImageVotes, vote_rows
from segpipe.core.shared.artefacts import ArtefactStore, content_digest
from segpipe.core.shared.png import encode_mask_png
from segpipe.store import keys as store_keys

CLASS_VALUES = 256


def pair_class_ious(votes: ImageVotes, pixels: list[list[int]], ignore_index: int) -> list[dict[int, float]]:
    """Class IoUs of every pair of masks (in combinations order), as mask_agreement.class_iou counts
    them pixel by pixel, from the image's vote rows (each row weighing its pixels) and each whole
    mask's class_pixels: the same counts from a few hundred rows."""
    out = []
    for i, j in combinations(range(votes.rows.shape[1]), 2):
        a, b = votes.rows[:, i], votes.rows[:, j]

        def count(labels: np.ndarray, where: np.ndarray) -> np.ndarray:
            return np.bincount(labels[where], weights=votes.pixels[where], minlength=CLASS_VALUES).astype(np.int64)

        a_both = np.asarray(pixels[i], dtype=np.int64) - count(a, b == ignore_index)
        b_both = np.asarray(pixels[j], dtype=np.int64) - count(b, a == ignore_index)
        intersection = a_both - count(a, (a != b) & (a != ignore_index) & (b != ignore_index))
        a_both[ignore_index] = b_both[ignore_index] = intersection[ignore_index] = 0
        union = a_both + b_both - intersection
        out.append({int(c): float(intersection[c] / union[c]) for c in np.flatnonzero(union)})
    return out


def agreement(pair_ious: list[dict[int, float]]) -> float:
    """Mean pairwise mean IoU of one image's annotators (a pair with no class both label scores 0)."""
    return float(np.mean([np.mean(list(ious.values())) if ious else 0.0 for ious in pair_ious]))


def agreement_map(shape: tuple[int, ...], disputed: np.ndarray, votes: ImageVotes, ignore_index: int) -> np.ndarray:
    """The plurality rule's agreement map with one vote each (see plurality.fuse_with_agreement),
    drawn from the vote rows: per pixel, the share of the annotators behind its most given label
    other than ignore, as 0..255."""
    rows = votes.rows
    support = np.zeros(len(rows), dtype=np.int64)
    for i in range(rows.shape[1]):
        support = np.maximum(support, (rows == rows[:, i:i + 1]).sum(axis=1) * (rows[:, i] != ignore_index))
    shown = np.full(shape, 255, dtype=np.uint8)
    shown.ravel()[disputed] = np.round(255.0 * support / rows.shape[1]).astype(np.uint8)[votes.disputed_row]
    return shown


def gold_confusion(mask: np.ndarray, gold: np.ndarray, gold_pixels: list[int]) -> list[list[int]]:
    """[gold label, label given, pixels] for every pair that occurs, counted from the pixels where
    the mask differs from gold (the rest is gold's own class_pixels)."""
    differ = np.flatnonzero(mask.ravel() != gold.ravel())
    truth, given = gold.ravel()[differ].astype(np.int64), mask.ravel()[differ]
    off = np.bincount(truth * CLASS_VALUES + given, minlength=CLASS_VALUES * CLASS_VALUES)
    same = np.asarray(gold_pixels, dtype=np.int64) - np.bincount(truth, minlength=CLASS_VALUES)
    return ([[int(c), int(c), int(same[c])] for c in np.flatnonzero(same)]
            + [[int(i // CLASS_VALUES), int(i % CLASS_VALUES), int(off[i])] for i in np.flatnonzero(off)])


def honeypot_outcome(
    gold_key: str, workers: list[tuple[str, str]], pixels_of: dict[str, list[int]],
    load: Callable[[str], np.ndarray], settings: ConsensusSettings, ignore_index: int,
) -> dict:
    gold = load(gold_key)
    scores = []
    for annotator, key in workers:
        mask = load(key)
        scores.append({"annotator": annotator,
                       "iou": mean_iou(mask, gold, ignore_index, pixels_of[key], pixels_of[gold_key]),
                       "accuracy": pixel_accuracy(mask, gold, ignore_index),
                       "boundary_f1": boundary_f1(mask, gold, ignore_index, settings.boundary_tolerance),
                       "confusion": gold_confusion(mask, gold, pixels_of[gold_key])})
    return {"scores": scores}


def votes_outcome(
    image_id: str, workers: list[tuple[str, str]], weights: list[int] | None, pixels_of: dict[str, list[int]],
    load: Callable[[str], np.ndarray], store: ArtefactStore, settings: ConsensusSettings, ignore_index: int,
    palette: list[tuple[int, int, int]] | None, cache: DecodedCache,
) -> dict:
    """Agreement, pairs, agreement map and vote rows of several annotators' masks (the reliability
    estimate reads the rows; the pairs are counted from them); with `weights` (a plurality rule) the
    fused mask too, else (reliability) what fusing it needs goes to `cache`."""
    masks = [load(key) for _, key in workers]
    disputed = disputed_pixels(masks)
    labels = disputed_labels(masks, disputed)
    votes = vote_rows(labels, np.asarray(pixels_of[workers[0][1]], dtype=np.int64))
    if weights is None:
        fused, shown = None, agreement_map(masks[0].shape, disputed, votes, ignore_index)
    else:
        fused, shown = fuse_with_agreement(masks, settings.quorum, ignore_index, weights, disputed, labels)
    heatmap = encode_mask_png(shown)
    map_key = store_keys.agreement_map(image_id, content_digest(heatmap))
    store.write_once(map_key, heatmap)
    pair_ious = pair_class_ious(votes, [pixels_of[key] for _, key in workers], ignore_index)
    pairs = [{"annotators": [a, b], "class_iou": sorted(ious.items())}
             for ((a, _), (b, _)), ious in zip(combinations(workers, 2), pair_ious, strict=True)]
    outcome = {"agreement": agreement(pair_ious), "agreement_map_key": map_key, "pairs": pairs,
               "votes": {"rows": votes.rows.tolist(), "pixels": votes.pixels.tolist()},
               "fused_key": None, "class_pixels": None}
    if weights is None:
        cache.keep(image_id, DecodedVotes(masks[0], disputed.astype(np.int32), votes.disputed_row.astype(np.int32)))
        return outcome
    png = encode_mask_png(fused, palette)
    fused_key = store_keys.fused_mask(image_id, content_digest(png))
    store.write_once(fused_key, png)
    # The fused mask is the first annotator's but on the disputed pixels: count only those anew.
    fused_pixels = (np.asarray(pixels_of[workers[0][1]], dtype=np.int64) - np.bincount(labels[0], minlength=CLASS_VALUES)
                    + np.bincount(fused.ravel()[disputed], minlength=CLASS_VALUES))
    return {**outcome, "fused_key": fused_key, "class_pixels": fused_pixels.tolist()}
