"""Each annotator's reliability, class by class, estimated from how the annotators' votes combine.

The estimate is Dawid and Skene's (1979), which STAPLE (Warfield et al. 2004) applies to
segmentation: every pixel has one hidden true class c; annotator a labels it k with probability
confusion[a][c, k], independently of the others given c. Expectation-maximisation alternates the
posterior of each pixel's true class given its votes (E) with the confusion matrices and class
prior those posteriors imply (M). Pixels that got the same votes share a posterior, so EM runs on
the distinct vote rows of each panel and how many pixels got each (VoteCounts), never on pixels.

Plain Dawid-Skene EM drifts, on segmentation votes, to answers no person would give: "two careless
annotators wrote wall where the careful one wrote building" is as well explained by a wall the
careful one always calls building, and once a class absent from the truth takes some pixels it
takes more each round. Four things keep it on the answer a person would give:
- a pixel's true class is one of the labels it got, and one that the starting vote (below) gives
  some pixel or the honeypots hold: a label only ever outvoted is a slip, never a class;
- each row of a confusion matrix has a Dirichlet prior: SMOOTHING pseudo-pixels in every cell (a
  class an annotator never saw, a label they never gave keep a non-zero probability) and, on the
  diagonal, DIAGONAL_PRIOR of the annotator's pixels more (an annotator calls a class by its name
  unless the pixels say otherwise), which a class with real pixels outweighs and a phantom class,
  made of a few coincident slips, does not;
- honeypots anchor it: an annotator's honeypot pixels (true class known) are counted in every
  M-step. They are counted, not taken alone: a few honeypots rarely show a rare slip (one swapped
  building in four scenes), and a row fixed to "never" would make EM explain the slip elsewhere;
- it starts from the winners of the vote weighted by the honeypot error rates (seed weights), not
  from a plain plurality, so a careful annotator outvoted by two careless ones starts out right,
  and a label only outvoted annotators gave starts with no pixels.
The ignore value is a label like any other: where every annotator leaves a region void it is void,
and an annotator who leaves an object unlabelled has that in their confusion row.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

SMOOTHING = 1.0  # pseudo-pixels per confusion cell and per prior class
DIAGONAL_PRIOR = 0.002  # per true class, this share of an annotator's pixels as pseudo-pixels labelled right
MAX_ITERATIONS = 100
TOLERANCE = 1e-6  # EM stops once no estimated probability moves by more than this
MIN_ERROR_RATE = 1e-3  # a vote weighs at most 1000: an annotator never right by definition


@dataclass(frozen=True)
class VoteCounts:
    """Distinct vote rows of one panel of annotators and the pixels that got each."""

    annotators: tuple[str, ...]
    votes: np.ndarray  # (n, m) label values: row t, column i is the label annotators[i] gave
    pixels: np.ndarray  # (n,)


GoldCounts = Mapping[str, Sequence[tuple[int, int, int]]]  # annotator -> (true label, label given, pixels)


def pooled(counts: Sequence[VoteCounts]) -> list[VoteCounts]:
    """One VoteCounts per panel (ordered annotators), identical rows summed: however many images a
    panel labelled, they reduce to a few hundred rows."""
    by_panel: dict[tuple[str, ...], list[VoteCounts]] = {}
    for table in counts:
        by_panel.setdefault(table.annotators, []).append(table)
    out = []
    for panel in sorted(by_panel):
        votes = np.concatenate([t.votes for t in by_panel[panel]]).astype(np.uint8)
        pixels = np.concatenate([t.pixels for t in by_panel[panel]]).astype(np.int64)
        rows, inverse = np.unique(votes, axis=0, return_inverse=True)
        out.append(VoteCounts(panel, rows, np.bincount(inverse.ravel(), weights=pixels, minlength=len(rows)).astype(np.int64)))
    return out


@dataclass(frozen=True)
class Reliability:
    """The estimates, over the label values `labels` (ascending): `counts[a][c, k]` is how many
    pixels of true class c annotator a labelled k (honeypot pixels counted, the rest expected under
    the final posteriors); `confusion[a]` the matrix EM used (rows sum to 1); `prior` the share of
    each true class among the fused pixels."""

    labels: tuple[int, ...]
    prior: np.ndarray
    confusion: Mapping[str, np.ndarray]
    counts: Mapping[str, np.ndarray]
    iterations: int
    truths: np.ndarray  # (K,) whether each label can be a pixel's true class

    def error_rate(self, annotator: str, ignore_index: int) -> float:
        """Share of the annotator's pixels of a true class (not void) given another label."""
        counts = self.counts[annotator].copy()
        if ignore_index in self.labels:
            counts[self.labels.index(ignore_index)] = 0
        total = counts.sum()
        return float((total - np.trace(counts)) / total) if total else 1.0

    def vote_weights(self, ignore_index: int) -> dict[str, float]:
        """Each annotator's vote: the inverse of their error rate (see pool_votes)."""
        return {a: 1.0 / max(self.error_rate(a, ignore_index), MIN_ERROR_RATE) for a in sorted(self.confusion)}

    def posterior(self, annotators: Sequence[str], votes: np.ndarray) -> np.ndarray:
        """(n, K) Dawid-Skene posterior of each true class (in `labels` order) for rows of votes,
        over the labels each row got that can be true classes."""
        lookup = np.full(256, -1, dtype=np.int64)
        lookup[list(self.labels)] = np.arange(len(self.labels))
        columns = lookup[votes.astype(np.int64)]
        if (columns < 0).any():
            raise ValueError(f"votes {sorted(set(votes[columns < 0].tolist()))} are not labels of the estimates")
        return _posterior(self.prior, np.stack([self.confusion[a] for a in annotators]), columns,
                          range(len(annotators)), self.truths)


def estimate_reliability(
    counts: Sequence[VoteCounts], gold: GoldCounts | None = None, seed_weights: Mapping[str, float] | None = None,
    smoothing: float = SMOOTHING, diagonal: float = DIAGONAL_PRIOR, max_iterations: int = MAX_ITERATIONS,
    tolerance: float = TOLERANCE,
) -> Reliability:
    """Dawid-Skene EM over every panel's vote rows, anchored by `gold` (per annotator, how many
    honeypot pixels of each true label they gave each label) and started from the vote weighted by
    `seed_weights` (an annotator not named weighs their mean, 1 when none is: an unknown annotator
    is most likely a typical one). Deterministic: the same counts give the same estimates."""
    if max_iterations < 1:
        raise ValueError(f"max_iterations must be at least 1, got {max_iterations}")
    gold, seed_weights = gold or {}, seed_weights or {}
    tables = pooled(counts)
    annotators = sorted({a for t in tables for a in t.annotators} | set(gold))
    values = {int(v) for t in tables for v in np.unique(t.votes)}
    values.update(int(v) for triples in gold.values() for c, k, _ in triples for v in (c, k))
    labels = tuple(sorted(values))
    size, where = len(labels), {a: i for i, a in enumerate(annotators)}
    lookup = np.zeros(256, dtype=np.int64)
    lookup[list(labels)] = np.arange(size)
    columns = [lookup[t.votes.astype(np.int64)] for t in tables]
    weights = [t.pixels.astype(np.float64) for t in tables]
    members = [[where[a] for a in t.annotators] for t in tables]
    anchor = np.zeros((len(annotators), size, size))
    for annotator, triples in gold.items():
        for true, given, pixels in triples:
            anchor[where[annotator], lookup[true], lookup[given]] += pixels
    unknown = float(np.mean(list(seed_weights.values()))) if seed_weights else 1.0
    seeds = [np.array([seed_weights.get(annotators[i], unknown) for i in who]) for who in members]

    posts = [_weighted_vote(cols, seed, size) for cols, seed in zip(columns, seeds, strict=True)]
    truths = anchor.sum(axis=(0, 2)) > 0
    for post in posts:
        truths |= post.any(axis=0)
    confusion = prior = None
    for iteration in range(1, max_iterations + 1):
        expected, new_prior = _expected_counts(posts, columns, weights, members, anchor)
        new_confusion = _confusion(expected, smoothing, diagonal)
        new_prior = (new_prior + smoothing) / (new_prior + smoothing).sum()
        posts = [_posterior(new_prior, new_confusion, cols, who, truths) for cols, who in zip(columns, members, strict=True)]
        moved = np.inf if confusion is None else max(np.abs(new_confusion - confusion).max(),
                                                      np.abs(new_prior - prior).max())
        confusion, prior = new_confusion, new_prior
        if moved <= tolerance:
            break
    expected, _ = _expected_counts(posts, columns, weights, members, anchor)
    return Reliability(labels, prior, {a: confusion[i] for a, i in where.items()},
                       {a: expected[i] for a, i in where.items()}, iteration, truths)


def _weighted_vote(columns: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Each row's winner of the weighted vote (see pool_votes), as a certain posterior: a label
    only outvoted annotators gave starts with no pixels, so no row of a matrix starts out as the
    reading "the careful annotator calls this class by another name"."""
    winner, _ = pool_votes(columns, weights)
    seeded = np.zeros((len(columns), size))
    seeded[np.arange(len(columns)), winner] = 1.0
    return seeded


def _expected_counts(posts, columns, weights, members, anchor) -> tuple[np.ndarray, np.ndarray]:
    """Per annotator, honeypot counts plus the expected pixels of each (true class, label given);
    and the expected pixels of each true class over the fused images."""
    counts = anchor.copy()
    prior = np.zeros(anchor.shape[1])
    for post, cols, weight, who in zip(posts, columns, weights, members, strict=True):
        expected = post * weight[:, None]
        prior += expected.sum(axis=0)
        for i, annotator in enumerate(who):
            by_label = np.zeros(anchor.shape[1:])
            np.add.at(by_label, cols[:, i], expected)  # [label given, true class]
            counts[annotator] += by_label.T
    return counts, prior


def _confusion(expected: np.ndarray, smoothing: float, diagonal: float) -> np.ndarray:
    """Confusion rows from expected counts and the Dirichlet prior: `smoothing` pseudo-pixels in
    every cell, and on the diagonal `diagonal` times the annotator's pixels more (a share, so that
    it weighs the same against a phantom class however many images there are)."""
    counts = expected + smoothing
    size = counts.shape[1]
    counts[:, np.arange(size), np.arange(size)] += diagonal * expected.sum(axis=(1, 2))[:, None]
    return counts / counts.sum(axis=2, keepdims=True)


def _posterior(prior: np.ndarray, confusion: np.ndarray, columns: np.ndarray, who, truths: np.ndarray) -> np.ndarray:
    """Dawid-Skene posterior of each row over the labels it got that can be true classes."""
    log_post = np.broadcast_to(np.log(prior), (len(columns), len(prior))).copy()
    voted = np.zeros(log_post.shape, dtype=bool)
    for i, annotator in enumerate(who):
        log_post += np.log(confusion[annotator])[:, columns[:, i]].T
        voted[np.arange(len(columns)), columns[:, i]] = True
    log_post[~(voted & truths)] = -np.inf
    post = np.exp(log_post - log_post.max(axis=1, keepdims=True))
    return post / post.sum(axis=1, keepdims=True)


def pool_votes(rows: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reliability-weighted vote on rows of votes (n, m) with each column's weight: per row, the
    label with the most weight behind it and the share of the weight that is (exactly 1 where all
    agree). A tie goes to the label of the heavier annotator, then of the earlier one."""
    weights = np.asarray(weights, dtype=np.float64)
    support, total = np.zeros(rows.shape), 0.0
    for i in range(rows.shape[1]):  # total summed in the same order as each unanimous row's support
        support += (rows == rows[:, i:i + 1]) * weights[i]
        total += weights[i]
    order = np.argsort(-weights, kind="stable")
    column = order[support[:, order].argmax(axis=1)]
    taken = np.arange(len(rows))
    return rows[taken, column], support[taken, column] / total
