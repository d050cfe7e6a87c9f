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
