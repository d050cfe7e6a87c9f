"""Issue 20's acceptance on the fusion harness with known truth, at test size: 6 street scenes of
512x256 (gold on 2) per panel. The full size (12 scenes at 2048x1024, gold on 4) runs in
`python -m segpipe_tests.bench.consensus`; the simulator itself is checked here too."""

import numpy as np
import pytest

from segpipe_tests.bench.fusion_harness import (
    ISSUE_PANEL,
    PANELS,
    Panel,
    acceptance,
    annotator,
    class_space,
    run_panel,
    score,
    simulate,
)

SCENES, WIDTH, HEIGHT, GOLD = 6, 512, 256, 2


@pytest.mark.parametrize("panel", PANELS, ids=[panel.name for panel in PANELS])
def test_reliability_fusion_meets_the_acceptance_on_every_panel(panel):
    report = run_panel(simulate(panel, SCENES, WIDTH, HEIGHT, GOLD))
    assert acceptance(report, len(panel.annotators)) == dict.fromkeys(acceptance(report, len(panel.annotators)), True)
    # Reliability fusion never leaves more pixels ignore than plurality does on these panels.
    assert report.fused["reliability"].ignore_share <= report.fused["plurality"].ignore_share


def test_the_simulated_annotators_err_as_configured():
    flawless = Panel("exact", (annotator("exact", 0, 0.0, 0.0), annotator("dropper", 0, 1.0, 0.0),
                               annotator("swapper", 0, 0.0, 1.0)))
    run = simulate(flawless, 2, WIDTH, HEIGHT, 0)
    space = class_space()
    assert all(np.array_equal(mask, truth) for mask, truth in zip(run.masks["exact"], run.truth, strict=True))
    for mask, truth in zip(run.masks["swapper"], run.truth, strict=True):
        swapped = truth == space.id_of("car")
        assert (mask[swapped] == space.id_of("truck")).mean() > 0.9  # every car a truck (but where others overlap)
        assert not (mask == space.id_of("car")).any()
    ground = {space.id_of(name) for name in ("road", "sidewalk", "sky")}
    for mask, truth in zip(run.masks["dropper"], run.truth, strict=True):
        # Every object left out: the ground shows (and the odd crack between ground polygons).
        assert set(np.unique(mask[truth != space.ignore]).tolist()) <= ground | {space.ignore}
        assert (mask[truth != space.ignore] == space.ignore).mean() < 0.01


def test_correlated_annotators_drop_and_swap_the_same_objects():
    correlated = Panel("pair", (annotator("one", 0, 0.3, 0.3), annotator("two", 0, 0.3, 0.3)), correlated=("one", "two"))
    independent = Panel("pair", correlated.annotators)
    same = simulate(correlated, 2, WIDTH, HEIGHT, 0)
    apart = simulate(independent, 2, WIDTH, HEIGHT, 0)
    assert all(np.array_equal(a, b) for a, b in zip(same.masks["one"], same.masks["two"], strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(apart.masks["one"], apart.masks["two"], strict=True))


def test_the_score_counts_ignore_as_wrong_and_averages_iou_over_the_classes_of_the_truth():
    truth = np.array([[0, 0, 1, 1, 255]], np.uint8)
    predicted = np.array([[0, 255, 1, 0, 1]], np.uint8)
    result = score([predicted], [truth], 255)
    assert result.accuracy == pytest.approx(2 / 4) and result.ignore_share == pytest.approx(1 / 4)
    assert result.mean_iou == pytest.approx((1 / 3 + 1 / 2) / 2)  # class 0: 1 of {0, 1, 3}; class 1: 1 of {2, 3}


def test_the_issue_panel_is_the_issue_s():
    jitter = [who.errors.jitter_px for who in ISSUE_PANEL.annotators]
    drops = [who.errors.drop for who in ISSUE_PANEL.annotators]
    swaps = [who.errors.swap for who in ISSUE_PANEL.annotators]
    assert (jitter, drops, swaps) == ([1, 4, 10], [0.0, 0.05, 0.20], [0.0, 0.05, 0.15])
    assert ISSUE_PANEL.annotators[2].swaps == {"car": "truck", "person": "rider", "sidewalk": "road",
                                               "vegetation": "terrain", "building": "wall"}
