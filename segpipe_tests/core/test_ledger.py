import polars as pl

from segpipe.core.ledger import build_ledger, outcome_counts


def test_every_entry_gets_exactly_one_outcome_with_a_reason():
    images = pl.DataFrame({"entry_id": ["e1", "e2", "e3", "e4"], "batch_id": ["b"] * 4,
                           "file_name": ["1.jpg", "2.jpg", "3.jpg", "4.jpg"], "image_id": ["i1", "i2", "i3", "i3"]})
    quarantine = pl.DataFrame({"batch_id": ["b"], "file_name": ["5.jpg"], "stage": ["ingest"],
                               "rule": ["image_undecodable"], "message": ["b/5.jpg: cannot decode"]})
    exclusions = pl.DataFrame({"entry_id": ["e2"], "reason": ["mask_not_empty: no pixel is labelled"]})
    consensus = pl.DataFrame({"image_id": ["i1", "i3"], "status": ["accepted", "low_agreement"], "agreement": [None, 0.41]})
    ledger = build_ledger(images, quarantine, exclusions, consensus, {"i1"})
    outcomes = dict(zip(ledger["file_name"], ledger["outcome"], strict=True))
    assert outcomes == {"1.jpg": "released", "2.jpg": "filtered", "3.jpg": "filtered", "4.jpg": "filtered", "5.jpg": "quarantined"}
    assert "0.410" in ledger.filter(pl.col("file_name") == "3.jpg")["reason"][0]
    assert outcome_counts(ledger) == {"input": 5, "released": 1, "filtered": 3, "quarantined": 1}
