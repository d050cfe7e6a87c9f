from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pandera.errors
import polars as pl
import pytest

from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.rasterize.label_masks import class_pixels
from segpipe.core.qa.mask_structure import mask_structure
from segpipe.core.shared.png import encode_mask_png
from segpipe.core.qa.rules import QA_RULES, evaluate_entries, excluded_entries, summarize_rule, with_thumbnails
from segpipe.core.shared.schemas import QaResultRecord, polars_schema
from segpipe.core.qa.settings import QaSettings
from segpipe.core.taxonomy.model import parse_taxonomy

TAXONOMY = parse_taxonomy("""
name: t
version: 1
unmapped: void
classes: [{id: 0, name: road, color: [1, 1, 1]}, {id: 1, name: car, color: [2, 2, 2]}]
mappings: {}
""", "t.yaml")
QA = QaSettings(max_unlabeled_fraction=0.25, max_error_failures=0)
LANDED = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

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
        "landed_at": [LANDED] * len(names), "image_id": image_ids or names, "annotator": ["ann"] * len(names),
        "mask_key": names,
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


def test_a_copy_in_the_same_batch_is_filtered_in_favour_of_the_first_file():
    results = run(entries(["good", "good_copy"], image_ids=["same", "same"]))
    assert failures(results, "good") == set()
    assert dict(excluded_entries(results).iter_rows()) == {
        "good_copy": "entry_not_superseded: same image and annotator as b/good.jpg, earlier in the same batch"}


def fragment_results(masks: dict[str, np.ndarray], min_fragment_px: int, store: dict | None = None) -> pl.DataFrame:
    objects = store if store is not None else {}
    objects.update({name: encode_mask_png(mask) for name, mask in masks.items()})
    frame = pl.DataFrame({
        "entry_id": list(masks), "batch_id": "b", "file_name": [f"{n}.jpg" for n in masks], "landed_at": LANDED,
        "image_id": list(masks),
        "annotator": "ann", "mask_key": list(masks), "width": [m.shape[1] for m in masks.values()],
        "height": [m.shape[0] for m in masks.values()], "class_pixels": [class_pixels(m) for m in masks.values()],
        "perceptual_hash": [f"{i * 0x0F0F0F0F0F0F:016x}" for i in range(len(masks))],
    })
    settings = replace(QA, min_fragment_px=min_fragment_px)
    structure = mask_structure(frame, TAXONOMY, min_fragment_px, ArtefactStore.in_memory(objects))
    results = evaluate_entries(frame, pl.DataFrame(schema={"entry_id": pl.String, "raw_label": pl.String}),
                               TAXONOMY, settings, structure=structure)
    return results.filter(pl.col("check_id") == "tiny_fragments").sort("entry_id")


def test_tiny_fragments_name_the_classes_the_count_the_smallest_and_where():
    specks = np.zeros((6, 8), dtype=np.uint8)
    specks[0, 7] = 1  # a 1-pixel car in the corner
    specks[2:4, 2] = 1  # a 2-pixel car
    specks[5, 0:2] = 1  # another 2-pixel car, lower down
    specks[1:3, 5:7] = 1  # a 4-pixel car: not a fragment under 3 px
    specks[4, 4:6] = 255  # ignore is never a fragment
    islands = np.ones((4, 4), dtype=np.uint8)
    islands[1, 1] = 0  # a road speck inside the car
    clean = np.zeros((4, 4), dtype=np.uint8)
    clean[:, 2:] = 1
    results = fragment_results({"specks": specks, "islands": islands, "clean": clean}, 3)
    assert results["passed"].to_list() == [True, False, False]
    assert results["reason"].to_list()[1:] == [
        "1 fragment under 3 px of road (1), the smallest 1 px: road 1 px at x 1-1, y 1-1",
        "3 fragments under 3 px of car (3), the smallest 1 px: car 1 px at x 7-7, y 0-0; car 2 px at x 2-2, y 2-3; "
        "car 2 px at x 0-1, y 5-5",
    ]
    assert results["severity"].unique().to_list() == ["WARN"] and not results["excludes_entry"].any()


def test_more_fragments_than_shown_are_counted_and_the_size_is_part_of_the_memo():
    checker = np.indices((4, 6)).sum(axis=0).astype(np.uint8) % 2  # 24 one-pixel regions: 12 road, 12 car
    store: dict = {}
    [reason] = fragment_results({"checker": checker}, 2, store)["reason"].to_list()
    assert reason == ("24 fragments under 2 px of road (12), car (12), the smallest 1 px: road 1 px at x 0-0, y 0-0; "
                      "car 1 px at x 1-1, y 0-0; road 1 px at x 2-2, y 0-0; and 21 more")
    assert fragment_results({"checker": checker}, 1, store)["passed"].to_list() == [True]  # off: nothing decoded
    assert fragment_results({"checker": checker}, 3, store)["reason"][0].startswith("24 fragments under 3 px")
    assert len([k for k in store if k.startswith("qa-mask-structure/")]) == 2


def test_the_results_are_validated_once_when_their_thumbnails_are_joined():
    results = run(entries(["good", "stray"]))
    assert dict(results.schema) == polars_schema(QaResultRecord)
    thumbnails = pl.DataFrame(schema={"entry_id": pl.String, "check_id": pl.String, "thumbnail_key": pl.String})
    assert with_thumbnails(results, thumbnails).equals(results)
    with pytest.raises(pandera.errors.SchemaError, match="severity"):
        with_thumbnails(results.with_columns(severity=pl.lit("FATAL")), thumbnails)
