import polars as pl

from segpipe.core.consensus.review import agreement_map_pictures, confidence_map_pictures, review_queue


def test_the_review_queue_names_images_by_file_lowest_agreement_first_with_their_agreement_maps():
    images = pl.DataFrame({
        "image_id": ["i1", "i2", "i3", "i4"], "status": ["low_agreement", "accepted", "annotator_review", "low_agreement"],
        "annotators": [["a", "b"], ["a", "b"], ["c"], ["a", "c"]], "agreement": [0.55, 0.9, None, 0.31],
        "agreement_map_key": ["agreement-maps/i1.png", "agreement-maps/i2.png", None, "agreement-maps/i4.png"],
        "confidence_map_key": [None, "confidence-maps/i2.png", None, "confidence-maps/i4.png"],
        "disputed_classes": [None, None, None, None]},
        schema_overrides={"agreement": pl.Float64, "disputed_classes": pl.List(pl.String)})
    entries = pl.DataFrame({"entry_id": ["e1", "e2", "e3", "e4", "e5"], "image_id": ["i1", "i1", "i3", "i4", "i2"],
                            "file_name": ["b/x.jpg", "a/x.jpg", "c.jpg", "d.jpg", "e.jpg"]})
    queue = review_queue(images, entries)
    assert queue["file_name"].to_list() == ["d.jpg", "a/x.jpg", "c.jpg"]  # by agreement, none last; first name of i1
    assert agreement_map_pictures(queue) == [("d.jpg (low_agreement, agreement 0.31)", "agreement-maps/i4.png"),
                                             ("a/x.jpg (low_agreement, agreement 0.55)", "agreement-maps/i1.png")]
    assert confidence_map_pictures(queue) == [("d.jpg (low_agreement, agreement 0.31)", "confidence-maps/i4.png")]


def test_a_review_replaces_the_consensus_of_a_queued_image_only_and_it_leaves_the_queue():
    from segpipe.core.consensus.review import apply_reviews, split_reviews, unapplied_reviews
    from segpipe.core.ingest.pseudonym import REVIEW_ANNOTATOR
    from segpipe.core.shared.class_pixels import sparse
    from segpipe.core.shared.schemas import ConsensusRecord, polars_schema

    def decided(image_id, status, source="fused"):
        return {"image_id": image_id, "n_annotators": 2, "annotators": ["a", "b"], "excluded_annotators": [],
                "agreement": 0.4, "mask_source": source, "mask_key": f"fused/{image_id}", "instance_mask_key": None,
                "agreement_map_key": f"agreement-maps/{image_id}", "confidence_map_key": f"confidence/{image_id}",
                "fusion_rule": "reliability", "vote_weights": [1.0, 2.0], "status": status, "class_pixels": [{"class_id": 1, "pixels": 256}]}
    images = pl.DataFrame([decided("i1", "low_agreement"), decided("i2", "accepted"),
                           decided("i3", "annotator_review", "single")], schema=polars_schema(ConsensusRecord))
    entries = pl.DataFrame({"entry_id": ["e1", "r1", "r2", "r3", "r9"], "image_id": ["i1", "i1", "i2", "i3", "i9"],
                            "annotator": ["a", REVIEW_ANNOTATOR, REVIEW_ANNOTATOR, REVIEW_ANNOTATOR, REVIEW_ANNOTATOR],
                            "mask_key": ["m/e1", "m/r1", "m/r2", "m/r3", "m/r9"], "instance_mask_key": [None] * 5,
                            "class_pixels": [[2] * 256] * 5})
    people, reviews = split_reviews(entries)
    assert people["entry_id"].to_list() == ["e1"] and reviews["entry_id"].to_list() == ["r1", "r2", "r3", "r9"]
    after = ConsensusRecord.validate(apply_reviews(images, reviews))
    rows = {row["image_id"]: row for row in after.iter_rows(named=True)}
    for image_id in ("i1", "i3"):
        assert {k: rows[image_id][k] for k in ("mask_source", "mask_key", "status", "annotators", "class_pixels")} == {
            "mask_source": "reviewed", "mask_key": f"m/r{image_id[1]}", "status": "accepted",
            "annotators": [REVIEW_ANNOTATOR], "class_pixels": sparse([2] * 256)}
    # the annotators' dispute stays on record
    assert rows["i1"]["agreement_map_key"] == "agreement-maps/i1" and rows["i1"]["agreement"] == 0.4
    assert rows["i2"] == images.row(1, named=True)  # not in the queue: as it was
    assert review_queue(after, entries.with_columns(file_name=pl.col("entry_id"))).is_empty()
    assert unapplied_reviews(entries, after) == {"r2", "r9"}
    # reviews of images out of the queue only: the table as it was
    assert apply_reviews(images, reviews.filter(pl.col("entry_id").is_in(["r2", "r9"]))).equals(images)
