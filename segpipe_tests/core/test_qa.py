import numpy as np
import polars as pl

from segpipe.core.label_masks import class_pixels
from segpipe.core.qa import QA_RULES, duplicate_entries, evaluate_entries, excluded_entries, summarize_rule
from segpipe.core.settings import QaSettings
from segpipe.core.taxonomy import parse_taxonomy

TAXONOMY = parse_taxonomy("""
name: t
version: 1
unmapped: void
classes: [{id: 0, name: road, color: [1, 1, 1]}, {id: 1, name: car, color: [2, 2, 2]}]
mappings: {}
""", "t.yaml")
QA = QaSettings(max_unlabeled_fraction=0.25, max_error_failures=0)

MASKS = {
    "good": np.zeros((4, 4), dtype=np.uint8),
    "small": np.zeros((3, 4), dtype=np.uint8),
    "stray": np.full((4, 4), 9, dtype=np.uint8),
    "empty": np.full((4, 4), 255, dtype=np.uint8),
    "holes": np.array([[0, 0, 255, 255]] * 4, dtype=np.uint8),
}


def entries(names, image_ids=None):
    return pl.DataFrame({
        "entry_id": names, "batch_id": ["b"] * len(names), "file_name": [f"{n}.jpg" for n in names],
        "image_id": image_ids or names, "annotator": ["ann"] * len(names), "mask_key": names,
        "width": [4] * len(names), "height": [4] * len(names),
        "class_pixels": [class_pixels(MASKS[n if n in MASKS else "good"]) for n in names],
        "perceptual_hash": [f"{i * 0x0F0F0F0F0F0F:016x}" for i in range(len(names))],  # far apart
    })


def run(frame, unmapped=None):
    unmapped = unmapped if unmapped is not None else pl.DataFrame(schema={"entry_id": pl.String, "raw_label": pl.String})
    return evaluate_entries(frame, unmapped, TAXONOMY, QA)


def failures(results, name):
    return set(results.filter((pl.col("entry_id") == name) & ~pl.col("passed"))["check_id"])


def test_each_rule_fails_only_the_entry_that_breaks_it():
    results = run(entries(["good", "small", "stray", "empty", "holes"]))
    assert failures(results, "good") == set()
    assert failures(results, "small") == {"mask_matches_image_size"}
    assert failures(results, "stray") == {"mask_ids_in_taxonomy"}
    assert failures(results, "empty") == {"mask_not_empty", "unlabeled_fraction"}
    assert failures(results, "holes") == {"unlabeled_fraction"}
    assert results.height == 5 * len(QA_RULES)


def test_unmapped_labels_warn_under_the_void_policy():
    unmapped = pl.DataFrame({"entry_id": ["good"], "raw_label": ["fire hydrant"]})
    results = run(entries(["good"]), unmapped)
    row = results.filter(pl.col("check_id") == "labels_mapped")
    assert row["passed"].to_list() == [False] and row["severity"].to_list() == ["WARN"]
    assert "fire hydrant" in row["reason"][0]


def test_exclusions_keep_the_first_reason_and_skip_flag_only_rules():
    results = run(entries(["good", "small", "holes"]))
    excluded = dict(excluded_entries(results).iter_rows())
    assert set(excluded) == {"small"}
    assert excluded["small"] == "mask_matches_image_size: mask has 12 pixels, image is 4x4 (16)"
    count, worst = summarize_rule(results, "unlabeled_fraction")
    assert count == 1 and worst["file_name"].to_list() == ["holes.jpg"]


def test_a_repeated_image_and_annotator_is_a_duplicate_of_the_first_entry():
    frame = entries(["good", "good_copy"], image_ids=["same", "same"])
    assert duplicate_entries(frame) == {"good_copy": "b/good.jpg"}
