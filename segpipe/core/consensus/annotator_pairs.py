"""How each pair of annotators agrees on the images both labelled, class by class.

An image's agreement is one number; deciding whom to retrain, or which class definition annotators
read differently, needs it per pair and per class. The class IoUs come from the consensus pass
itself (segpipe.core.consensus.fusion), so the table costs no extra decode.
"""

from collections.abc import Mapping

import polars as pl

from segpipe.core.shared.schemas import AnnotatorPairRecord, polars_schema

PAIR_SCHEMA = polars_schema(AnnotatorPairRecord)


def pair_rows(image_id: str, pairs: list[dict], class_names: Mapping[int, str]) -> list[dict]:
    """Table rows of one image's pairs as its consensus outcome keeps them: {"annotators": [a, b],
    "class_iou": [[class_id, iou], ...]}."""
    rows = []
    for pair in pairs:
        (a, b), ious = pair["annotators"], pair["class_iou"]
        pair_mean = sum(iou for _, iou in ious) / len(ious) if ious else 0.0
        rows.extend({"image_id": image_id, "annotator_a": a, "annotator_b": b, "class_id": class_id,
                     "class_name": class_names.get(class_id), "class_iou": iou, "pair_mean_iou": pair_mean}
                    for class_id, iou in ious)
    return rows


def pair_table(rows: list[dict]) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema=PAIR_SCHEMA).sort("image_id", "annotator_a", "annotator_b", "class_id")
    return AnnotatorPairRecord.validate(frame)


def pair_summary(pairs: pl.DataFrame, worst: int = 3) -> pl.DataFrame:
    """Per annotator pair, worst first: the images they share, their mean IoU over those images, and
    the `worst` classes by mean class IoU over the images where either used the class."""
    pair = ["annotator_a", "annotator_b"]
    per_image = pairs.unique(["image_id", *pair]).group_by(pair).agg(
        pl.len().alias("images"), pl.col("pair_mean_iou").mean().alias("mean_iou"))
    label = pl.coalesce("class_name", pl.col("class_id").cast(pl.String))
    per_class = pairs.group_by([*pair, "class_id"]).agg(label.first().alias("label"), pl.col("class_iou").mean())
    lowest = per_class.sort("class_iou", "class_id").group_by(pair, maintain_order=True).agg(
        pl.format("{} {}", "label", pl.col("class_iou").round(3)).head(worst).str.join(", ").alias("worst_classes"))
    return per_image.join(lowest, on=pair).sort("mean_iou", *pair).select(
        *pair, "images", pl.col("mean_iou").round(3), "worst_classes")
