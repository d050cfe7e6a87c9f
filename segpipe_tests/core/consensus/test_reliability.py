"""The reliability estimate (Dawid-Skene EM on vote-row counts) on small cases with known answers.

At EM's fixed point on these cases every vote row's posterior is certain but for a leak of the
order of the smoothing over a class's pixels (hence the tolerances), so the estimates are counts in
closed form: with n_c pixels of true class c, N an annotator's pixels,
K labels, a the smoothing and d the diagonal prior, a confusion row is
(counts + a + d N [on the diagonal]) / (n_c + K a + d N), and the prior (n_c + a) / (N + K a).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segpipe.core.consensus.reliability import (
    DIAGONAL_PRIOR,
    MIN_ERROR_RATE,
    SMOOTHING,
    VoteCounts,
    estimate_reliability,
    pool_votes,
    pooled,
)

IGNORE = 255


def counts(annotators: tuple[str, ...], rows: dict[tuple[int, ...], int]) -> VoteCounts:
    return VoteCounts(annotators, np.array(list(rows), dtype=np.uint8), np.array(list(rows.values()), dtype=np.int64))


def row(n_true: int, given: dict[int, int], true: int, labels: int, total: int) -> dict[int, float]:
    """The closed-form confusion row of a true class with n_true pixels, `given` of which got each label."""
    denominator = n_true + labels * SMOOTHING + DIAGONAL_PRIOR * total
    return {k: (given.get(k, 0) + SMOOTHING + (DIAGONAL_PRIOR * total if k == true else 0)) / denominator
            for k in range(labels)}


def test_identical_annotators_are_each_right_everywhere():
    n = {0: 6000, 1: 3000, 2: 1000}
    estimate = estimate_reliability([counts(("a", "b", "c"), {(c, c, c): pixels for c, pixels in n.items()})])
    total, labels = sum(n.values()), 3
    assert estimate.labels == (0, 1, 2)
    for annotator in "abc":
        for c in range(3):
            assert dict(enumerate(estimate.confusion[annotator][c])) == pytest.approx(
                row(n[c], {c: n[c]}, c, labels, total), rel=1e-9)
        assert estimate.error_rate(annotator, IGNORE) == 0.0
    assert estimate.prior == pytest.approx([(n[c] + SMOOTHING) / (total + 3 * SMOOTHING) for c in range(3)])
    assert estimate.vote_weights(IGNORE) == {a: 1 / MIN_ERROR_RATE for a in "abc"}
    assert estimate.posterior(("a", "b", "c"), np.array([[1, 1, 1]], np.uint8)).tolist() == [[0.0, 1.0, 0.0]]


def test_an_annotator_who_always_calls_class_1_class_2_is_found_out_and_outvoted():
    n = {0: 5000, 1: 2000, 2: 3000}
    table = counts(("a", "b", "wrong"), {(0, 0, 0): n[0], (1, 1, 2): n[1], (2, 2, 2): n[2]})
    estimate = estimate_reliability([table])
    total = sum(n.values())
    expected = row(n[1], {2: n[1]}, 1, 3, total)  # every pixel of class 1 labelled 2
    assert dict(enumerate(estimate.confusion["wrong"][1])) == pytest.approx(expected, rel=1e-6)
    assert dict(enumerate(estimate.confusion["wrong"][2])) == pytest.approx(row(n[2], {2: n[2]}, 2, 3, total), rel=1e-6)
    assert dict(enumerate(estimate.confusion["a"][1])) == pytest.approx(row(n[1], {1: n[1]}, 1, 3, total), rel=1e-6)
    assert estimate.error_rate("wrong", IGNORE) == pytest.approx(n[1] / total)
    weights = estimate.vote_weights(IGNORE)
    assert weights == pytest.approx({"a": 1000, "b": 1000, "wrong": total / n[1]})
    assert estimate.posterior(table.annotators, np.array([[1, 1, 2]], np.uint8))[0] == pytest.approx([0, 1, 0], abs=1e-6)
    label, share = pool_votes(np.array([[1, 1, 2]], np.uint8), [weights[a] for a in table.annotators])
    assert (label.tolist(), share.tolist()) == ([1], [pytest.approx(2000 / (2000 + total / n[1]))])


def test_with_two_annotators_only_the_honeypots_tell_which_one_is_wrong():
    """a and wrong disagree on every pixel of class 1 and the vote rows alone cannot say who is right;
    honeypots where wrong labelled class 1 as 2 can."""
    table = counts(("a", "wrong"), {(0, 0): 500_000, (1, 2): 200_000, (2, 2): 300_000})
    gold = {"a": [(0, 0, 50_000), (1, 1, 20_000), (2, 2, 30_000)],
            "wrong": [(0, 0, 50_000), (1, 2, 20_000), (2, 2, 30_000)]}
    estimate = estimate_reliability([table], gold, seed_weights={"a": 1000.0, "wrong": 5.0})
    assert estimate.error_rate("wrong", IGNORE) == pytest.approx(0.2, rel=1e-4)
    assert estimate.error_rate("a", IGNORE) == pytest.approx(0.0, abs=1e-4)
    weights = estimate.vote_weights(IGNORE)
    label, _ = pool_votes(np.array([[1, 2]], np.uint8), [weights["a"], weights["wrong"]])
    assert label.tolist() == [1]


def test_a_spammer_who_labels_at_random_has_a_uniform_confusion_and_a_vote_that_never_decides():
    """Each true class (1,200 pixels of each of 3) gets each of the spammer's 3 labels equally often."""
    table = counts(("a", "b", "spam"), {(c, c, k): 400 for c in range(3) for k in range(3)})
    estimate = estimate_reliability([table])
    total = 3600
    for c in range(3):
        expected = row(1200, {k: 400 for k in range(3)}, c, 3, total)
        assert dict(enumerate(estimate.confusion["spam"][c])) == pytest.approx(expected, rel=1e-5)
    assert estimate.error_rate("spam", IGNORE) == pytest.approx(2 / 3, rel=1e-6)
    weights = estimate.vote_weights(IGNORE)
    assert weights == pytest.approx({"a": 1000, "b": 1000, "spam": 1.5}, rel=1e-6)
    rows = np.array([[c, c, k] for c in range(3) for k in range(3)], np.uint8)
    label, _ = pool_votes(rows, [weights[a] for a in table.annotators])
    assert label.tolist() == rows[:, 0].tolist()


def test_a_class_only_outvoted_annotators_give_does_not_become_a_true_class():
    """careful labels building (2) everywhere; the two others each relabel some buildings wall (3),
    sometimes the same one. Honeypots show careful right. Wall never gets a share of the truth."""
    table = counts(("careful", "steady", "hasty"),
                   {(2, 2, 2): 50_000, (2, 2, 3): 8_000, (2, 3, 2): 3_000, (2, 3, 3): 2_000, (0, 0, 0): 40_000})
    gold = {"careful": [(2, 2, 10_000), (0, 0, 8_000)], "steady": [(2, 2, 9_500), (2, 3, 500), (0, 0, 8_000)],
            "hasty": [(2, 2, 8_500), (2, 3, 1_500), (0, 0, 8_000)]}
    seeds = {"careful": 1000.0, "steady": 1 / (500 / 18_000), "hasty": 1 / (1_500 / 18_000)}
    estimate = estimate_reliability([table], gold, seeds)
    wall = estimate.labels.index(3)
    assert estimate.prior[wall] < 1e-4
    weights = estimate.vote_weights(IGNORE)
    assert weights["careful"] > weights["steady"] + weights["hasty"]
    label, _ = pool_votes(table.votes, [weights[a] for a in table.annotators])
    assert label.tolist() == table.votes[:, 0].tolist()


def test_panels_with_different_annotators_and_ignore_votes_share_one_estimate():
    """c labels only some images; a leaves part of a region unlabelled (ignore): every panel's
    rows count for the annotators in it, and ignore is a label like any other."""
    three = counts(("a", "b", "c"), {(0, 0, 0): 4000, (1, 1, 1): 4000, (IGNORE, 1, 1): 500})
    two = counts(("a", "b"), {(0, 0): 3000, (1, 1): 3000, (IGNORE, 1): 300})
    estimate = estimate_reliability([three, two])
    assert set(estimate.confusion) == {"a", "b", "c"} and estimate.labels == (0, 1, IGNORE)
    one = estimate.labels.index(1)
    assert estimate.counts["a"][one, estimate.labels.index(IGNORE)] == pytest.approx(800, rel=1e-4)
    assert estimate.counts["c"].sum() == pytest.approx(8500, rel=1e-9)  # only the panel c is in
    assert estimate.error_rate("a", IGNORE) == pytest.approx(800 / 14800, rel=1e-4)


def test_the_estimate_is_deterministic_and_pooling_sums_identical_rows():
    tables = [counts(("a", "b", "c"), {(0, 0, 1): 10, (1, 1, 1): 20}), counts(("a", "b", "c"), {(0, 0, 1): 5})]
    [merged] = pooled(tables)
    assert (merged.votes.tolist(), merged.pixels.tolist()) == ([[0, 0, 1], [1, 1, 1]], [15, 20])
    first, again = estimate_reliability(tables), estimate_reliability(list(reversed(tables)))
    assert first.iterations == again.iterations
    assert all(np.array_equal(first.confusion[a], again.confusion[a]) for a in "abc")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.integers(0, 3), min_size=3, max_size=3), min_size=1, max_size=30),
       st.lists(st.floats(0.5, 100), min_size=3, max_size=3))
def test_the_pooled_vote_is_the_label_with_most_weight_and_its_share(rows, weights):
    votes = np.array(rows, np.uint8)
    label, share = pool_votes(votes, weights)
    for vote, chosen, chosen_share in zip(votes.tolist(), label.tolist(), share.tolist(), strict=True):
        support = {v: sum(w for u, w in zip(vote, weights, strict=True) if u == v) for v in vote}
        assert support[chosen] == pytest.approx(max(support.values()))
        assert chosen_share == pytest.approx(support[chosen] / sum(weights))
    unanimous, unanimous_share = pool_votes(np.array([[2, 2, 2]], np.uint8), weights)
    assert (unanimous.tolist(), unanimous_share.tolist()) == ([2], [1.0])


def test_a_tie_goes_to_the_heavier_annotator_then_the_earlier():
    label, share = pool_votes(np.array([[1, 2, 3], [1, 2, 2]], np.uint8), [1.0, 3.0, 3.0])
    assert label.tolist() == [2, 2] and share.tolist() == [pytest.approx(3 / 7), pytest.approx(6 / 7)]
    label, _ = pool_votes(np.array([[1, 2]], np.uint8), [2.0, 2.0])
    assert label.tolist() == [1]
