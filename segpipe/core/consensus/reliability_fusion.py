"""Reliability fusion of one image: its vote rows decided by the reliability-weighted vote.

Why a weighted vote and not the Dawid-Skene posterior itself: that posterior multiplies the votes
as if annotators erred independently given the true class. At a boundary, or over an object two
careless annotators both missed, they do not; measured on the harness with known truth
(segpipe_tests/bench/fusion_harness.py), deciding by it releases worse masks than the best
annotator even with the true confusion matrices. So the estimates decide how much each vote
weighs, 1 / the annotator's estimated error rate (inverse-error weighting, as one combines noisy
measurements), and a pixel takes the label with the most weight behind it. Its posterior is the
share of the weight behind that label: the chance it is right if the truth is the label of an
annotator drawn in proportion to their reliability. Below consensus.min_confidence it is ignore.
A careful annotator then outweighs two careless ones, and comparable annotators outvote each
other's slips.

The outcome is remembered under the image's masks and settings, with the vote-weight shares it
was fused with; a later build reuses it while no annotator's share has moved by more than
consensus.estimate_tolerance, so re-estimating once per release re-fuses only images whose
annotators' estimates really moved (their released masks stay byte for byte otherwise).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from segpipe.core.consensus.reliability import pool_votes
from segpipe.core.consensus.vote_rows import ImageVotes
from segpipe.core.shared.artefacts import ArtefactStore, content_digest
from segpipe.core.shared.png import encode_mask_png
from segpipe.store import keys as store_keys

CACHE_BYTES = 128 * 1024 * 1024  # held between the estimate and fusion: about 45 images at 2048x1024


@dataclass(frozen=True)
class DecodedVotes:
    """What fusing an image needs from its masks: the first mask (painted on), its disputed pixels
    and the vote row of each."""

    first_mask: np.ndarray
    disputed: np.ndarray
    disputed_row: np.ndarray

    @property
    def size(self) -> int:
        return self.first_mask.nbytes + self.disputed.nbytes + self.disputed_row.nbytes


@dataclass
class DecodedCache:
    """Each image's DecodedVotes from the decode that counted its votes, kept for its fusion after
    the estimate, so a cold build decodes an image's masks once. Bounded: an image past the budget
    is decoded again."""

    budget: int = CACHE_BYTES
    held: dict[str, DecodedVotes] = field(default_factory=dict)
    used: int = 0

    def keep(self, image_id: str, decoded: DecodedVotes) -> None:
        if self.used + decoded.size <= self.budget:
            self.held[image_id] = decoded
            self.used += decoded.size

    def take(self, image_id: str) -> DecodedVotes | None:
        held = self.held.pop(image_id, None)
        if held is not None:
            self.used -= held.size
        return held


def weight_shares(weights: Sequence[float]) -> list[float]:
    total = float(sum(weights))
    return [w / total for w in weights]


def still_in_force(previous: dict | None, shares: Sequence[float], tolerance: float) -> bool:
    """Whether an image's remembered outcome stands: fused with the same annotators, whose vote
    shares have each moved by at most `tolerance` since."""
    if previous is None or len(previous["shares"]) != len(shares):
        return False
    return max(abs(a - b) for a, b in zip(previous["shares"], shares, strict=True)) <= tolerance


def decide_rows(votes: ImageVotes, weights: Sequence[float], min_confidence: float, ignore_index: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Each vote row's released label (ignore below min_confidence) and posterior as 0..255."""
    label, share = pool_votes(votes.rows, np.asarray(weights, dtype=np.float64))
    label = np.where(share < min_confidence, np.uint8(ignore_index), label).astype(np.uint8)
    return label, np.round(255 * share).astype(np.uint8)


def fuse_image(
    image_id: str, first_mask: np.ndarray, disputed: np.ndarray, votes: ImageVotes, weights: Sequence[float],
    min_confidence: float, ignore_index: int, store: ArtefactStore, palette: list[tuple[int, int, int]] | None,
) -> dict:
    """The fused mask and confidence map of an image (written to the store) and the outcome to
    remember. The fused mask is painted over `first_mask`, which the caller decoded for this."""
    label, confidence = decide_rows(votes, weights, min_confidence, ignore_index)
    fused, shown = first_mask, np.full(first_mask.shape, 255, dtype=np.uint8)
    fused.ravel()[disputed] = label[votes.disputed_row]
    shown.ravel()[disputed] = confidence[votes.disputed_row]
    png = encode_mask_png(fused, palette)
    fused_key = store_keys.fused_mask(image_id, content_digest(png))
    store.write_once(fused_key, png)
    heatmap = encode_mask_png(shown)
    map_key = store_keys.confidence_map(image_id, content_digest(heatmap))
    store.write_once(map_key, heatmap)
    class_pixels = np.bincount(label, weights=votes.pixels, minlength=256).astype(np.int64)
    return {"shares": weight_shares(weights), "weights": list(map(float, weights)), "fused_key": fused_key,
            "confidence_map_key": map_key, "class_pixels": class_pixels.tolist()}
