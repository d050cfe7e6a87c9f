"""The review queue: images whose annotators disagree too much, whose annotator is under review, or
whose model mask disagrees with the people's (the classes in dispute listed).

A reviewer opens an image by its file name and looks at its agreement map first (white where all
annotators agree, darker where they split), then, for a reliability-fused image, its confidence map
(white where the released class has all the vote weight behind it), so the queue names all three.
"""

import polars as pl

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
