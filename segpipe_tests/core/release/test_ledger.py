import polars as pl

from segpipe.core.release.ledger import build_ledger, outcome_counts


def test_every_entry_gets_exactly_one_outcome_with_a_reason():
    images = pl.DataFrame({"entry_id": ["e1", "e2", "e3", "e4", "e6", "e7"], "batch_id": ["b"] * 6,
                           "file_name": ["1.jpg", "2.jpg", "3.jpg", "4.jpg", "6.jpg", "7.jpg"],
                           "image_id": ["i1", "i2", "i3", "i3", "i1", "i4"],
                           "annotator": ["ann", "ann", "ann", "bob", "carol", "carol"]})
    quarantine = pl.DataFrame({"batch_id": ["b"], "file_name": ["5.jpg"], "stage": ["ingest"],
                               "rule": ["image_undecodable"], "message": ["b/5.jpg: cannot decode"]})
    exclusions = pl.DataFrame({"entry_id": ["e2"], "reason": ["mask_not_empty: no pixel is labelled"]})
    consensus = pl.DataFrame({"image_id": ["i1", "i3", "i4"], "status": ["accepted", "low_agreement", "annotator_review"],
                              "agreement": [None, 0.41, None], "excluded_annotators": [["carol"], [], []]})
    ledger = build_ledger(images, quarantine, exclusions, consensus, {"i1"})
    outcomes = dict(zip(ledger["file_name"], ledger["outcome"], strict=True))
    assert outcomes == {"1.jpg": "released", "2.jpg": "filtered", "3.jpg": "filtered", "4.jpg": "filtered",
                        "5.jpg": "quarantined", "6.jpg": "filtered", "7.jpg": "filtered"}
    reasons = dict(zip(ledger["file_name"], ledger["reason"], strict=True))
    assert "0.410" in reasons["3.jpg"]
    assert reasons["6.jpg"].startswith("carol scored below consensus.min_honeypot_iou")  # left out of i1's fusion
    assert "sent to review" in reasons["7.jpg"]
    assert outcome_counts(ledger) == {"input": 7, "released": 1, "filtered": 5, "quarantined": 1}
