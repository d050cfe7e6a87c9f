"""Pixel-level consensus between annotators, and honeypot scoring against gold.

Fusion is a per-pixel plurality vote: a pixel keeps the class most annotators chose if
that class has a unique plurality and at least `quorum` of the annotators chose it;
otherwise it becomes ignore, because a disputed pixel is worse for training than none.

Each image's outcome (fused mask, agreement, honeypot scores) is remembered in the object store
under a digest of its masks' content-derived keys and the settings, so a rerun after a taxonomy
edit decodes and fuses only the images whose masks the edit changed.
"""

from dataclasses import dataclass
from itertools import combinations, groupby
from operator import itemgetter

import numpy as np
import orjson
import polars as pl

from segpipe.core.artefact_keys import ArtefactStore, content_digest
from segpipe.core.mask_agreement import boundary_f1, mean_iou, pixel_accuracy
from segpipe.core.png import encode_mask_png
from segpipe.core.raster import decode_mask_png
from segpipe.core.schemas import AnnotatorScoreRecord, ConsensusRecord
from segpipe.core.settings import ConsensusSettings

OUTCOME_FORMAT = 3  # part of every remembered outcome's name: a new format never reads an old one


def disputed_pixels(masks: list[np.ndarray]) -> np.ndarray:
    """Flat indices of the pixels not every mask labels alike: annotators agree on most of a frame,
    and fusion and IoU need to look only at the rest."""
    unanimous = np.ones(masks[0].shape, dtype=bool)
    for other in masks[1:]:
        unanimous &= masks[0] == other
    return np.flatnonzero(~unanimous)


def fuse_masks(masks: list[np.ndarray], quorum: float, ignore_index: int, disputed: np.ndarray | None = None) -> np.ndarray:
    """Plurality vote over masks of one image; ignore-index votes abstain (see fuse_with_agreement)."""
    return fuse_with_agreement(masks, quorum, ignore_index, disputed)[0]


def fuse_with_agreement(
    masks: list[np.ndarray], quorum: float, ignore_index: int, disputed: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The fused mask and the agreement map of one image's masks.

    Fusion: a pixel keeps the plurality class if unique and chosen by at least `quorum` of the
    annotators, else ignore. A pixel all annotators label alike wins with every vote (and `needed`
    never exceeds the annotators), so only the disputed pixels are counted, per annotator rather
    than per class: votes[i] is how many annotators chose the class annotator i chose. The map
    shows, per pixel as 0..255, the share of annotators behind its plurality class: 255 where all
    agree, darker where they split; what a reviewer looks at first."""
    needed = max(1, int(np.ceil(quorum * len(masks))))
    disputed = disputed_pixels(masks) if disputed is None else disputed
    stack = np.stack([mask.ravel()[disputed] for mask in masks])
    valid = stack != ignore_index
    votes = np.zeros(stack.shape, dtype=np.uint8)
    for i, j in np.ndindex(len(stack), len(stack)):
        votes[i] += (stack[i] == stack[j]) & valid[j]
    votes[~valid] = 0
    leader = votes.argmax(axis=0)[None]
    best = np.take_along_axis(votes, leader, axis=0)[0]
    winner = np.take_along_axis(stack, leader, axis=0)[0]
    contested = ((votes == best) & (stack != winner) & valid).any(axis=0)
    fused, shown = masks[0].copy(), np.full(masks[0].shape, 255, dtype=np.uint8)
    fused.ravel()[disputed] = np.where((best >= needed) & ~contested, winner, np.uint8(ignore_index))
    shown.ravel()[disputed] = np.round(255.0 * best / len(masks)).astype(np.uint8)
    return fused, shown


def agreement(
    masks: list[np.ndarray], ignore_index: int, pixels: list[np.ndarray] | None = None,
    disputed: np.ndarray | None = None,
) -> float:
    """Mean pairwise mean IoU between annotators of one image (pixels: each mask's class_pixels;
    disputed: the image's disputed pixels, see disputed_pixels)."""
    counts = pixels if pixels is not None else [None] * len(masks)
    return float(np.mean([mean_iou(a, b, ignore_index, a_pixels, b_pixels, disputed)
                          for (a, a_pixels), (b, b_pixels) in combinations(zip(masks, counts, strict=True), 2)]))


def _image_outcome(
    image_id: str, gold_key: str | None, workers: list[tuple[str, str]], pixels_of: dict[str, list[int]],
    store: ArtefactStore, settings: ConsensusSettings, ignore_index: int, palette: list[tuple[int, int, int]] | None,
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
            scores.append({"annotator": annotator,
                           "iou": mean_iou(mask, gold, ignore_index, pixels_of[key], pixels_of[gold_key]),
                           "accuracy": pixel_accuracy(mask, gold, ignore_index),
                           "boundary_f1": boundary_f1(mask, gold, ignore_index, settings.boundary_tolerance)})
        return {"scores": scores, "agreement": None, "fused_key": None, "agreement_map_key": None}
    masks = [load(key) for _, key in workers]
    disputed = disputed_pixels(masks)
    fused, shown = fuse_with_agreement(masks, settings.quorum, ignore_index, disputed)
    png = encode_mask_png(fused, palette)
    fused_key = f"masks/fused/{image_id}-{content_digest(png)}.png"
    store.write_once(fused_key, png)
    heatmap = encode_mask_png(shown)
    map_key = f"agreement-maps/{image_id}-{content_digest(heatmap)}.png"
    store.write_once(map_key, heatmap)
    pixels = [np.asarray(pixels_of[key], dtype=np.int64) for _, key in workers]
    return {"scores": [], "agreement": agreement(masks, ignore_index, pixels, disputed), "fused_key": fused_key,
            "agreement_map_key": map_key}


@dataclass(frozen=True)
class _Image:
    image_id: str
    gold_key: str | None
    workers: list[tuple[str, str]]  # (annotator, mask key)


def build_consensus(
    entries: pl.DataFrame,
    store: ArtefactStore,
    settings: ConsensusSettings,
    ignore_index: int,
    palette: list[tuple[int, int, int]] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decide each image's released mask and score annotators on honeypots.

    `entries` are usable masks (columns image_id, annotator, is_gold, mask_key, instance_mask_key,
    class_pixels). Honeypots come first: gold wins on its images, and each annotator who labelled
    one is scored. Then every other image: two or more annotators are fused, one is released as is.
    An annotator whose honeypot mean IoU is below settings.min_honeypot_iou is left out of fusion
    (low_scorer "exclude"), or sends the images they labelled to review ("review"). Fused masks are
    encoded with `palette` when given (palette PNG), else as grayscale.
    """
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

    def outcome_of(image: _Image, workers: list[tuple[str, str]]) -> dict:
        digest = content_digest(orjson.dumps([image.gold_key, workers]), settings_key, encoding)
        memo = f"consensus/{image.image_id}-{digest}.json"
        outcome = store.recall(memo)
        if outcome is None:
            outcome = _image_outcome(image.image_id, image.gold_key, workers, pixels_of, store, settings,
                                     ignore_index, palette)
            store.remember(memo, outcome)
        return outcome

    decided, scores = [], []
    for image in images:
        if image.gold_key is None:
            continue
        if image.workers:
            scores.extend({**score, "image_id": image.image_id} for score in outcome_of(image, image.workers)["scores"])
        decided.append(_row(image, image.workers, [], "gold", image.gold_key, instance_keys[image.gold_key], None, "accepted"))
    board = leaderboard(pl.DataFrame(scores, schema=SCORE_SCHEMA))
    below = set() if settings.min_honeypot_iou is None else set(
        board.filter(pl.col("mean_iou") < settings.min_honeypot_iou)["annotator"])
    for image in images:
        if image.gold_key is not None:
            continue
        flagged = [annotator for annotator, _ in image.workers if annotator in below]
        workers = [w for w in image.workers if w[0] not in below] if settings.low_scorer == "exclude" else image.workers
        if flagged and settings.low_scorer == "review":  # fused (or single) as usual, for the reviewer
            if len(workers) == 1:
                decided.append(_row(image, workers, [], "single", workers[0][1], None, None, "annotator_review"))
            else:
                outcome = outcome_of(image, workers)
                decided.append(_row(image, workers, [], "fused", outcome["fused_key"], None, outcome["agreement"],
                                    "annotator_review", outcome["agreement_map_key"]))
        elif not workers:
            decided.append(_row(image, [], flagged, "single", image.workers[0][1], None, None, "annotator_excluded"))
        elif len(workers) == 1:
            decided.append(_row(image, workers, flagged, "single", workers[0][1], instance_keys[workers[0][1]], None,
                                "accepted"))
        else:
            outcome = outcome_of(image, workers)
            status = "accepted" if outcome["agreement"] >= settings.min_agreement else "low_agreement"
            decided.append(_row(image, workers, flagged, "fused", outcome["fused_key"], None, outcome["agreement"], status,
                                outcome["agreement_map_key"]))
    consensus_schema = {"image_id": pl.String, "n_annotators": pl.Int64, "annotators": pl.List(pl.String),
                        "excluded_annotators": pl.List(pl.String), "agreement": pl.Float64, "mask_source": pl.String,
                        "mask_key": pl.String, "instance_mask_key": pl.String, "agreement_map_key": pl.String,
                        "status": pl.String}
    consensus = ConsensusRecord.validate(pl.DataFrame(decided, schema=consensus_schema).sort("image_id"))
    return consensus, board


def _row(image: _Image, used: list[tuple[str, str]], excluded: list[str], source: str, mask_key: str,
         instance_key: str | None, agreement: float | None, status: str, agreement_map_key: str | None = None) -> dict:
    return {"image_id": image.image_id, "n_annotators": len(used), "annotators": [a for a, _ in used],
            "excluded_annotators": excluded, "agreement": agreement, "mask_source": source, "mask_key": mask_key,
            "instance_mask_key": instance_key, "agreement_map_key": agreement_map_key, "status": status}


SCORE_SCHEMA = {"annotator": pl.String, "image_id": pl.String, "iou": pl.Float64, "accuracy": pl.Float64,
                "boundary_f1": pl.Float64}


def leaderboard(scores: pl.DataFrame) -> pl.DataFrame:
    """Per-annotator honeypot score, best first."""
    board = scores.group_by("annotator").agg(
        pl.len().alias("n_honeypots"), pl.col("iou").mean().alias("mean_iou"), pl.col("accuracy").mean().alias("pixel_accuracy"),
        pl.col("boundary_f1").mean().alias("boundary_f1"),
    ).sort("mean_iou", "annotator", descending=[True, False])
    return AnnotatorScoreRecord.validate(board.with_columns(pl.col("n_honeypots").cast(pl.Int64)))
