from dataclasses import replace

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from segpipe.core.consensus.annotator_pairs import pair_summary
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.shared.class_pixels import dense
from segpipe.core.consensus.fusion import build_consensus
from segpipe.core.consensus.image_outcomes import agreement, pair_class_ious
from segpipe.core.consensus.plurality import disputed_labels, disputed_pixels, fuse_masks
from segpipe.core.consensus.vote_rows import vote_rows
from segpipe.core.consensus.mask_agreement import boundary_f1, class_iou, mean_iou, pixel_accuracy
from segpipe.core.shared.png import encode_mask_png
from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.core.consensus.settings import ConsensusSettings

IGNORE = 255


def test_plurality_wins_and_ties_become_ignore():
    a = np.array([[1, 1, 2, 3]], dtype=np.uint8)
    b = np.array([[1, 2, 2, 4]], dtype=np.uint8)
    c = np.array([[1, 2, 5, 6]], dtype=np.uint8)
    assert fuse_masks([a, b, c], 0.5, IGNORE).tolist() == [[1, 2, 2, IGNORE]]
    assert fuse_masks([a, b], 0.5, IGNORE).tolist() == [[1, IGNORE, 2, IGNORE]]


def test_quorum_requires_enough_annotators_and_ignore_votes_abstain():
    a = np.array([[1, IGNORE]], dtype=np.uint8)
    b = np.array([[IGNORE, IGNORE]], dtype=np.uint8)
    c = np.array([[IGNORE, IGNORE]], dtype=np.uint8)
    assert fuse_masks([a, b, c], 0.3, IGNORE).tolist() == [[1, IGNORE]]
    assert fuse_masks([a, b, c], 0.5, IGNORE).tolist() == [[IGNORE, IGNORE]]


def test_iou_is_one_for_identical_masks_and_symmetric():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, (20, 20), dtype=np.uint8)
    b = a.copy()
    b[:5] = 3
    assert mean_iou(a, a, IGNORE) == 1.0
    assert mean_iou(a, b, IGNORE) == pytest.approx(mean_iou(b, a, IGNORE))
    assert 0 < mean_iou(a, b, IGNORE) < 1
    masks = [a, a.copy(), b]
    pixels = [np.bincount(m.ravel(), minlength=256) for m in masks]
    votes = vote_rows(disputed_labels(masks, disputed_pixels(masks)), pixels[0])
    pair_ious = pair_class_ious(votes, pixels, IGNORE)
    assert pair_ious == [class_iou(a, a, IGNORE), class_iou(a, b, IGNORE), class_iou(a, b, IGNORE)]
    assert agreement(pair_ious) == pytest.approx((1 + 2 * mean_iou(a, b, IGNORE)) / 3)


def test_pixel_accuracy_counts_gold_labelled_pixels_only():
    gold = np.array([[1, 1, IGNORE, IGNORE]], dtype=np.uint8)
    assert pixel_accuracy(np.array([[1, 2, 3, 3]], dtype=np.uint8), gold, IGNORE) == 0.5


def counting_reads(store: ArtefactStore, reads: list[str]) -> ArtefactStore:
    """The store, noting the key of every read: a mask read is a mask decoded."""
    def read(key: str) -> bytes:
        reads.append(key)
        return store.read(key)

    return replace(store, read=read)


def consensus_inputs() -> tuple[pl.DataFrame, dict[str, bytes]]:
    masks = {
        "gold": np.zeros((4, 4), np.uint8), "x1": np.zeros((4, 4), np.uint8),
        "a": np.ones((4, 4), np.uint8), "b": np.ones((4, 4), np.uint8),
        "c": np.full((4, 4), 2, np.uint8), "d": np.full((4, 4), 3, np.uint8), "solo": np.ones((4, 4), np.uint8),
    }
    entries = pl.DataFrame({
        "image_id": ["g", "g", "agree", "agree", "clash", "clash", "one"],
        "annotator": ["gold", "alice", "alice", "bob", "alice", "bob", "carol"],
        "is_gold": [True, False, False, False, False, False, False],
        "mask_key": ["gold", "x1", "a", "b", "c", "d", "solo"],
        "instance_mask_key": ["gold-i", "x1-i", "a-i", "b-i", "c-i", "d-i", "solo-i"],
    })
    entries = entries.with_columns(pl.Series("class_pixels", [
        np.bincount(masks[key].ravel(), minlength=256).tolist() for key in entries["mask_key"]]))
    return entries, {key: encode_mask_png(mask) for key, mask in masks.items()}


PLURALITY = ConsensusSettings(0.5, 0.6, fusion="plurality")


def test_build_consensus_prefers_gold_fuses_several_and_sends_disagreement_to_review():
    entries, objects = consensus_inputs()
    images, scores, _, _ = build_consensus(entries, ArtefactStore.in_memory(objects), PLURALITY, IGNORE)
    by_id = {r["image_id"]: r for r in images.iter_rows(named=True)}
    assert (by_id["g"]["mask_source"], by_id["g"]["mask_key"]) == ("gold", "gold")
    assert (by_id["agree"]["mask_source"], by_id["agree"]["status"], by_id["agree"]["agreement"]) == ("fused", "accepted", 1.0)
    assert by_id["clash"]["status"] == "low_agreement"
    assert (by_id["one"]["mask_source"], by_id["one"]["mask_key"]) == ("single", "solo")
    # The released entry's instance mask travels with it; a fused mask has none.
    assert {i: r["instance_mask_key"] for i, r in by_id.items()} == {
        "g": "gold-i", "agree": None, "clash": None, "one": "solo-i"}
    fused = {image_id: decode_mask_png(objects[by_id[image_id]["mask_key"]]) for image_id in ("agree", "clash")}
    assert (fused["agree"] == 1).all() and (fused["clash"] == IGNORE).all()
    # Every released mask's pixels per value, fused ones counted from their disputed pixels.
    for image_id, row in by_id.items():
        released = decode_mask_png(objects[row["mask_key"]])
        assert dense(row["class_pixels"]) == np.bincount(released.ravel(), minlength=256).tolist(), image_id
    assert scores.to_dicts() == [
        {"annotator": "alice", "n_honeypots": 1, "mean_iou": 1.0, "pixel_accuracy": 1.0, "boundary_f1": 1.0,
         "is_model": False}]


def test_a_rerun_on_unchanged_masks_reuses_each_outcome_and_a_changed_mask_is_fused_again():
    entries, objects = consensus_inputs()
    settings = PLURALITY
    first = build_consensus(entries, ArtefactStore.in_memory(objects), settings, IGNORE)
    reads: list[str] = []
    store = counting_reads(ArtefactStore.in_memory(objects), reads)
    again = build_consensus(entries, store, settings, IGNORE)
    assert all(frame.equals(other) for frame, other in zip(first, again, strict=True))
    assert reads and all(key.startswith("consensus/") for key in reads)  # outcomes only: no mask decoded

    objects["d2"] = encode_mask_png(np.full((4, 4), 2, np.uint8))  # now agrees with "c"
    reads.clear()
    changed = entries.with_columns(pl.col("mask_key").replace({"d": "d2"}))
    changed = changed.with_columns(pl.when(pl.col("mask_key") == "d2").then(pl.lit([0, 0, 16] + [0] * 253))
                                   .otherwise(pl.col("class_pixels")).alias("class_pixels"))
    images, _, _, _ = build_consensus(changed, store, settings, IGNORE)
    clash = images.filter(pl.col("image_id") == "clash").row(0, named=True)
    assert (clash["status"], clash["agreement"]) == ("accepted", 1.0)
    assert {"c", "d2"} <= set(reads) and not {"a", "b", "gold", "x1"} & set(reads)


@pytest.mark.parametrize("weights", [None, [1000, 250, 250, 500], [3, 1, 1, 1]])
def test_fast_vote_equals_a_per_class_count(weights):
    rng = np.random.default_rng(1)
    masks = [rng.choice([0, 1, 2, IGNORE], size=(30, 40)).astype(np.uint8) for _ in range(4)]
    stack = np.stack(masks)
    weight = np.ones(4, np.int64) if weights is None else np.array(weights)
    for quorum in (0.25, 0.5, 0.75):
        expected = np.full(stack.shape[1:], IGNORE, np.uint8)
        for y, x in np.ndindex(*stack.shape[1:]):
            votes = sorted(((int(weight[stack[:, y, x] == c].sum()), c) for c in (0, 1, 2)), reverse=True)
            if votes[0][0] >= max(1, int(np.ceil(quorum * weight.sum()))) and votes[0][0] > votes[1][0]:
                expected[y, x] = votes[0][1]
        assert np.array_equal(fuse_masks(masks, quorum, IGNORE, weights), expected)


def test_weighted_votes_tie_exactly_and_quorum_is_a_share_of_the_total_weight():
    # Columns: 1 against 2+2; 1 against 2 and 3; 1 alone, the others abstaining; 2 alone.
    a = np.array([[1, 1, 1, IGNORE]], np.uint8)
    b = np.array([[2, 2, IGNORE, 2]], np.uint8)
    c = np.array([[2, 3, IGNORE, IGNORE]], np.uint8)
    weighted = [1000, 500, 500]  # a weighs as much as b and c together
    assert fuse_masks([a, b, c], 0.5, IGNORE, weighted).tolist() == [[IGNORE, 1, 1, IGNORE]]
    assert fuse_masks([a, b, c], 0.5, IGNORE).tolist() == [[2, IGNORE, IGNORE, IGNORE]]
    # Abstaining weight still counts in the total: 1000 of 2000 misses a 0.6 quorum.
    assert fuse_masks([a, b, c], 0.6, IGNORE, weighted).tolist() == [[IGNORE] * 4]
    assert fuse_masks([a, b, c], 0.25, IGNORE, weighted).tolist() == [[IGNORE, 1, 1, 2]]


def brute_force_boundary_f1(mask: np.ndarray, gold: np.ndarray, tolerance: int) -> float:
    """The definition, pixel by pixel: a boundary pixel has a 4-neighbour of another label; it
    matches when the other mask has a boundary pixel within `tolerance` (chessboard distance)."""
    judged = np.where(gold == IGNORE, IGNORE, mask)

    def boundary(m):
        h, w = m.shape
        return {(y, x) for y in range(h) for x in range(w)
                if any(0 <= y + dy < h and 0 <= x + dx < w and m[y + dy, x + dx] != m[y, x]
                       for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)))}

    ours, theirs = boundary(judged), boundary(gold)
    if not ours and not theirs:
        return 1.0
    if not ours or not theirs:
        return 0.0

    def matched(a, b):
        return sum(any(max(abs(y - v), abs(x - u)) <= tolerance for v, u in b) for y, x in a)

    precision, recall = matched(ours, theirs) / len(ours), matched(theirs, ours) / len(theirs)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, (9, 11), elements=st.sampled_from([0, 1, 2, IGNORE])),
       arrays(np.uint8, (9, 11), elements=st.sampled_from([0, 1, 2, IGNORE])), st.integers(0, 3))
def test_boundary_f1_is_the_definition_computed_by_brute_force(mask, gold, tolerance):
    assert boundary_f1(mask, gold, IGNORE, tolerance) == pytest.approx(brute_force_boundary_f1(mask, gold, tolerance))


def test_boundary_f1_forgives_a_shift_within_the_tolerance_and_not_beyond():
    gold = np.zeros((40, 40), np.uint8)
    gold[10:30, 10:30] = 1
    shifted = np.roll(gold, 2, axis=1)
    assert boundary_f1(gold, gold, IGNORE, 0) == 1.0
    assert boundary_f1(shifted, gold, IGNORE, 2) == 1.0
    assert boundary_f1(shifted, gold, IGNORE, 1) < 1.0
    assert mean_iou(shifted, gold, IGNORE) < 1.0  # IoU sees the shift at any tolerance


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, (7, 9), elements=st.sampled_from([0, 1, 2, 5, IGNORE])),
       arrays(np.uint8, (7, 9), elements=st.sampled_from([0, 1, 2, 5, IGNORE])))
def test_class_iou_from_the_differing_pixels_equals_a_full_confusion_count(a, b):
    both = (a != IGNORE) & (b != IGNORE)
    expected = {}
    for c in sorted(set(a[both].tolist()) | set(b[both].tolist())):
        expected[c] = float(((a == c) & (b == c) & both).sum() / (((a == c) | (b == c)) & both).sum())
    pixels = [np.bincount(m.ravel(), minlength=256) for m in (a, b)]
    assert class_iou(a, b, IGNORE) == pytest.approx(expected)
    assert class_iou(a, b, IGNORE, *pixels) == pytest.approx(expected)
    # Any superset of the differing pixels gives the same (an image's disputed pixels, or all of them).
    assert class_iou(a, b, IGNORE, *pixels, where=np.arange(a.size)) == pytest.approx(expected)


def run_consensus(masks_by_image: dict[str, list[np.ndarray]], settings=ConsensusSettings(0.5, 0.6), class_names=None):
    """Per image, its consensus row with the fused mask and agreement map decoded; and the pair table."""
    rows, objects = [], {}
    for image_id, masks in masks_by_image.items():
        for n, mask in enumerate(masks):
            key = f"{image_id}-{n}"
            objects[key] = encode_mask_png(mask)
            rows.append({"image_id": image_id, "annotator": f"ann{n}", "is_gold": False, "mask_key": key,
                         "instance_mask_key": None, "class_pixels": np.bincount(mask.ravel(), minlength=256).tolist()})
    images, _, pairs, _ = build_consensus(pl.DataFrame(rows), ArtefactStore.in_memory(objects), settings, IGNORE,
                                       class_names=class_names)
    return {r["image_id"]: {**r, "fused": decode_mask_png(objects[r["mask_key"]]),
                            "agreement_map": decode_mask_png(objects[r["agreement_map_key"]])}
            for r in images.iter_rows(named=True)}, pairs


def test_constructed_cases_give_the_exact_agreement_fused_pixels_and_review_decision():
    halves = np.full((10, 10), 2, np.uint8)
    halves[:, :5] = 1
    shifted = np.full((10, 10), 2, np.uint8)
    shifted[:, :6] = 1  # one column more of class 1
    uniform = np.ones((10, 10), np.uint8)
    disputed = uniform.copy()
    disputed[4:6, 4:6] = 2
    out, _ = run_consensus({"same": [halves, halves.copy()], "shift": [halves, halves.copy(), shifted],
                            "dispute": [uniform, disputed]})

    assert out["same"]["agreement"] == 1.0 and np.array_equal(out["same"]["fused"], halves)
    # halves vs shifted: class 1 IoU 50/60, class 2 IoU 40/50; the pair of identical masks scores 1.
    one_pair = (50 / 60 + 40 / 50) / 2
    assert out["shift"]["agreement"] == pytest.approx((1 + 2 * one_pair) / 3)
    assert out["shift"]["status"] == "accepted" and np.array_equal(out["shift"]["fused"], halves)  # 2 votes to 1
    expected_map = np.full((10, 10), 255, np.uint8)
    expected_map[:, 5] = round(255 * 2 / 3)  # the disputed column: two of three agree
    assert np.array_equal(out["shift"]["agreement_map"], expected_map)
    # Two annotators, a 2x2 region in dispute: class 1 IoU 96/100, class 2 IoU 0/4; the tie becomes ignore.
    assert out["dispute"]["agreement"] == pytest.approx((96 / 100 + 0) / 2)
    assert out["dispute"]["status"] == "low_agreement"
    expected = uniform.copy()
    expected[4:6, 4:6] = IGNORE
    assert np.array_equal(out["dispute"]["fused"], expected)


def honeypot_case(policy: str):
    """carol labels the honeypot badly; on the shared image alice and bob agree, carol does not."""
    good, bad = np.zeros((8, 8), np.uint8), np.ones((8, 8), np.uint8)
    masks = {"gold": good, "alice-g": good, "bob-g": good, "carol-g": bad,
             "alice": good, "bob": good, "carol": bad, "carol-solo": bad}
    entries = pl.DataFrame({
        "image_id": ["g", "g", "g", "g", "shared", "shared", "shared", "solo"],
        "annotator": ["gold", "alice", "bob", "carol", "alice", "bob", "carol", "carol"],
        "is_gold": [True, False, False, False, False, False, False, False],
        "mask_key": ["gold", "alice-g", "bob-g", "carol-g", "alice", "bob", "carol", "carol-solo"],
        "instance_mask_key": [None] * 8,
        "class_pixels": [np.bincount(masks[k].ravel(), minlength=256).tolist() for k in masks],
    }, schema_overrides={"instance_mask_key": pl.String})
    objects = {key: encode_mask_png(mask) for key, mask in masks.items()}
    settings = ConsensusSettings(0.5, 0.6, min_honeypot_iou=0.5, low_scorer=policy)
    images, board, _, _ = build_consensus(entries, ArtefactStore.in_memory(objects), settings, IGNORE)
    return {r["image_id"]: r for r in images.iter_rows(named=True)}, board, objects


def test_an_annotator_below_the_honeypot_threshold_is_left_out_of_fusion():
    by_id, board, objects = honeypot_case("exclude")
    assert board["annotator"].to_list()[-1] == "carol" and board["mean_iou"].to_list()[-1] == 0.0
    shared = by_id["shared"]
    assert (shared["annotators"], shared["excluded_annotators"], shared["status"]) == (["alice", "bob"], ["carol"], "accepted")
    assert shared["agreement"] == 1.0 and (decode_mask_png(objects[shared["mask_key"]]) == 0).all()
    assert (by_id["solo"]["status"], by_id["solo"]["excluded_annotators"]) == ("annotator_excluded", ["carol"])
    assert by_id["g"]["mask_source"] == "gold" and by_id["g"]["annotators"] == ["alice", "bob", "carol"]


def test_with_the_review_policy_their_images_go_to_review_instead():
    by_id, _, _ = honeypot_case("review")
    assert (by_id["shared"]["status"], by_id["shared"]["annotators"]) == ("annotator_review", ["alice", "bob", "carol"])
    assert by_id["solo"]["status"] == "annotator_review"
    assert by_id["g"]["status"] == "accepted"


def test_the_pair_table_gives_each_pairs_class_ious_and_the_summary_their_worst_classes():
    halves = np.full((10, 10), 2, np.uint8)
    halves[:, :5] = 1
    shifted = np.full((10, 10), 2, np.uint8)
    shifted[:, :6] = 1  # one column more of class 1
    labelled = np.ones((10, 10), np.uint8)
    labelled[:2, :2] = 3  # where the other annotator labels nothing: not compared
    partial = np.ones((10, 10), np.uint8)
    partial[:2, :2] = IGNORE
    partial[8:, 8:] = 4  # a class the taxonomy does not name, which the other does not see
    _, pairs = run_consensus({"shift": [halves, halves.copy(), shifted], "partial": [labelled, partial]},
                             class_names={1: "road", 2: "car", 3: "sign"})
    shift_pair, partial_pair = (50 / 60 + 40 / 50) / 2, (92 / 96 + 0) / 2
    assert pairs.rows() == [
        ("partial", "ann0", "ann1", 1, "road", 92 / 96, partial_pair),
        ("partial", "ann0", "ann1", 4, None, 0.0, partial_pair),
        ("shift", "ann0", "ann1", 1, "road", 1.0, 1.0),
        ("shift", "ann0", "ann1", 2, "car", 1.0, 1.0),
        ("shift", "ann0", "ann2", 1, "road", 50 / 60, shift_pair),
        ("shift", "ann0", "ann2", 2, "car", 40 / 50, shift_pair),
        ("shift", "ann1", "ann2", 1, "road", 50 / 60, shift_pair),
        ("shift", "ann1", "ann2", 2, "car", 40 / 50, shift_pair),
    ]
    assert pair_summary(pairs).rows() == [
        ("ann0", "ann1", 2, round((partial_pair + 1) / 2, 3), "4 0.0, road 0.979, car 1.0"),
        ("ann0", "ann2", 1, 0.817, "car 0.8, road 0.833"),
        ("ann1", "ann2", 1, 0.817, "car 0.8, road 0.833"),
    ]


def masks_by_key(assignments: list[tuple[str, str, str]], masks: dict[str, np.ndarray]) -> pl.DataFrame:
    """Consensus entries of (image_id, annotator, mask_key); the annotator "gold" marks gold."""
    image_ids, annotators, keys = zip(*assignments, strict=True)
    return pl.DataFrame({
        "image_id": image_ids, "annotator": annotators, "is_gold": [a == "gold" for a in annotators],
        "mask_key": keys, "instance_mask_key": [None] * len(keys),
        "class_pixels": [np.bincount(masks[k].ravel(), minlength=256).tolist() for k in keys],
    }, schema_overrides={"instance_mask_key": pl.String})


def reliability_case() -> tuple[list[tuple[str, str, str]], dict[str, np.ndarray]]:
    """alice labels the honeypot right (mean IoU 1); bob and carol paint all of it class 1 (IoU 0.5
    on class 1, 0 on class 2: 0.25); dave labels no honeypot. On "shared" bob and carol agree
    against alice; on "pair" dave disagrees with bob."""
    gold = np.full((10, 10), 2, np.uint8)
    gold[:, :5] = 1
    ones, twos = np.ones((10, 10), np.uint8), np.full((10, 10), 2, np.uint8)
    masks = {"gold": gold, "alice-g": gold, "bob-g": ones, "carol-g": ones,
             "alice": ones, "bob": twos, "carol": twos, "dave": ones, "bob-2": twos}
    assignments = [("g", "gold", "gold"), ("g", "alice", "alice-g"), ("g", "bob", "bob-g"), ("g", "carol", "carol-g"),
                   ("shared", "alice", "alice"), ("shared", "bob", "bob"), ("shared", "carol", "carol"),
                   ("pair", "bob", "bob-2"), ("pair", "dave", "dave")]
    return assignments, masks


def fused_by_image(fusion: str, assignments=None, masks=None, store=None):
    default_assignments, default_masks = reliability_case()
    assignments, masks = assignments or default_assignments, masks or default_masks
    objects = {key: encode_mask_png(mask) for key, mask in masks.items()}
    store = store or ArtefactStore.in_memory(objects)
    images, board, pairs, _ = build_consensus(masks_by_key(assignments, masks), store,
                                           ConsensusSettings(0.5, 0.2, fusion=fusion), IGNORE)
    return {r["image_id"]: r for r in images.iter_rows(named=True)}, board, pairs, objects


def test_honeypot_weights_let_one_reliable_annotator_outvote_two_unreliable_ones_who_agree():
    weighted, board, weighted_pairs, objects = fused_by_image("honeypot_weighted")
    plain, _, plain_pairs, plain_objects = fused_by_image("plurality")
    assert dict(board.select("annotator", "mean_iou").iter_rows()) == {"alice": 1.0, "bob": 0.25, "carol": 0.25}

    def fused(rows, store, image_id):
        return decode_mask_png(store[rows[image_id]["mask_key"]]).tolist()

    # alice's 1.0 against bob's and carol's 0.25 each: her class 1 wins; by head count, theirs.
    assert weighted["shared"]["vote_weights"] == [1.0, 0.25, 0.25]
    assert fused(weighted, objects, "shared") == np.ones((10, 10)).tolist()
    assert plain["shared"]["vote_weights"] == [1.0, 1.0, 1.0]
    assert fused(plain, plain_objects, "shared") == np.full((10, 10), 2).tolist()
    # dave has no honeypot and weighs the scored annotators' mean, (1 + 0.25 + 0.25) / 3 = 0.5,
    # twice bob: his class wins with 2/3 of the weight, where one vote each is a tie (ignore).
    assert weighted["pair"]["vote_weights"] == [0.25, 0.5]
    assert fused(weighted, objects, "pair") == np.ones((10, 10)).tolist()
    assert (decode_mask_png(objects[weighted["pair"]["agreement_map_key"]]) == round(255 * 2 / 3)).all()
    assert fused(plain, plain_objects, "pair") == np.full((10, 10), IGNORE).tolist()
    assert (decode_mask_png(plain_objects[plain["pair"]["agreement_map_key"]]) == round(255 / 2)).all()
    # Agreement is not weighted: alice agrees with neither, bob with carol; and the pair table is the same.
    assert weighted["shared"]["agreement"] == plain["shared"]["agreement"] == pytest.approx(1 / 3)
    assert weighted_pairs.equals(plain_pairs)


def test_a_rerun_decodes_nothing_and_a_changed_honeypot_score_refuses_only_under_weighted_fusion():
    assignments, masks = reliability_case()
    for fusion in ("honeypot_weighted", "plurality"):
        objects = {key: encode_mask_png(mask) for key, mask in masks.items()}
        first = fused_by_image(fusion, store=ArtefactStore.in_memory(objects))
        reads: list[str] = []
        store = counting_reads(ArtefactStore.in_memory(objects), reads)
        again = fused_by_image(fusion, store=store)
        assert again[0] == first[0] and again[1].equals(first[1]) and again[2].equals(first[2])
        assert reads and all(key.startswith("consensus/") for key in reads)  # outcomes only: no mask decoded

        # bob now labels the honeypot right: his weight, and dave's (the mean), change.
        reads.clear()
        objects["bob-g2"] = encode_mask_png(masks["gold"])
        changed = [(i, a, "bob-g2" if k == "bob-g" else k) for i, a, k in assignments]
        by_id, _, _, _ = fused_by_image(fusion, changed, {**masks, "bob-g2": masks["gold"]}, store)
        assert {"gold", "alice-g", "bob-g2", "carol-g"} <= set(reads)  # the honeypot is scored again
        refused = {"alice", "bob", "carol", "dave", "bob-2"} & set(reads)
        if fusion == "plurality":
            assert not refused and by_id["shared"]["mask_key"] == first[0]["shared"]["mask_key"]
        else:  # bob (1.0) and carol (0.25) now outweigh alice (1.0)
            assert refused == {"alice", "bob", "carol", "dave", "bob-2"}
            assert by_id["shared"]["vote_weights"] == [1.0, 1.0, 0.25]
            assert (decode_mask_png(objects[by_id["shared"]["mask_key"]]) == 2).all()


def test_two_entries_of_one_annotator_are_refused_rather_than_counted_twice():
    """QA keeps one entry per image and annotator (the newest delivery); anything else is a caller's mistake."""
    road = np.zeros((4, 4), np.uint8)
    entries = pl.DataFrame({"image_id": ["x", "x", "x"], "annotator": ["alice", "alice", "bob"], "is_gold": False,
                            "mask_key": ["a", "b", "c"], "instance_mask_key": None,
                            "class_pixels": [np.bincount(road.ravel(), minlength=256).tolist()] * 3},
                           schema_overrides={"instance_mask_key": pl.String})
    store = ArtefactStore.in_memory({key: encode_mask_png(road) for key in "abc"})
    with pytest.raises(ValueError, match="but alice has 2 of image x: pass only the entries QA kept"):
        build_consensus(entries, store, ConsensusSettings(0.5, 0.6), IGNORE)
