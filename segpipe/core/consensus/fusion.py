"""Consensus over every image: which mask each releases, how annotators score, agree and err.

Honeypots come first: gold wins on its images, and each annotator who labelled one is scored.
Then every other image with several annotators is decoded once to count its vote rows, pairwise
agreement and agreement map (segpipe.core.consensus.image_outcomes). Under consensus.fusion
"reliability" (the default) the vote rows of all images, with the honeypots, give one estimate of
every annotator's per-class reliability (segpipe.core.consensus.reliability), refreshed on every
build, and the images with three or more annotators (two once honeypots exist) are fused by the
weighted vote it implies (segpipe.core.consensus.reliability_fusion); the others, and every image
under "plurality" or "honeypot_weighted", by the plurality vote (segpipe.core.consensus.plurality).

Each image's outcome is remembered in the object store under a digest of its masks'
content-derived keys, the vote weights and the settings, so a rerun after a taxonomy edit decodes
only the images whose masks (or plurality weights) changed; a reliability-fused image is fused
again only when its annotators' vote shares have moved by more than consensus.estimate_tolerance.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter

import numpy as np
import orjson
import polars as pl

from segpipe.core.consensus.annotator_pairs import pair_rows, pair_table
from segpipe.core.consensus.annotator_reliability import RELIABILITY_SCHEMA, reliability_table
from segpipe.core.consensus.image_outcomes import honeypot_outcome, votes_outcome
from segpipe.core.consensus.mask_agreement import class_iou
from segpipe.core.ingest.pseudonym import MODEL_PREFIX, is_model
from segpipe.core.consensus.plurality import WEIGHT_SCALE, disputed_labels, disputed_pixels, honeypot_weights
from segpipe.core.consensus.reliability import MIN_ERROR_RATE, VoteCounts, estimate_reliability
from segpipe.core.consensus.review import apply_reviews, split_reviews
from segpipe.core.consensus.reliability_fusion import DecodedCache, fuse_image, still_in_force, weight_shares
from segpipe.core.consensus.settings import ConsensusSettings
from segpipe.core.consensus.vote_rows import ImageVotes, vote_rows
from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.core.shared.artefacts import ArtefactStore, content_digest
from segpipe.core.shared.class_pixels import DenseCounts, as_sparse, dense, sparse
from segpipe.core.shared.schemas import AnnotatorScoreRecord, ConsensusRecord, polars_schema
from segpipe.store import keys as store_keys

OUTCOME_FORMAT = 6  # part of every remembered outcome's name: a new format never reads an old one
MIN_ANNOTATORS = 3  # reliability fusion without honeypots: two annotators who disagree are a coin toss


@dataclass(frozen=True)
class _Image:
    image_id: str
    gold_key: str | None
    workers: list[tuple[str, str]]  # (annotator, mask key)


@dataclass(frozen=True)
class _Plan:
    """How one non-gold image is decided: whose masks, who was left out, the status kind."""

    image: _Image
    workers: list[tuple[str, str]]
    excluded: list[str]
    review: bool
    rule: str | None  # None: a single mask, released as is (or not at all)


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
    categories: Mapping[int, str | None] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Decide each image's released mask, score annotators on honeypots, measure how each pair of
    annotators agrees class by class, and estimate each annotator's per-class reliability.

    `entries` are usable masks (columns image_id, annotator, is_gold, mask_key, instance_mask_key,
    class_pixels); a review's (core/consensus/review.py) replaces the consensus of an image of the
    queue. An annotator whose honeypot mean IoU is below settings.min_honeypot_iou is left out of
    fusion (low_scorer "exclude"), or sends the images they labelled to review ("review").
    Fused masks are encoded with `palette` when given (palette PNG), else as grayscale. Returns the
    consensus table, the honeypot leaderboard, the pair table (AnnotatorPairRecord; class names from
    `class_names`) and the reliability table (AnnotatorReliabilityRecord, confusions within the
    `categories` of the classes; empty when no image is reliability-fused). class_pixels may be
    dense or sparse (core/shared/class_pixels.py); the consensus table's is sparse.
    """
    _one_entry_per_annotator(entries)
    entries, reviews = split_reviews(entries.with_columns(as_sparse(entries["class_pixels"])))
    names, categories = class_names or {}, categories or {}
    encoding = bytes(v for rgb in palette for v in rgb) if palette else b"grayscale"
    settings_key = orjson.dumps([OUTCOME_FORMAT, settings.quorum, settings.boundary_tolerance, ignore_index])
    rows = entries.sort("image_id", "annotator", "mask_key").select(
        "image_id", "annotator", "is_gold", "mask_key", "instance_mask_key", "class_pixels").iter_rows()
    instance_keys, pixels_of, images = {}, DenseCounts(), []
    for image_id, group in groupby(rows, key=itemgetter(0)):
        gold, workers = [], []
        for _, annotator, is_gold, mask_key, instance_key, pixels in group:
            if is_gold:
                gold.append(mask_key)
            else:
                workers.append((annotator, mask_key))
            instance_keys[mask_key] = instance_key
            pixels_of.add(mask_key, pixels)
        images.append(_Image(image_id, gold[0] if gold else None, workers))
    cache = DecodedCache()

    def load(key: str) -> np.ndarray:
        return decode_mask_png(store.read_png(key))

    def outcome_of(image: _Image, workers: list[tuple[str, str]], weights: list[int] | None) -> dict:
        digest = content_digest(orjson.dumps([image.gold_key, workers, weights]), settings_key, encoding)
        memo = store_keys.consensus_memo(image.image_id, digest)
        outcome = store.recall(memo)
        if outcome is None:
            outcome = (honeypot_outcome(image.gold_key, workers, pixels_of, load, settings, ignore_index)
                       if image.gold_key is not None else
                       votes_outcome(image.image_id, workers, weights, pixels_of, load, store, settings, ignore_index,
                                     palette, cache))
            store.remember(memo, outcome)
        return outcome

    decided, scores, gold_counts = [], [], {}
    for image in images:
        if image.gold_key is None:
            continue
        if image.workers:
            for score in outcome_of(image, image.workers, [])["scores"]:
                scores.append({**{k: v for k, v in score.items() if k != "confusion"}, "image_id": image.image_id})
                gold_counts.setdefault(score["annotator"], []).extend(map(tuple, score["confusion"]))
        decided.append(_row(image, image.workers, [], "gold", image.gold_key, instance_keys[image.gold_key], None,
                            "accepted", pixels_of.pairs(image.gold_key)))
    board = leaderboard(pl.DataFrame(scores, schema=SCORE_SCHEMA))
    if not settings.models_vote:  # a model that does not vote weighs nothing in how the voters are weighed
        gold_counts = {a: counts for a, counts in gold_counts.items() if not is_model(a)}
    voters_board = board if settings.models_vote else board.filter(~pl.col("is_model"))
    plans = _plans(images, voters_board, settings)
    plurality_weights = _plurality_weights(voters_board, settings)
    votes = {plan.image.image_id: outcome_of(plan.image, plan.workers, _weights(plan, plurality_weights))
             for plan in plans if plan.rule is not None}

    estimate = None
    reliability = [plan for plan in plans if plan.rule == "reliability"]
    if reliability:  # every fused image's votes count, whichever rule fuses it
        estimate = estimate_reliability(
            [VoteCounts(tuple(a for a, _ in plan.workers), *_vote_table(votes[plan.image.image_id], len(plan.workers)))
             for plan in plans if plan.rule is not None],
            gold_counts, _seed_weights(gold_counts, ignore_index))
    weight_of = estimate.vote_weights(ignore_index) if estimate is not None else {}
    fused_by_estimate = {plan.image.image_id: _reliability_outcome(
        plan, votes[plan.image.image_id], weight_of, store, settings, ignore_index, palette, encoding, cache, load,
        pixels_of) for plan in reliability}

    pairs = []
    for plan in plans:
        row = _decided_row(plan, votes.get(plan.image.image_id), fused_by_estimate.get(plan.image.image_id),
                           instance_keys, pixels_of, plurality_weights, settings, names, pairs)
        decided.append(_with_model_disputes(row, plan.image, load, pixels_of, settings, ignore_index, names))
    consensus = ConsensusRecord.validate(apply_reviews(
        pl.DataFrame(decided, schema=polars_schema(ConsensusRecord)).sort("image_id"), reviews))
    table = (reliability_table(estimate, gold_counts, ignore_index, names, categories) if estimate is not None
             else pl.DataFrame(schema=RELIABILITY_SCHEMA))
    return consensus, board, pair_table(pairs), table


def _plans(images: list[_Image], board: pl.DataFrame, settings: ConsensusSettings) -> list[_Plan]:
    below = set() if settings.min_honeypot_iou is None else set(
        board.filter(pl.col("mean_iou") < settings.min_honeypot_iou)["annotator"])
    honeypots = not board.is_empty()
    plans = []
    for image in images:
        if image.gold_key is not None:
            continue
        voters = [w for w in image.workers if settings.models_vote or not is_model(w[0])]
        flagged = [annotator for annotator, _ in voters if annotator in below]
        workers = [w for w in voters if w[0] not in below] if settings.low_scorer == "exclude" else voters
        review = bool(flagged) and settings.low_scorer == "review"
        if review:
            flagged = []  # fused (or single) as usual, for the reviewer
        rule = None
        if len(workers) >= 2:
            rule = settings.fusion
            if rule == "reliability" and len(workers) < MIN_ANNOTATORS and not honeypots:
                rule = "plurality"
        plans.append(_Plan(image, workers, flagged, review, rule))
    return plans


def _plurality_weights(board: pl.DataFrame, settings: ConsensusSettings) -> tuple[dict[str, int], int]:
    return honeypot_weights(board) if settings.fusion == "honeypot_weighted" else ({}, 1)


def _weights(plan: _Plan, plurality_weights: tuple[dict[str, int], int]) -> list[int] | None:
    """The plurality vote weights of an image's masks; None for a reliability-fused one."""
    if plan.rule == "reliability":
        return None
    weight_of, unscored = plurality_weights
    return [weight_of.get(annotator, unscored) for annotator, _ in plan.workers]


def _seed_weights(gold_counts: Mapping[str, list[tuple[int, int, int]]], ignore_index: int) -> dict[str, float]:
    """Where the estimate starts: each scored annotator's vote weighs the inverse of their honeypot
    error rate (over gold pixels of a class), as the estimate's own weights do."""
    seeds = {}
    for annotator, triples in gold_counts.items():
        judged = sum(pixels for true, _, pixels in triples if true != ignore_index)
        wrong = sum(pixels for true, given, pixels in triples if true != ignore_index and given != true)
        if judged:
            seeds[annotator] = 1.0 / max(wrong / judged, MIN_ERROR_RATE)
    return seeds


def _reliability_outcome(
    plan: _Plan, votes: dict, weight_of: Mapping[str, float], store: ArtefactStore, settings: ConsensusSettings,
    ignore_index: int, palette: list[tuple[int, int, int]] | None, encoding: bytes, cache: DecodedCache,
    load: Callable[[str], np.ndarray], pixels_of: dict[str, list[int]],
) -> dict:
    """The image's reliability-fused outcome: the one in force while its vote shares stay within
    settings.estimate_tolerance, else fused anew with the estimate's weights and remembered."""
    image_id, workers = plan.image.image_id, plan.workers
    weights = [weight_of[annotator] for annotator, _ in workers]
    memo = store_keys.reliability_fusion(image_id, content_digest(
        orjson.dumps([OUTCOME_FORMAT, workers, settings.min_confidence, ignore_index]), encoding))
    previous = store.recall(memo)
    if still_in_force(previous, weight_shares(weights), settings.estimate_tolerance):
        return previous
    held = cache.take(image_id)
    if held is not None:
        first, disputed = held.first_mask, held.disputed
        image_votes = ImageVotes(*_vote_table(votes, len(workers)), held.disputed_row)
    else:
        masks = [load(key) for _, key in workers]
        first, disputed = masks[0], disputed_pixels(masks)
        image_votes = vote_rows(disputed_labels(masks, disputed), np.asarray(pixels_of[workers[0][1]], dtype=np.int64))
    outcome = fuse_image(image_id, first, disputed, image_votes, weights, settings.min_confidence, ignore_index, store,
                         palette)
    store.remember(memo, outcome)
    return outcome


def _vote_table(outcome: dict, annotators: int) -> tuple[np.ndarray, np.ndarray]:
    """An image's remembered vote rows (n, annotators) and the pixels of each."""
    counted = outcome["votes"]
    return (np.asarray(counted["rows"], dtype=np.uint8).reshape(-1, annotators),
            np.asarray(counted["pixels"], dtype=np.int64))


def _decided_row(plan: _Plan, votes: dict | None, fused: dict | None, instance_keys: dict[str, str | None],
                 pixels_of: dict[str, list[int]], plurality_weights: tuple[dict[str, int], int],
                 settings: ConsensusSettings, names: Mapping[int, str], pairs: list[dict]) -> dict:
    image, workers = plan.image, plan.workers
    if plan.rule is None:
        if not workers:
            return _row(image, [], plan.excluded, "single", image.workers[0][1], None, None, "annotator_excluded",
                        pixels_of.pairs(image.workers[0][1]))
        key = workers[0][1]
        status = "annotator_review" if plan.review else "accepted"
        return _row(image, workers, plan.excluded, "single", key, None if plan.review else instance_keys[key], None,
                    status, pixels_of.pairs(key))
    pairs.extend(pair_rows(image.image_id, votes["pairs"], names))
    status = "annotator_review" if plan.review else (
        "accepted" if votes["agreement"] >= settings.min_agreement else "low_agreement")
    if plan.rule == "reliability":
        return _row(image, workers, plan.excluded, "fused", fused["fused_key"], None, votes["agreement"], status,
                    sparse(fused["class_pixels"]), votes["agreement_map_key"], fused["weights"],
                    fused["confidence_map_key"], plan.rule)
    weights = _weights(plan, plurality_weights)
    scale = WEIGHT_SCALE if plan.rule == "honeypot_weighted" else 1
    return _row(image, workers, plan.excluded, "fused", votes["fused_key"], None, votes["agreement"], status,
                sparse(votes["class_pixels"]), votes["agreement_map_key"], [w / scale for w in weights], None,
                plan.rule)


def _with_model_disputes(row: dict, image: _Image, load: Callable[[str], np.ndarray], pixels_of: dict[str, list[int]],
                         settings: ConsensusSettings, ignore_index: int, names: Mapping[int, str]) -> dict:
    """The row with the classes on which a model's mask and the people's released mask disagree (class IoU below
    consensus.model_disagreement_iou, as the leaderboard counts IoU); an accepted image with any goes to review.
    Nothing to compare where no person's mask is released, or where the model voted for the mask itself."""
    threshold = settings.model_disagreement_iou
    models = [(a, key) for a, key in image.workers if is_model(a) and a not in row["annotators"]]
    people = [a for a in row["annotators"] if not is_model(a)]
    if threshold is None or not models or not people or row["mask_source"] == "gold":
        return row
    released = load(row["mask_key"])
    disputed: set[int] = set()
    for _, key in models:
        ious = class_iou(load(key), released, ignore_index, pixels_of[key], dense(row["class_pixels"]))
        disputed.update(c for c, iou in ious.items() if iou < threshold)
    if not disputed:
        return {**row, "disputed_classes": []}
    status = "model_review" if row["status"] == "accepted" else row["status"]
    return {**row, "status": status, "disputed_classes": [names.get(c, str(c)) for c in sorted(disputed)]}


def _row(image: _Image, used: list[tuple[str, str]], excluded: list[str], source: str, mask_key: str,
         instance_key: str | None, agreement: float | None, status: str, class_pixels: list[dict[str, int]],
         agreement_map_key: str | None = None, vote_weights: list[float] | None = None,
         confidence_map_key: str | None = None, fusion_rule: str | None = None) -> dict:
    return {"image_id": image.image_id, "n_annotators": len(used), "annotators": [a for a, _ in used],
            "excluded_annotators": excluded, "agreement": agreement, "mask_source": source, "mask_key": mask_key,
            "instance_mask_key": instance_key, "agreement_map_key": agreement_map_key,
            "confidence_map_key": confidence_map_key, "fusion_rule": fusion_rule, "vote_weights": vote_weights,
            "status": status, "class_pixels": class_pixels, "disputed_classes": None}


SCORE_SCHEMA = {"annotator": pl.String, "image_id": pl.String, "iou": pl.Float64, "accuracy": pl.Float64,
                "boundary_f1": pl.Float64}


def leaderboard(scores: pl.DataFrame) -> pl.DataFrame:
    """Per-annotator honeypot score, best first."""
    board = scores.group_by("annotator").agg(
        pl.len().alias("n_honeypots"), pl.col("iou").mean().alias("mean_iou"), pl.col("accuracy").mean().alias("pixel_accuracy"),
        pl.col("boundary_f1").mean().alias("boundary_f1"),
    ).sort("mean_iou", "annotator", descending=[True, False])
    return AnnotatorScoreRecord.validate(board.with_columns(
        pl.col("n_honeypots").cast(pl.Int64), pl.col("annotator").str.starts_with(MODEL_PREFIX).alias("is_model")))
