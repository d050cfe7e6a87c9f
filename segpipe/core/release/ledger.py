"""The item ledger: where every input entry ended up, so released + filtered + quarantined = input."""

import polars as pl

from segpipe.core.consensus.review import reviewed_images, unapplied_review_reason
from segpipe.core.ingest.pseudonym import REVIEW_ANNOTATOR, is_model
from segpipe.core.qa.deliveries import replaced_deliveries
from segpipe.core.shared.schemas import LedgerRecord, polars_schema

LEDGER_SCHEMA = polars_schema(LedgerRecord)


def build_ledger(
    images: pl.DataFrame,
    quarantine: pl.DataFrame,
    qa_exclusions: pl.DataFrame,
    consensus: pl.DataFrame,
    released_image_ids: set[str],
    unselected_reason: dict[str, str] | None = None,
) -> pl.DataFrame:
    """One row per input entry: accepted entries from `images`, rejected ones from `quarantine`.
    unselected_reason: accepted images sampling left out, with why. An entry that replaced earlier
    deliveries of its image by its annotator names them in `replaces` (core/qa/deliveries.py); they
    are filtered by QA, with a reason naming it. A review entry (core/consensus/review.py) names the
    annotators' entries whose consensus it replaced too; one that replaced none is filtered, saying why."""
    unselected_reason = unselected_reason or {}
    replaced = replaced_deliveries(images)
    excluded = dict(qa_exclusions.select("entry_id", "reason").iter_rows())
    disputed = dict(consensus.select("image_id", "disputed_classes").iter_rows())
    status = {image_id: (state, score) for image_id, state, score in consensus.select("image_id", "status", "agreement").iter_rows()}
    low_scorers = {(image_id, annotator) for image_id, annotators in consensus.select(
        "image_id", "excluded_annotators").iter_rows() for annotator in annotators}
    corrected = _corrected_entries(images, excluded, low_scorers, reviewed_images(consensus))
    rows = []
    for entry_id, batch_id, file_name, image_id, annotator in images.select(
            "entry_id", "batch_id", "file_name", "image_id", "annotator").iter_rows():
        is_review = annotator == REVIEW_ANNOTATOR
        replaces = replaced.get(entry_id, []) + (corrected.get(image_id, []) if is_review else [])
        base = {"batch_id": batch_id, "file_name": file_name, "image_id": image_id,
                "replaces": ";".join(replaces) or None}
        state = status.get(image_id, ("", None))[0]
        if entry_id in excluded:
            rows.append({**base, "outcome": "filtered", "stage": "qa", "reason": excluded[entry_id]})
        elif is_review and image_id not in corrected:
            rows.append({**base, "outcome": "filtered", "stage": "consensus",
                         "reason": unapplied_review_reason(f"{batch_id}/{file_name}", image_id, state or None)})
        elif (image_id, annotator) in low_scorers:
            rows.append({**base, "outcome": "filtered", "stage": "consensus",
                         "reason": f"{annotator} scored below consensus.min_honeypot_iou on honeypots; left out"})
        elif image_id in released_image_ids:
            rows.append({**base, "outcome": "released", "stage": "release", "reason": None})
        elif image_id in unselected_reason:
            rows.append({**base, "outcome": "filtered", "stage": "sampling", "reason": unselected_reason[image_id]})
        elif state == "low_agreement":
            rows.append({**base, "outcome": "filtered", "stage": "consensus",
                         "reason": f"annotator agreement {status[image_id][1]:.3f} below the minimum; sent to review"})
        elif state == "model_review":
            rows.append({**base, "outcome": "filtered", "stage": "consensus",
                         "reason": "a model's mask and the people's disagree on "
                                   f"{', '.join(disputed.get(image_id) or [])}; sent to review"})
        elif is_model(annotator):
            rows.append({**base, "outcome": "filtered", "stage": "consensus",
                         "reason": f"{annotator}'s prediction is scored but not released: no person's mask of "
                                   "this image is (consensus.models_vote is off, or the people's was not accepted)"})
        elif state == "annotator_review":
            rows.append({**base, "outcome": "filtered", "stage": "consensus",
                         "reason": "labelled by an annotator below consensus.min_honeypot_iou; sent to review"})
        else:
            rows.append({**base, "outcome": "filtered", "stage": "consensus",
                         "reason": "every annotation of this image was excluded by QA"})
    rows.extend(
        {"batch_id": b, "file_name": f, "image_id": None, "outcome": "quarantined", "stage": stage,
         "reason": f"{rule}: {message}", "replaces": None}
        for b, f, stage, rule, message in quarantine.select("batch_id", "file_name", "stage", "rule", "message").iter_rows()
    )
    return LedgerRecord.validate(pl.DataFrame(rows, schema=LEDGER_SCHEMA).sort("batch_id", "file_name"))


def _corrected_entries(images: pl.DataFrame, excluded: dict[str, str], low_scorers: set[tuple[str, str]],
                       reviewed: set[str]) -> dict[str, list[str]]:
    """Per reviewed image, `<batch>/<file>` of the annotators' entries its consensus was made of,
    which the review replaced."""
    corrected: dict[str, list[str]] = {image_id: [] for image_id in reviewed}
    for entry_id, batch_id, file_name, image_id, annotator in images.sort("batch_id", "file_name").select(
            "entry_id", "batch_id", "file_name", "image_id", "annotator").iter_rows():
        if (image_id in corrected and annotator != REVIEW_ANNOTATOR and entry_id not in excluded
                and (image_id, annotator) not in low_scorers):
            corrected[image_id].append(f"{batch_id}/{file_name}")
    return corrected


def outcome_counts(ledger: pl.DataFrame) -> dict[str, int]:
    counts = dict(ledger.group_by("outcome").len().iter_rows())
    return {"input": ledger.height, **{k: counts.get(k, 0) for k in ("released", "filtered", "quarantined")}}
