from datetime import UTC, datetime

import polars as pl

from segpipe.core.ingest.pseudonym import REVIEW_ANNOTATOR
from segpipe.core.release.ledger import build_ledger, outcome_counts

MARCH, APRIL = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)


def test_every_entry_gets_exactly_one_outcome_with_a_reason():
    images = pl.DataFrame({"entry_id": ["e1", "e2", "e3", "e4", "e6", "e7"], "batch_id": ["b"] * 6,
                           "file_name": ["1.jpg", "2.jpg", "3.jpg", "4.jpg", "6.jpg", "7.jpg"],
                           "image_id": ["i1", "i2", "i3", "i3", "i1", "i4"],
                           "annotator": ["ann", "ann", "ann", "bob", "carol", "carol"], "landed_at": [MARCH] * 6})
    quarantine = pl.DataFrame({"batch_id": ["b"], "file_name": ["5.jpg"], "stage": ["ingest"],
                               "rule": ["image_undecodable"], "message": ["b/5.jpg: cannot decode"]})
    exclusions = pl.DataFrame({"entry_id": ["e2"], "reason": ["mask_not_empty: no pixel is labelled"]})
    consensus = pl.DataFrame({"image_id": ["i1", "i3", "i4"], "status": ["accepted", "low_agreement", "annotator_review"],
                              "agreement": [None, 0.41, None], "excluded_annotators": [["carol"], [], []],
                              "mask_source": ["fused", "fused", "single"],
                              "disputed_classes": [None, None, None]}, schema_overrides={"disputed_classes": pl.List(pl.String)})
    ledger = build_ledger(images, quarantine, exclusions, consensus, {"i1"})
    outcomes = dict(zip(ledger["file_name"], ledger["outcome"], strict=True))
    assert outcomes == {"1.jpg": "released", "2.jpg": "filtered", "3.jpg": "filtered", "4.jpg": "filtered",
                        "5.jpg": "quarantined", "6.jpg": "filtered", "7.jpg": "filtered"}
    reasons = dict(zip(ledger["file_name"], ledger["reason"], strict=True))
    assert "0.410" in reasons["3.jpg"]
    assert reasons["6.jpg"].startswith("carol scored below consensus.min_honeypot_iou")  # left out of i1's fusion
    assert "sent to review" in reasons["7.jpg"]
    assert outcome_counts(ledger) == {"input": 7, "released": 1, "filtered": 5, "quarantined": 1}
    assert ledger["replaces"].null_count() == ledger.height


def test_an_entry_names_the_earlier_deliveries_it_replaced():
    """ann delivered i1 in March, corrected it in April and again in May; QA filtered the two stale ones."""
    images = pl.DataFrame({
        "entry_id": ["old", "older", "new", "bob"], "batch_id": ["b2", "b1", "b3", "b1"],
        "file_name": ["a.jpg", "a.jpg", "x/a.jpg", "c.jpg"], "image_id": ["i1"] * 4,
        "annotator": ["ann", "ann", "ann", "bob"],
        "landed_at": [APRIL, MARCH, datetime(2026, 5, 1, tzinfo=UTC), MARCH]})
    quarantine = pl.DataFrame(schema={"batch_id": pl.String, "file_name": pl.String, "stage": pl.String,
                                      "rule": pl.String, "message": pl.String})
    exclusions = pl.DataFrame({"entry_id": ["old", "older"], "reason": [
        "entry_not_superseded: replaced by b3/x/a.jpg, delivered later"] * 2})
    consensus = pl.DataFrame({"image_id": ["i1"], "status": ["accepted"], "agreement": [0.9],
                              "excluded_annotators": [[]], "mask_source": ["fused"], "disputed_classes": [[]]})
    ledger = build_ledger(images, quarantine, exclusions, consensus, {"i1"})
    rows = {(r["batch_id"], r["file_name"]): (r["outcome"], r["replaces"]) for r in ledger.iter_rows(named=True)}
    assert rows == {("b3", "x/a.jpg"): ("released", "b1/a.jpg;b2/a.jpg"), ("b2", "a.jpg"): ("filtered", None),
                    ("b1", "a.jpg"): ("filtered", None), ("b1", "c.jpg"): ("released", None)}


def test_a_review_names_the_entries_whose_consensus_it_replaced_and_one_that_replaced_nothing_says_why():
    """i1 was in the queue and is reviewed (twice: the later review counts); i2 was never in the queue;
    nobody but the reviewer delivered i9. ann's i1 entry was replaced by her own correction first."""
    images = pl.DataFrame({
        "entry_id": ["a0", "a1", "b1", "c1", "r1", "r1x", "a2", "r2", "r9"],
        "batch_id": ["b1", "b2", "b1", "b1", "rev2", "rev1", "b1", "rev2", "rev2"],
        "file_name": ["1.jpg", "1.jpg", "1b.jpg", "1c.jpg", "images/1.jpg", "images/1.jpg", "2.jpg", "images/2.jpg",
                      "images/9.jpg"],
        "image_id": ["i1", "i1", "i1", "i1", "i1", "i1", "i2", "i2", "i9"],
        "annotator": ["ann", "ann", "bob", "carol", REVIEW_ANNOTATOR, REVIEW_ANNOTATOR, "ann", REVIEW_ANNOTATOR,
                      REVIEW_ANNOTATOR],
        "landed_at": [MARCH, APRIL, MARCH, MARCH, datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC),
                      MARCH, datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)]})
    quarantine = pl.DataFrame(schema={"batch_id": pl.String, "file_name": pl.String, "stage": pl.String,
                                      "rule": pl.String, "message": pl.String})
    exclusions = pl.DataFrame({"entry_id": ["a0", "r1x"], "reason": [
        "entry_not_superseded: replaced by b2/1.jpg, delivered later",
        "entry_not_superseded: replaced by rev2/images/1.jpg, delivered later"]})
    consensus = pl.DataFrame({"image_id": ["i1", "i2"], "status": ["accepted", "accepted"], "agreement": [0.4, 0.9],
                              "excluded_annotators": [["carol"], []], "mask_source": ["reviewed", "single"],
                              "disputed_classes": [None, None]}, schema_overrides={"disputed_classes": pl.List(pl.String)})
    ledger = build_ledger(images, quarantine, exclusions, consensus, {"i1", "i2"})
    rows = {f"{r['batch_id']}/{r['file_name']}": r for r in ledger.iter_rows(named=True)}
    # the review replaced the earlier review and the consensus of ann's current entry and bob's (carol was
    # left out of it)
    assert (rows["rev2/images/1.jpg"]["outcome"], rows["rev2/images/1.jpg"]["replaces"]) == (
        "released", "rev1/images/1.jpg;b1/1b.jpg;b2/1.jpg")
    assert [rows[name]["outcome"] for name in ("b2/1.jpg", "b1/1b.jpg", "b1/1c.jpg", "rev1/images/1.jpg")] == [
        "released", "released", "filtered", "filtered"]
    outside, unknown = rows["rev2/images/2.jpg"], rows["rev2/images/9.jpg"]
    assert (outside["outcome"], outside["stage"], outside["replaces"]) == ("filtered", "consensus", None)
    assert outside["reason"].startswith("rev2/images/2.jpg: a review of an image that is not in the review queue "
                                        "(its consensus is accepted)")
    assert (unknown["outcome"], unknown["stage"]) == ("filtered", "consensus")
    assert unknown["reason"].startswith("rev2/images/9.jpg: a review of an image no annotation batch delivered")
    assert rows["b1/2.jpg"]["outcome"] == "released"
    assert outcome_counts(ledger) == {"input": 9, "released": 4, "filtered": 5, "quarantined": 0}


def test_a_models_entries_and_the_images_it_disputes_are_filtered_with_why():
    """i1: the people's mask is released, the model's entry with it; i2: the model disputes car, so the
    image is under review; i3: only the model labelled it, so nothing of it is released."""
    images = pl.DataFrame({"entry_id": ["p1", "m1", "p2", "m2", "m3"], "batch_id": ["b", "m", "b", "m", "m"],
                           "file_name": ["1.jpg", "1.jpg", "2.jpg", "2.jpg", "3.jpg"],
                           "image_id": ["i1", "i1", "i2", "i2", "i3"],
                           "annotator": ["ann", "model:seg", "ann", "model:seg", "model:seg"], "landed_at": [MARCH] * 5})
    quarantine = pl.DataFrame(schema={"batch_id": pl.String, "file_name": pl.String, "stage": pl.String,
                                      "rule": pl.String, "message": pl.String})
    exclusions = pl.DataFrame(schema={"entry_id": pl.String, "reason": pl.String})
    consensus = pl.DataFrame({"image_id": ["i1", "i2", "i3"], "status": ["accepted", "model_review", "annotator_excluded"],
                              "agreement": [None, None, None], "excluded_annotators": [[], [], []],
                              "disputed_classes": [[], ["car", "road"], None],
                              "mask_source": ["single", "single", None]},
                             schema_overrides={"agreement": pl.Float64})
    ledger = build_ledger(images, quarantine, exclusions, consensus, {"i1"})
    rows = {(r["batch_id"], r["file_name"]): (r["outcome"], r["reason"]) for r in ledger.iter_rows(named=True)}
    assert rows[("b", "1.jpg")] == rows[("m", "1.jpg")] == ("released", None)
    assert rows[("b", "2.jpg")] == rows[("m", "2.jpg")] == (
        "filtered", "a model's mask and the people's disagree on car, road; sent to review")
    assert rows[("m", "3.jpg")][0] == "filtered" and rows[("m", "3.jpg")][1].startswith(
        "model:seg's prediction is scored but not released")
    assert outcome_counts(ledger) == {"input": 5, "released": 2, "filtered": 3, "quarantined": 0}
