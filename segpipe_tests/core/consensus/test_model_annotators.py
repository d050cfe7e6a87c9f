"""Model masks in consensus: scored on honeypots beside people, kept out of fusion unless models vote,
and an image where the model and the people disagree sent to review with the classes in dispute."""

import numpy as np
import polars as pl

from segpipe.core.consensus.fusion import build_consensus
from segpipe.core.consensus.review import review_queue
from segpipe.core.consensus.settings import ConsensusSettings
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.shared.png import encode_mask_png

IGNORE = 255
MODEL = "model:segnet"
NAMES = {1: "road", 2: "car", 3: "sky"}


def inputs() -> tuple[pl.DataFrame, dict[str, bytes]]:
    road = np.ones((4, 4), np.uint8)
    half_car = road.copy()
    half_car[:, 2:] = 2
    masks = {"gold": road, "alice-g": road, "model-g": half_car,  # honeypot: the model is half wrong
             "alice-same": road, "bob-same": road, "model-same": road,  # all agree
             "alice-clash": road, "bob-clash": road, "model-clash": half_car,  # the model calls half the road car
             "model-alone": half_car}
    rows = [("g", "gold", True, "gold"), ("g", "annotator-a", False, "alice-g"), ("g", MODEL, False, "model-g"),
            ("same", "annotator-a", False, "alice-same"), ("same", "annotator-b", False, "bob-same"),
            ("same", MODEL, False, "model-same"),
            ("clash", "annotator-a", False, "alice-clash"), ("clash", "annotator-b", False, "bob-clash"),
            ("clash", MODEL, False, "model-clash"), ("alone", MODEL, False, "model-alone")]
    entries = pl.DataFrame(rows, schema=["image_id", "annotator", "is_gold", "mask_key"], orient="row").with_columns(
        pl.lit(None, pl.String).alias("instance_mask_key"),
        pl.Series("class_pixels", [np.bincount(masks[key].ravel(), minlength=256).tolist() for *_, key in rows]))
    return entries, {key: encode_mask_png(mask) for key, mask in masks.items()}


def consensus(settings: ConsensusSettings) -> tuple[dict, pl.DataFrame]:
    entries, objects = inputs()
    images, board, _, _ = build_consensus(entries, ArtefactStore.in_memory(objects), settings, IGNORE, None, NAMES)
    return {row["image_id"]: row for row in images.iter_rows(named=True)}, board


def test_a_model_is_scored_beside_people_and_marked_as_a_model():
    _, board = consensus(ConsensusSettings(fusion="plurality"))
    rows = {row["annotator"]: row for row in board.iter_rows(named=True)}
    assert rows["annotator-a"]["is_model"] is False and rows["annotator-a"]["mean_iou"] == 1.0
    assert rows[MODEL]["is_model"] is True
    assert rows[MODEL]["mean_iou"] == (0.5 + 0.0) / 2  # road: 8 of 16 shared; car: none of gold's


def test_models_do_not_vote_by_default_and_disagreement_goes_to_review():
    by_id, _ = consensus(ConsensusSettings(fusion="plurality"))
    assert by_id["same"]["annotators"] == ["annotator-a", "annotator-b"]
    assert (by_id["same"]["status"], by_id["same"]["disputed_classes"]) == ("accepted", [])
    assert (by_id["clash"]["status"], by_id["clash"]["disputed_classes"]) == ("model_review", ["car"])  # road IoU 0.5 is not below 0.5
    assert by_id["alone"]["status"] == "annotator_excluded"  # a model's prediction alone is never released
    queue = review_queue(pl.DataFrame(list(by_id.values())), pl.DataFrame(
        {"image_id": ["clash"], "file_name": ["clash.jpg"]}))
    assert queue.select("file_name", "status", "disputed_classes").rows() == [("clash.jpg", "model_review", ["car"])]


def test_models_vote_when_configured_and_the_threshold_can_be_turned_off():
    by_id, _ = consensus(ConsensusSettings(fusion="plurality", models_vote=True, model_disagreement_iou=None))
    assert by_id["clash"]["annotators"] == ["annotator-a", "annotator-b", MODEL]
    assert by_id["clash"]["status"] in ("accepted", "low_agreement") and by_id["clash"]["disputed_classes"] is None
    assert (by_id["alone"]["mask_source"], by_id["alone"]["status"]) == ("single", "accepted")
