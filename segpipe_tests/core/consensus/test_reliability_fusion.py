"""Reliability fusion through build_consensus: who outweighs whom, the confidence map, the fallback
to plurality, the reliability table, and when a later build fuses an image again."""

from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from segpipe.core.consensus.annotator_reliability import annotator_summary
from segpipe.core.consensus.fusion import build_consensus
from segpipe.core.consensus.settings import ConsensusSettings
from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.shared.png import encode_mask_png
from segpipe_tests.core.consensus.test_consensus import counting_reads, masks_by_key

IGNORE = 255
SETTINGS = ConsensusSettings(min_agreement=0.0)


def street() -> np.ndarray:
    """Class 0 above, class 1 below: a 20x20 truth."""
    truth = np.zeros((20, 20), np.uint8)
    truth[10:] = 1
    return truth


def with_block(mask: np.ndarray, rows: slice, cols: slice, value: int) -> np.ndarray:
    out = mask.copy()
    out[rows, cols] = value
    return out


def careful_and_careless() -> dict[str, np.ndarray]:
    """On the honeypot, careful is right and the other two each paint a different block of class 0
    as class 2; on "shared" the other two paint the same block as 2 (both wrong, outvoting careful)."""
    truth = street()
    return {
        "gold": truth, "careful-g": truth, "steady-g": with_block(truth, slice(0, 5), slice(0, 5), 2),
        "hasty-g": with_block(truth, slice(0, 6), slice(10, 20), 2),
        "careful": truth, "steady": with_block(truth, slice(2, 6), slice(2, 8), 2),
        "hasty": with_block(truth, slice(2, 6), slice(2, 8), 2),
    }


ASSIGNMENTS = [("g", "gold", "gold"), ("g", "careful", "careful-g"), ("g", "steady", "steady-g"),
               ("g", "hasty", "hasty-g"), ("shared", "careful", "careful"), ("shared", "steady", "steady"),
               ("shared", "hasty", "hasty")]


def run(settings: ConsensusSettings, assignments=ASSIGNMENTS, masks=None, store=None, objects=None):
    masks = masks or careful_and_careless()
    objects = objects if objects is not None else {key: encode_mask_png(mask) for key, mask in masks.items()}
    store = store or ArtefactStore.in_memory(objects)
    images, board, _, table = build_consensus(masks_by_key(assignments, masks), store, settings, IGNORE,
                                              class_names={0: "road", 1: "sidewalk", 2: "car"})
    return {r["image_id"]: r for r in images.iter_rows(named=True)}, board, table, objects


def test_a_careful_annotator_outweighs_two_careless_ones_who_agree_where_plurality_follows_them():
    by_id, _, table, objects = run(SETTINGS)
    shared = by_id["shared"]
    assert (shared["mask_source"], shared["fusion_rule"], shared["annotators"]) == ("fused", "reliability",
                                                                                   ["careful", "hasty", "steady"])
    assert np.array_equal(decode_mask_png(objects[shared["mask_key"]]), street())
    careful, hasty, steady = shared["vote_weights"]
    assert careful > hasty + steady
    # The confidence map: the careful annotator's share of the weight on the disputed block, 255 elsewhere.
    confidence = decode_mask_png(objects[shared["confidence_map_key"]])
    expected = np.full((20, 20), 255, np.uint8)
    expected[2:6, 2:8] = round(255 * careful / (careful + hasty + steady))
    assert np.array_equal(confidence, expected)
    # The agreement map is the plain vote share, whatever the rule: 1 of 3 on the block.
    agreement = decode_mask_png(objects[shared["agreement_map_key"]])
    assert agreement[3, 3] == round(255 * 2 / 3) and agreement[15, 15] == 255
    assert shared["class_pixels"][:2] == [{"class_id": 0, "pixels": 200}, {"class_id": 1, "pixels": 200}]

    plain, _, _, plain_objects = run(replace(SETTINGS, fusion="plurality"))
    assert plain["shared"]["fusion_rule"] == "plurality" and plain["shared"]["confidence_map_key"] is None
    assert (decode_mask_png(plain_objects[plain["shared"]["mask_key"]])[2:6, 2:8] == 2).all()
    assert not table.is_empty()


def test_the_reliability_table_says_which_class_each_annotator_confuses_with_what():
    _, _, table, _ = run(SETTINGS)
    rows = {(r["annotator"], r["class_name"]): r for r in table.iter_rows(named=True)}
    steady_road = rows[("steady", "road")]
    assert steady_road["confused_with_name"] == "car" and steady_road["honeypot_pixels"] == 200
    # 25 honeypot pixels and 24 shared ones of steady's 400 road pixels were labelled car.
    assert steady_road["confusion_rate"] == pytest.approx(49 / 400, abs=2e-3)
    assert steady_road["recall"] == pytest.approx(1 - 49 / 400, abs=2e-3)
    assert rows[("careful", "road")]["recall"] == pytest.approx(1, abs=1e-3)
    assert {r["annotator"]: r["vote_weight"] for r in table.iter_rows(named=True)}["careful"] == 1000
    board = annotator_summary(table)
    assert board["annotator"].to_list() == ["careful", "steady", "hasty"]
    assert board.filter(pl.col("annotator") == "hasty")["top_confusions"].item()[0].startswith("road -> car")


def test_categories_keep_a_missed_object_out_of_the_confusion_pairs():
    masks = careful_and_careless()
    images = masks_by_key(ASSIGNMENTS, masks)
    objects = {key: encode_mask_png(mask) for key, mask in masks.items()}
    _, _, _, table = build_consensus(images, ArtefactStore.in_memory(objects), SETTINGS, IGNORE,
                                     class_names={0: "road", 1: "sidewalk", 2: "car"},
                                     categories={0: "flat", 1: "flat", 2: "vehicle"})
    steady_road = table.filter((pl.col("annotator") == "steady") & (pl.col("class_id") == 0)).row(0, named=True)
    assert (steady_road["confused_with"], steady_road["confusion_rate"]) == (1, 0.0)  # car is another category
    assert steady_road["recall"] == pytest.approx(1 - 49 / 400, abs=2e-3)


def test_two_annotators_fall_back_to_plurality_until_honeypots_exist():
    truth = street()
    masks = {"a": truth, "b": with_block(truth, slice(0, 4), slice(0, 4), 2), "gold": truth, "a-g": truth,
             "b-g": with_block(truth, slice(0, 4), slice(0, 4), 2)}
    pair = [("pair", "a", "a"), ("pair", "b", "b")]
    by_id, _, table, objects = run(SETTINGS, pair, masks)
    assert by_id["pair"]["fusion_rule"] == "plurality" and table.is_empty()
    assert (decode_mask_png(objects[by_id["pair"]["mask_key"]])[:4, :4] == IGNORE).all()  # a tie

    with_gold = [*pair, ("g", "gold", "gold"), ("g", "a", "a-g"), ("g", "b", "b-g")]
    by_id, _, _, objects = run(SETTINGS, with_gold, masks)
    assert by_id["pair"]["fusion_rule"] == "reliability"
    assert np.array_equal(decode_mask_png(objects[by_id["pair"]["mask_key"]]), truth)  # a is right on the honeypot


def test_a_pixel_whose_posterior_is_below_min_confidence_is_ignore():
    """Three annotators of about equal record (each wrong on one block of the honeypot) give a
    block of another image three different labels: none has half the weight behind it."""
    truth = street()
    masks = {"gold": truth, "a-g": with_block(truth, slice(0, 3), slice(0, 3), 2),
             "b-g": with_block(truth, slice(0, 3), slice(5, 8), 2), "c-g": with_block(truth, slice(0, 3), slice(10, 13), 2),
             "a": with_block(truth, slice(0, 2), slice(0, 2), 2), "b": with_block(truth, slice(0, 2), slice(0, 2), 3),
             "c": truth}
    trio = [("g", "gold", "gold"), ("g", "a", "a-g"), ("g", "b", "b-g"), ("g", "c", "c-g"),
            ("x", "a", "a"), ("x", "b", "b"), ("x", "c", "c")]
    by_id, _, _, objects = run(SETTINGS, trio, masks)
    weights = by_id["x"]["vote_weights"]
    assert max(weights) / sum(weights) < SETTINGS.min_confidence
    fused = decode_mask_png(objects[by_id["x"]["mask_key"]])
    assert (fused[:2, :2] == IGNORE).all() and (fused[2:] == truth[2:]).all()
    confidence = decode_mask_png(objects[by_id["x"]["confidence_map_key"]])
    winner = max(zip(weights, ("a", "b", "c")))  # the heaviest annotator's label leads the block
    assert confidence[0, 0] == round(255 * winner[0] / sum(weights))

    by_id, _, _, objects = run(replace(SETTINGS, min_confidence=0.0), trio, masks)
    assert (decode_mask_png(objects[by_id["x"]["mask_key"]])[:2, :2] == masks[winner[1]][:2, :2]).all()


def test_an_image_is_fused_again_only_when_its_vote_shares_move_beyond_the_tolerance():
    masks = careful_and_careless()
    objects = {key: encode_mask_png(mask) for key, mask in masks.items()}
    first, _, _, _ = run(SETTINGS, objects=objects)
    reads: list[str] = []
    store = counting_reads(ArtefactStore.in_memory(objects), reads)
    again, _, _, _ = run(SETTINGS, store=store, objects=objects)
    assert again == first
    assert not {"careful", "steady", "hasty"} & set(reads)  # remembered: no mask decoded

    # A new image where steady is right and hasty wrong moves both estimates a little.
    more = {**masks, "careful-2": street(), "steady-2": street(), "hasty-2": with_block(street(), slice(0, 3), slice(0, 20), 2)}
    objects.update({key: encode_mask_png(more[key]) for key in ("careful-2", "steady-2", "hasty-2")})
    added = [*ASSIGNMENTS, ("two", "careful", "careful-2"), ("two", "steady", "steady-2"), ("two", "hasty", "hasty-2")]
    shares = np.array(first["shared"]["vote_weights"]) / sum(first["shared"]["vote_weights"])
    reads.clear()
    kept, _, _, _ = run(SETTINGS, added, more, store=store, objects=objects)
    moved = np.array(kept["two"]["vote_weights"]) / sum(kept["two"]["vote_weights"])
    assert 0 < np.abs(moved - shares).max() <= SETTINGS.estimate_tolerance
    assert kept["shared"] == first["shared"] and not {"careful", "steady", "hasty"} & set(reads)

    reads.clear()
    refused, _, _, _ = run(replace(SETTINGS, estimate_tolerance=0.0), added, more, store=store, objects=objects)
    assert {"careful", "steady", "hasty"} <= set(reads)  # fused again with the new weights
    assert refused["shared"]["vote_weights"] == kept["two"]["vote_weights"]
    assert refused["shared"]["mask_key"] == first["shared"]["mask_key"]  # the same decisions: the same mask
