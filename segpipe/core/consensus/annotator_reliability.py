"""Each annotator's reliability class by class, and the leaderboard made of it.

The honeypot leaderboard scores annotators where gold exists; this one covers every annotator of
a fused image, from the reliability estimate (segpipe.core.consensus.reliability), and says what
to retrain: which classes an annotator gets wrong, and what they call them instead.

A confusion pair is reported within a taxonomy category (car -> truck, sidewalk -> road) when the
taxonomy gives the class one: labelling a car as road is a missed car or a loose outline, which
the class's recall already shows, not a question of what a car is. Without categories every other
class counts. The ignore value is never a confusion: leaving pixels unlabelled is unlabelled_rate.
"""

from collections.abc import Mapping

import numpy as np
import polars as pl

from segpipe.core.consensus.reliability import GoldCounts, Reliability
from segpipe.core.shared.schemas import AnnotatorReliabilityRecord, polars_schema

RELIABILITY_SCHEMA = polars_schema(AnnotatorReliabilityRecord)
MIN_CONFUSED_SHARE = 0.001  # a confusion costing less of an annotator's pixels is a slip, not a habit
TOP_CONFUSIONS = 3


def reliability_table(
    estimate: Reliability, gold: GoldCounts, ignore_index: int, class_names: Mapping[int, str],
    categories: Mapping[int, str | None],
) -> pl.DataFrame:
    """One row per annotator and true class they have pixels of (see AnnotatorReliabilityRecord)."""
    labels = list(estimate.labels)
    weights = estimate.vote_weights(ignore_index)
    rows = []
    for annotator in sorted(estimate.counts):
        counts, error_rate = estimate.counts[annotator], estimate.error_rate(annotator, ignore_index)
        on_gold = {}
        for true, _, pixels in gold.get(annotator, ()):
            on_gold[true] = on_gold.get(true, 0) + pixels
        for c, true in enumerate(labels):
            pixels = float(counts[c].sum())
            if true == ignore_index or pixels <= 0:
                continue
            other = _comparable(labels, true, ignore_index, categories)
            worst = other[int(np.argmax(counts[c, other]))] if other else None
            rows.append({
                "annotator": annotator, "class_id": true, "class_name": class_names.get(true), "pixels": pixels,
                "honeypot_pixels": on_gold.get(true, 0), "recall": float(counts[c, c] / pixels),
                "confused_with": None if worst is None else labels[worst],
                "confused_with_name": None if worst is None else class_names.get(labels[worst]),
                "confusion_rate": 0.0 if worst is None else float(counts[c, worst] / pixels),
                "unlabelled_rate": float(counts[c, labels.index(ignore_index)] / pixels) if ignore_index in labels else 0.0,
                "error_rate": error_rate, "vote_weight": weights[annotator]})
    frame = pl.DataFrame(rows, schema=RELIABILITY_SCHEMA).sort("annotator", "class_id")
    return AnnotatorReliabilityRecord.validate(frame)


def _comparable(labels: list[int], true: int, ignore_index: int, categories: Mapping[int, str | None]) -> list[int]:
    """Indices of the labels a pixel of `true` can be confused with: the other classes of its category
    when the taxonomy gives it one, else every other class."""
    category = categories.get(true)
    return [i for i, label in enumerate(labels)
            if label not in (true, ignore_index) and (category is None or categories.get(label) == category)]


def annotator_summary(table: pl.DataFrame) -> pl.DataFrame:
    """The leaderboard: per annotator, most reliable first, the estimated error rate, vote weight and
    pixels, and the TOP_CONFUSIONS highest confusion rates ("car -> truck 0.150") among those that
    cost at least MIN_CONFUSED_SHARE of the annotator's pixels (a sign's outline slipping over its
    pole, or a phantom class of a few pixels, is not what they need retraining on)."""
    share = pl.col("pixels") * pl.col("confusion_rate") / pl.col("pixels").sum().over("annotator")
    label = pl.coalesce("class_name", pl.col("class_id").cast(pl.String))
    other = pl.coalesce("confused_with_name", pl.col("confused_with").cast(pl.String))
    pairs = table.filter((share >= MIN_CONFUSED_SHARE) & (pl.col("confusion_rate") > 0)).sort(
        "confusion_rate", "class_id", descending=[True, False]).group_by("annotator", maintain_order=True).agg(
        pl.format("{} -> {} {}", label, other, pl.col("confusion_rate").round(3)).head(TOP_CONFUSIONS)
        .alias("top_confusions"))
    per_annotator = table.group_by("annotator").agg(
        pl.col("error_rate").first(), pl.col("vote_weight").first(), pl.col("pixels").sum().round(0))
    return per_annotator.join(pairs, on="annotator", how="left").with_columns(
        pl.col("top_confusions").fill_null(pl.lit([], dtype=pl.List(pl.String)))).sort(
        "error_rate", "annotator").select("annotator", pl.col("error_rate").round(4), pl.col("vote_weight").round(1),
                                          "pixels", "top_confusions")
