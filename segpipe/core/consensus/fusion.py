"""Pixel-level consensus between annotators, and honeypot scoring against gold.

Fusion is a per-pixel weighted plurality vote: a pixel keeps the class with the most vote weight
if that class leads alone and has at least `quorum` of the image's total weight; otherwise it
becomes ignore, because a disputed pixel is worse for training than none. Under consensus.fusion
"plurality" every vote weighs 1; under "honeypot_weighted" it weighs the annotator's honeypot mean
IoU (honeypots are scored first, so the weights are known before any image is fused).

Each image's outcome (fused mask, agreement, class IoUs of every annotator pair, honeypot scores)
is remembered in the object store under a digest of its masks' content-derived keys, the vote
weights and the settings, so a rerun after a taxonomy edit decodes and fuses only the images whose
masks (or weights) the edit changed.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations, groupby
from operator import itemgetter

import numpy as np
import orjson
import polars as pl

from segpipe.core.consensus.annotator_pairs import pair_rows, pair_table
from segpipe.core.shared.artefacts import ArtefactStore, content_digest
from segpipe.core.consensus.mask_agreement import boundary_f1, class_iou, mean_iou, pixel_accuracy
from segpipe.core.shared.png import encode_mask_png
from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.core.shared.schemas import AnnotatorScoreRecord, ConsensusRecord, polars_schema
from segpipe.core.consensus.settings import ConsensusSettings
from segpipe.store import keys as store_keys

OUTCOME_FORMAT = 5  # part of every remembered outcome's name: a new format never reads an old one
WEIGHT_SCALE = 1000  # vote weights are whole thousandths, so equal weighted sums are exactly equal: a tie


def disputed_pixels(masks: list[np.ndarray]) -> np.ndarray:
    """Flat indices of the pixels not every mask labels alike: annotators agree on most of a frame,
    and fusion and IoU need to look only at the rest."""
    first = masks[0].ravel()
    differ = np.zeros(first.shape, dtype=bool)
    for other in masks[1:]:
        differ |= first != other.ravel()
    return np.flatnonzero(differ)


def disputed_labels(masks: list[np.ndarray], disputed: np.ndarray) -> np.ndarray:
    """Each mask's labels on the disputed pixels, one row per mask: all that fusion and IoU read."""
    labels = np.empty((len(masks), disputed.size), dtype=np.uint8)
    for row, mask in zip(labels, masks, strict=True):
        np.take(mask.ravel(), disputed, out=row)
    return labels


def fuse_masks(
    masks: list[np.ndarray], quorum: float, ignore_index: int, weights: Sequence[int] | None = None,
) -> np.ndarray:
    """Weighted plurality vote over masks of one image; ignore-index votes abstain (see fuse_with_agreement)."""
    return fuse_with_agreement(masks, quorum, ignore_index, weights)[0]


def fuse_with_agreement(
    masks: list[np.ndarray], quorum: float, ignore_index: int, weights: Sequence[int] | None = None,
    disputed: np.ndarray | None = None, labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The fused mask and the agreement map of one image's masks.

    Fusion: a pixel keeps the class with the most vote weight if it leads alone and has at least
    `quorum` of the total weight, else ignore. weights: each mask's vote as a positive whole number
    (1 each when not given: a plain plurality); whole, so that equal sums tie exactly. A pixel all
    annotators label alike wins with the whole weight (and `needed` never exceeds it), so only the
    disputed pixels are counted (`disputed` and `labels`, see disputed_labels, when the caller has
    them), per annotator rather than per class: votes[i] is the weight behind the class annotator i
    chose. The map shows, per pixel as 0..255, the share of the weight behind its leading class:
    255 where all agree, darker where they split; what a reviewer looks at first."""
    weights = np.ones(len(masks), dtype=np.int64) if weights is None else np.asarray(weights, dtype=np.int64)
    total = int(weights.sum())
    needed = max(1, int(np.ceil(quorum * total)))
    disputed = disputed_pixels(masks) if disputed is None else disputed
    labels = disputed_labels(masks, disputed) if labels is None else labels
    valid = labels != ignore_index
    weights = weights.astype(np.min_scalar_type(total))
    votes = valid * weights[:, None]
    for i, j in combinations(range(len(labels)), 2):
        same = (labels[i] == labels[j]) & valid[i]
        votes[i] += same * weights[j]
        votes[j] += same * weights[i]
    best = votes.max(axis=0)
    winner = labels[-1]
    for i in range(len(labels) - 2, -1, -1):  # the first annotator whose class has the most weight
        winner = np.where(votes[i] == best, labels[i], winner)
    contested = np.zeros(best.shape, dtype=bool)
    for row, vote, is_valid in zip(labels, votes, valid, strict=True):
        contested |= (vote == best) & (row != winner) & is_valid
    share = np.round(255.0 * np.arange(total + 1) / total).astype(np.uint8)
    fused, shown = masks[0].copy(), np.full(masks[0].shape, 255, dtype=np.uint8)
    fused.ravel()[disputed] = np.where((best >= needed) & ~contested, winner, np.uint8(ignore_index))
    shown.ravel()[disputed] = share[best]
    return fused, shown


def pair_class_ious(labels: np.ndarray, pixels: list[np.ndarray], ignore_index: int) -> list[dict[int, float]]:
    """Class IoUs of every pair of masks (in combinations order), from their labels on the disputed
    pixels (see disputed_labels) and each whole mask's class_pixels: off the disputed pixels all
    masks agree, which is all class_iou needs to know of the rest of the frame."""
    return [class_iou(labels[i], labels[j], ignore_index, pixels[i], pixels[j])
            for i, j in combinations(range(len(labels)), 2)]


def agreement(pair_ious: list[dict[int, float]]) -> float:
    """Mean pairwise mean IoU of one image's annotators (a pair with no class both label scores 0)."""
    return float(np.mean([np.mean(list(ious.values())) if ious else 0.0 for ious in pair_ious]))


def honeypot_weights(board: pl.DataFrame) -> tuple[dict[str, int], int]:
    """Each scored annotator's vote weight (honeypot mean IoU in thousandths), and the weight of an
    annotator with no honeypot: the scored annotators' mean, since an unknown annotator is most
    likely as reliable as the typical known one (the whole weight when none is scored). A weight
    never falls below one thousandth, so an image's total weight is never zero and a pixel all its
    annotators agree on always keeps its class."""
    def weight(iou: float) -> int:
        return max(1, round(iou * WEIGHT_SCALE))

    scored = dict(board.select("annotator", "mean_iou").iter_rows())
    unscored = weight(sum(scored.values()) / len(scored)) if scored else WEIGHT_SCALE
    return {annotator: weight(iou) for annotator, iou in scored.items()}, unscored


def _image_outcome(
    image_id: str, gold_key: str | None, workers: list[tuple[str, str]], weights: list[int],
    pixels_of: dict[str, list[int]], store: ArtefactStore, settings: ConsensusSettings, ignore_index: int,
    palette: list[tuple[int, int, int]] | None,
) -> dict:
    """Honeypot scores against gold, or the fused mask, agreement and pairwise class IoUs of
    several annotators (fused with `weights`); a single annotator's mask needs neither."""
    def load(key: str) -> np.ndarray:
        return decode_mask_png(store.read_png(key))

    if gold_key is not None:
        gold = load(gold_key)
        scores = []
        for annotator, key in workers:
            mask = load(key)
            scores.append({"annotator": annotator,
                           "iou": mean_iou(mask, gold, ignore_index, pixels_of[key], pixels_of[gold_key]),
                           "accuracy": pixel_accuracy(mask, gold, ignore_index),
                           "boundary_f1": boundary_f1(mask, gold, ignore_index, settings.boundary_tolerance)})
        return {"scores": scores, "agreement": None, "fused_key": None, "agreement_map_key": None, "pairs": [],
                "class_pixels": None}
    masks = [load(key) for _, key in workers]
    disputed = disputed_pixels(masks)
    labels = disputed_labels(masks, disputed)
    fused, shown = fuse_with_agreement(masks, settings.quorum, ignore_index, weights, disputed, labels)
    png = encode_mask_png(fused, palette)
    fused_key = store_keys.fused_mask(image_id, content_digest(png))
    store.write_once(fused_key, png)
    heatmap = encode_mask_png(shown)
    map_key = store_keys.agreement_map(image_id, content_digest(heatmap))
    store.write_once(map_key, heatmap)
    pair_ious = pair_class_ious(labels, [np.asarray(pixels_of[key], dtype=np.int64) for _, key in workers], ignore_index)
    pairs = [{"annotators": [a, b], "class_iou": sorted(ious.items())}
             for ((a, _), (b, _)), ious in zip(combinations(workers, 2), pair_ious, strict=True)]
    # The fused mask is the first annotator's but on the disputed pixels: count only those anew.
    fused_pixels = (np.asarray(pixels_of[workers[0][1]], dtype=np.int64) - np.bincount(labels[0], minlength=256)
                    + np.bincount(fused.ravel()[disputed], minlength=256))
    return {"scores": [], "agreement": agreement(pair_ious), "fused_key": fused_key, "agreement_map_key": map_key,
            "pairs": pairs, "class_pixels": fused_pixels.tolist()}


@dataclass(frozen=True)
class _Image:
    image_id: str
    gold_key: str | None
    workers: list[tuple[str, str]]  # (annotator, mask key)


def _one_entry_per_annotator(entries: pl.DataFrame) -> None:
    """An annotator's second entry of an image would vote twice; QA keeps only the newest delivery
    (rule entry_not_superseded), so a repeat here means the entries are not the ones QA kept."""
    repeats = entries.group_by("image_id", "annotator").len().filter(pl.col("len") > 1)
    if not repeats.is_empty():
        image_id, annotator, count = repeats.sort("image_id", "annotator").row(0)
        raise ValueError(f"consensus takes one entry per image and annotator, but {annotator} has {count} of image "
                         f"{image_id}: pass only the entries QA kept (rule entry_not_superseded keeps the newest)")


def build_consensus(
    entries: pl.DataFrame,
    store: ArtefactStore,
    settings: ConsensusSettings,
    ignore_index: int,
    palette: list[tuple[int, int, int]] | None = None,
    class_names: Mapping[int, str] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Decide each image's released mask, score annotators on honeypots, and measure how each pair
    of annotators agrees class by class on every fused image.

    `entries` are usable masks (columns image_id, annotator, is_gold, mask_key, instance_mask_key,
    class_pixels). Honeypots come first: gold wins on its images, and each annotator who labelled
    one is scored. Then every other image: two or more annotators are fused (votes weighted as
    settings.fusion says, see honeypot_weights), one is released as is. An annotator whose honeypot
    mean IoU is below settings.min_honeypot_iou is left out of fusion (low_scorer "exclude"), or
    sends the images they labelled to review ("review"). Fused masks are encoded with `palette` when
    given (palette PNG), else as grayscale. Returns the consensus table, the honeypot leaderboard
    and the pair table (AnnotatorPairRecord; class names from `class_names`).
    """
    _one_entry_per_annotator(entries)
    encoding = bytes(v for rgb in palette for v in rgb) if palette else b"grayscale"
    settings_key = orjson.dumps([OUTCOME_FORMAT, settings.quorum, settings.boundary_tolerance, ignore_index])
    rows = entries.sort("image_id", "annotator", "mask_key").select(
        "image_id", "annotator", "is_gold", "mask_key", "instance_mask_key", "class_pixels").iter_rows()
    instance_keys, pixels_of, images = {}, {}, []
    for image_id, group in groupby(rows, key=itemgetter(0)):
        gold, workers = [], []
        for _, annotator, is_gold, mask_key, instance_key, pixels in group:
            if is_gold:
                gold.append(mask_key)
            else:
                workers.append((annotator, mask_key))
            instance_keys[mask_key], pixels_of[mask_key] = instance_key, pixels
        images.append(_Image(image_id, gold[0] if gold else None, workers))

    def outcome_of(image: _Image, workers: list[tuple[str, str]], weights: list[int]) -> dict:
        digest = content_digest(orjson.dumps([image.gold_key, workers, weights]), settings_key, encoding)
        memo = store_keys.consensus_memo(image.image_id, digest)
        outcome = store.recall(memo)
        if outcome is None:
            outcome = _image_outcome(image.image_id, image.gold_key, workers, weights, pixels_of, store, settings,
                                     ignore_index, palette)
            store.remember(memo, outcome)
        return outcome

    decided, scores = [], []
    for image in images:
        if image.gold_key is None:
            continue
        if image.workers:
            scores.extend({**score, "image_id": image.image_id} for score in outcome_of(image, image.workers, [])["scores"])
        decided.append(_row(image, image.workers, [], "gold", image.gold_key, instance_keys[image.gold_key], None, "accepted",
                            pixels_of[image.gold_key]))
    board = leaderboard(pl.DataFrame(scores, schema=SCORE_SCHEMA))
    below = set() if settings.min_honeypot_iou is None else set(
        board.filter(pl.col("mean_iou") < settings.min_honeypot_iou)["annotator"])
    weighted = settings.fusion == "honeypot_weighted"
    weight_of, unscored_weight = honeypot_weights(board) if weighted else ({}, 1)
    names, pairs = class_names or {}, []

    def fused_row(image: _Image, workers: list[tuple[str, str]], excluded: list[str], review: bool) -> dict:
        weights = [weight_of.get(annotator, unscored_weight) for annotator, _ in workers]
        outcome = outcome_of(image, workers, weights)
        pairs.extend(pair_rows(image.image_id, outcome["pairs"], names))
        status = "annotator_review" if review else (
            "accepted" if outcome["agreement"] >= settings.min_agreement else "low_agreement")
        return _row(image, workers, excluded, "fused", outcome["fused_key"], None, outcome["agreement"], status,
                    outcome["class_pixels"], outcome["agreement_map_key"],
                    [w / (WEIGHT_SCALE if weighted else 1) for w in weights])

    for image in images:
        if image.gold_key is not None:
            continue
        flagged = [annotator for annotator, _ in image.workers if annotator in below]
        workers = [w for w in image.workers if w[0] not in below] if settings.low_scorer == "exclude" else image.workers
        if flagged and settings.low_scorer == "review":  # fused (or single) as usual, for the reviewer
            if len(workers) == 1:
                decided.append(_row(image, workers, [], "single", workers[0][1], None, None, "annotator_review",
                                    pixels_of[workers[0][1]]))
            else:
                decided.append(fused_row(image, workers, [], review=True))
        elif not workers:
            decided.append(_row(image, [], flagged, "single", image.workers[0][1], None, None, "annotator_excluded",
                                pixels_of[image.workers[0][1]]))
        elif len(workers) == 1:
            decided.append(_row(image, workers, flagged, "single", workers[0][1], instance_keys[workers[0][1]], None,
                                "accepted", pixels_of[workers[0][1]]))
        else:
            decided.append(fused_row(image, workers, flagged, review=False))
    consensus = ConsensusRecord.validate(pl.DataFrame(decided, schema=polars_schema(ConsensusRecord)).sort("image_id"))
    return consensus, board, pair_table(pairs)


def _row(image: _Image, used: list[tuple[str, str]], excluded: list[str], source: str, mask_key: str,
         instance_key: str | None, agreement: float | None, status: str, class_pixels: list[int],
         agreement_map_key: str | None = None, vote_weights: list[float] | None = None) -> dict:
    return {"image_id": image.image_id, "n_annotators": len(used), "annotators": [a for a, _ in used],
            "excluded_annotators": excluded, "agreement": agreement, "mask_source": source, "mask_key": mask_key,
            "instance_mask_key": instance_key, "agreement_map_key": agreement_map_key, "vote_weights": vote_weights,
            "status": status, "class_pixels": list(class_pixels)}


SCORE_SCHEMA = {"annotator": pl.String, "image_id": pl.String, "iou": pl.Float64, "accuracy": pl.Float64,
                "boundary_f1": pl.Float64}


def leaderboard(scores: pl.DataFrame) -> pl.DataFrame:
    """Per-annotator honeypot score, best first."""
    board = scores.group_by("annotator").agg(
        pl.len().alias("n_honeypots"), pl.col("iou").mean().alias("mean_iou"), pl.col("accuracy").mean().alias("pixel_accuracy"),
        pl.col("boundary_f1").mean().alias("boundary_f1"),
    ).sort("mean_iou", "annotator", descending=[True, False])
    return AnnotatorScoreRecord.validate(board.with_columns(pl.col("n_honeypots").cast(pl.Int64)))
