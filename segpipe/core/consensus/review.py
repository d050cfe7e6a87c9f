"""The review queue: images whose annotators disagree too much, whose annotator is under review, or
whose model mask disagrees with the people's (the classes in dispute listed).

A reviewer opens an image by its file name and looks at its agreement map first (white where all
annotators agree, darker where they split), then, for a reliability-fused image, its confidence map
(white where the released class has all the vote weight behind it), so the queue names all three.

The queue goes out as a CVAT task (core/consensus/review_task.py) and comes back as a review batch
(batch.json `"kind": "review"`), whose entries are all REVIEW_ANNOTATOR's: apply_reviews releases a
review's mask in place of the consensus of an image of the queue, which then leaves the queue.
"""

import polars as pl

from segpipe.core.ingest.pseudonym import REVIEW_ANNOTATOR
from segpipe.core.shared.class_pixels import as_sparse

REVIEW_STATUSES = ("low_agreement", "annotator_review", "model_review")


def review_queue(images: pl.DataFrame, entries: pl.DataFrame) -> pl.DataFrame:
    """The images to review (images: consensus_masks) by file name, lowest agreement first, with
    file_name (entries: entry_id, image_id, file_name; an image delivered under several names
    gets the first), status, annotators, agreement, disputed_classes, agreement_map_key and confidence_map_key."""
    names = entries.group_by("image_id").agg(pl.col("file_name").min())
    return (images.filter(pl.col("status").is_in(REVIEW_STATUSES))
            .join(names, on="image_id", how="left")
            .select("image_id", "file_name", "status", "annotators", "agreement", "disputed_classes", "agreement_map_key",
                    "confidence_map_key")
            .sort("agreement", "file_name", "image_id", nulls_last=True))


def agreement_map_pictures(queue: pl.DataFrame) -> list[tuple[str, str]]:
    """(caption, agreement_map_key) of each image of the review queue that has an agreement map (the
    fused ones), in the queue's order."""
    return _map_pictures(queue, "agreement_map_key")


def confidence_map_pictures(queue: pl.DataFrame) -> list[tuple[str, str]]:
    """(caption, confidence_map_key) of each image of the review queue that has a confidence map
    (the reliability-fused ones), in the queue's order."""
    return _map_pictures(queue, "confidence_map_key")


def _map_pictures(queue: pl.DataFrame, column: str) -> list[tuple[str, str]]:
    return [(f"{file_name or image_id} ({status}" + ("" if agreement is None else f", agreement {agreement:.2f}") + ")",
             key) for image_id, file_name, status, agreement, key in queue.select(
                "image_id", "file_name", "status", "agreement", column).iter_rows() if key is not None]


def split_reviews(entries: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(annotators' entries, review entries): reviews take no part in fusion or honeypot scoring."""
    is_review = pl.col("annotator") == REVIEW_ANNOTATOR
    return entries.filter(~is_review), entries.filter(is_review)


def apply_reviews(images: pl.DataFrame, reviews: pl.DataFrame) -> pl.DataFrame:
    """The consensus table (images: ConsensusRecord rows) with each image of the review queue that a
    review entry covers (reviews: image_id, mask_key, instance_mask_key, class_pixels dense or sparse;
    one per image, as QA keeps only the newest delivery) released as reviewed: the review's mask, status accepted,
    the annotators' agreement and agreement map kept as the record of their dispute. A review of an
    image not in the queue changes nothing (the ledger says why: reviewed_images)."""
    queued = images.filter(pl.col("status").is_in(REVIEW_STATUSES))["image_id"]
    reviews = reviews.filter(pl.col("image_id").is_in(queued.implode()))
    if reviews.is_empty():  # most builds: the table as it is, not remade row by row (0.5 s at 10,000 images)
        return images
    review_of = {image_id: (mask_key, instance_key, pixels) for image_id, mask_key, instance_key, pixels in
                 reviews.select("image_id", "mask_key", "instance_mask_key",
                                as_sparse(reviews["class_pixels"])).iter_rows()}
    rows = []
    for row in images.iter_rows(named=True):
        review = review_of.get(row["image_id"])
        if review is not None and row["status"] in REVIEW_STATUSES:
            mask_key, instance_key, pixels = review
            row = {**row, "n_annotators": 1, "annotators": [REVIEW_ANNOTATOR], "mask_source": "reviewed",
                   "mask_key": mask_key, "instance_mask_key": instance_key, "confidence_map_key": None,
                   "fusion_rule": None, "vote_weights": None, "status": "accepted", "class_pixels": pixels}
        rows.append(row)
    return pl.DataFrame(rows, schema=images.schema)


def reviewed_images(images: pl.DataFrame) -> set[str]:
    """The images whose released mask is a review's."""
    return set(images.filter(pl.col("mask_source") == "reviewed")["image_id"])


def unapplied_reviews(entries: pl.DataFrame, images: pl.DataFrame) -> set[str]:
    """The review entries (entries: entry_id, image_id, annotator) that released nothing (images:
    the consensus table): they name no file, batch or annotator of the image they meant to correct."""
    reviews = entries.filter(pl.col("annotator") == REVIEW_ANNOTATOR)
    if reviews.is_empty():
        return set()
    return set(reviews.filter(~pl.col("image_id").is_in(sorted(reviewed_images(images))))["entry_id"])


def unapplied_review_reason(file: str, image_id: str, status: str | None) -> str:
    """Why a review entry (`<batch>/<file>`) released nothing: its image is unknown, or not in the queue."""
    if status is None:
        return (f"{file}: a review of an image no annotation batch delivered (image {image_id[:12]}); a review batch "
                "corrects images of the review queue, as `segpipe review export` wrote them")
    return (f"{file}: a review of an image that is not in the review queue (its consensus is {status}), so its "
            "released mask stays; a review batch corrects images of the review queue (`segpipe review export`)")

