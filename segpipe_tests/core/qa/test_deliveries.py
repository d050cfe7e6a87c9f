"""The newest delivery of an image by an annotator counts; what it replaces is filtered, naming it."""

from datetime import UTC, datetime

import numpy as np
import polars as pl

from segpipe.core.consensus.fusion import build_consensus
from segpipe.core.consensus.settings import ConsensusSettings
from segpipe.core.qa.deliveries import Superseded, replaced_deliveries, superseded_entries
from segpipe.core.qa.rules import evaluate_entries, excluded_entries
from segpipe.core.qa.settings import QaSettings
from segpipe.core.rasterize.label_masks import class_pixels
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.shared.png import encode_mask_png
from segpipe.core.taxonomy.model import parse_taxonomy

MARCH, APRIL, MAY = (datetime(2026, month, 1, 9, 30, tzinfo=UTC) for month in (3, 4, 5))
TAXONOMY = parse_taxonomy("name: t\nversion: 1\nunmapped: void\nclasses: [{id: 0, name: road, color: [1, 1, 1]},"
                          " {id: 1, name: car, color: [2, 2, 2]}]\nmappings: {}\n", "t.yaml")
NO_UNMAPPED = pl.DataFrame(schema={"entry_id": pl.String, "raw_label": pl.String})


def deliveries(*rows: tuple[str, str, str, str, str, datetime | None]) -> pl.DataFrame:
    """Entries as (entry_id, batch_id, file_name, image_id, annotator, landed_at)."""
    return pl.DataFrame(rows, schema={"entry_id": pl.String, "batch_id": pl.String, "file_name": pl.String,
                                      "image_id": pl.String, "annotator": pl.String,
                                      "landed_at": pl.Datetime("us", "UTC")}, orient="row")


def test_a_later_batch_replaces_an_earlier_one_whatever_their_ids():
    entries = deliveries(("stale", "b9_first", "a.jpg", "img", "ann", MARCH),
                         ("fix", "b1_fix", "a_fixed.jpg", "img", "ann", APRIL),
                         ("other", "b9_first", "b.jpg", "img", "bob", MARCH))
    assert superseded_entries(entries) == {"stale": Superseded("fix", "b1_fix/a_fixed.jpg", replaced=True)}
    assert superseded_entries(entries)["stale"].reason() == "replaced by b1_fix/a_fixed.jpg, delivered later"
    assert replaced_deliveries(entries) == {"fix": ["b9_first/a.jpg"]}


def test_batches_that_landed_at_the_same_moment_are_ordered_by_id():
    entries = deliveries(("x", "b2", "a.jpg", "img", "ann", MARCH), ("y", "b10", "a.jpg", "img", "ann", MARCH))
    assert superseded_entries(entries) == {"y": Superseded("x", "b2/a.jpg", replaced=True)}  # "b2" > "b10"


def test_an_export_read_outside_the_landing_zone_counts_as_the_oldest():
    entries = deliveries(("checked", "z_export", "a.jpg", "img", "ann", None),
                         ("x", "b1", "a.jpg", "img", "ann", MARCH))
    assert superseded_entries(entries) == {"checked": Superseded("x", "b1/a.jpg", replaced=True)}


def test_a_copy_in_one_batch_stays_a_copy_and_the_newest_batch_replaces_every_older_entry():
    entries = deliveries(("old", "b1", "a.jpg", "img", "ann", MARCH),
                         ("old_copy", "b1", "a_copy.jpg", "img", "ann", MARCH),
                         ("new", "b2", "z.jpg", "img", "ann", APRIL),
                         ("new_copy", "b2", "z_copy.jpg", "img", "ann", APRIL))
    superseded = superseded_entries(entries)
    assert {eid: why.reason() for eid, why in superseded.items()} == {
        "old": "replaced by b2/z.jpg, delivered later",
        "old_copy": "replaced by b2/z.jpg, delivered later",
        "new_copy": "same image and annotator as b2/z.jpg, earlier in the same batch",
    }
    assert replaced_deliveries(entries) == {"new": ["b1/a.jpg", "b1/a_copy.jpg"]}  # the copy is no replacement


def qa_entries(masks: dict[str, np.ndarray],
               rows: list[tuple[str, str, str, str, str, bool, datetime]]) -> pl.DataFrame:
    """Entries as evaluate_entries and build_consensus take them, from
    (entry_id, batch_id, file_name, image_id, annotator, is_gold, landed_at); the mask key is the entry id."""
    frame = pl.DataFrame(rows, schema={"entry_id": pl.String, "batch_id": pl.String, "file_name": pl.String,
                                       "image_id": pl.String, "annotator": pl.String, "is_gold": pl.Boolean,
                                       "landed_at": pl.Datetime("us", "UTC")}, orient="row")
    return frame.with_columns(
        mask_key=pl.col("entry_id"), instance_mask_key=pl.lit(None, pl.String), width=pl.lit(4), height=pl.lit(4),
        perceptual_hash=pl.lit("0123456789abcdef"),
        class_pixels=pl.Series([class_pixels(masks[e]) for e in frame["entry_id"]], dtype=pl.List(pl.Int64)))


def test_a_corrected_honeypot_is_scored_once_on_the_correction():
    """alice labelled the honeypot all car in March and corrected it to all road in April, as gold has it."""
    road, car = np.zeros((4, 4), np.uint8), np.ones((4, 4), np.uint8)
    masks = {"gold": road, "march": car, "april": road}
    entries = qa_entries(masks, [("gold", "b0_gold", "h.jpg", "h", "gold", True, MARCH),
                                 ("march", "b1", "h.jpg", "h", "alice", False, MARCH),
                                 ("april", "b2", "h.jpg", "h", "alice", False, APRIL)])
    results = evaluate_entries(entries, NO_UNMAPPED, TAXONOMY, QaSettings(0.5, 0))
    excluded = dict(excluded_entries(results).iter_rows())
    assert excluded == {"march": "entry_not_superseded: replaced by b2/h.jpg, delivered later"}
    usable = entries.filter(~pl.col("entry_id").is_in(list(excluded)))
    store = ArtefactStore.in_memory({key: encode_mask_png(mask) for key, mask in masks.items()})
    _, scores, _, _ = build_consensus(usable, store, ConsensusSettings(0.5, 0.6), 255)
    assert scores.select("annotator", "n_honeypots", "mean_iou").rows() == [("alice", 1, 1.0)]

