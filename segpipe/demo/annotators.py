"""Simulated annotators: how each one redraws the true shapes.

Careful and careless annotators differ in vertex jitter, label confusion and
skipped small objects, which is what consensus and QA downstream must detect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segpipe.demo.scenes import Ring, Shape

# Jitter is quoted in pixels of the default 1024-wide frame and scaled with the
# frame, so small test frames keep the same overlap statistics.
REFERENCE_WIDTH = 1024
SMALL_OBJECTS = frozenset({"pole", "traffic_sign", "person"})


@dataclass(frozen=True)
class Annotator:
    name: str
    jitter_px: tuple[float, float]  # per-shape Gaussian sigma is drawn from this range
    confusions: tuple[tuple[str, str, float], ...] = ()  # (label, label, chance of swapping)
    drop_small: float = 0.0  # chance of skipping a pole, sign or person


ANNOTATORS: dict[str, Annotator] = {
    annotator.name: annotator
    for annotator in (
        Annotator("gold", (0.0, 0.0)),
        Annotator("alice", (0.7, 0.7)),
        Annotator("bob", (1.2, 1.2), (("sidewalk", "road", 0.02),)),
        Annotator("carol", (4.0, 6.0), (("sidewalk", "road", 0.15), ("car", "person", 0.04)), 0.10),
        # A segmentation model's pre-labels: tight outlines, but it often takes a sidewalk for road.
        Annotator("segnet", (0.5, 0.8), (("sidewalk", "road", 0.2),)),
    )
}


def annotate(annotator: Annotator, truth: tuple[Shape, ...], width: int, rng: np.random.Generator) -> tuple[Shape, ...]:
    """The annotator's version of the true shapes, in the same painter's order."""
    scale = width / REFERENCE_WIDTH
    drawn = []
    for shape in truth:
        if shape.label in SMALL_OBJECTS and rng.random() < annotator.drop_small:
            continue
        sigma = rng.uniform(*annotator.jitter_px) * scale
        rings = tuple(_jittered(ring, sigma, rng) for ring in shape.rings)
        drawn.append(Shape(_confused(annotator, shape.label, rng), rings, shape.z_order))
    return tuple(drawn)


def _confused(annotator: Annotator, label: str, rng: np.random.Generator) -> str:
    for first, second, chance in annotator.confusions:
        if label in (first, second):
            if rng.random() < chance:
                return second if label == first else first
            return label
    return label


def _jittered(ring: Ring, sigma: float, rng: np.random.Generator) -> Ring:
    """Gaussian vertex noise, cut at 2 sigma: a slip of the hand, never a wild click.

    Not clamped to the frame: border vertices may land a few pixels outside, as real ones do.
    """
    offsets = np.clip(rng.normal(0.0, sigma, size=(len(ring), 2)), -2 * sigma, 2 * sigma)
    return tuple((float(x + dx), float(y + dy)) for (x, y), (dx, dy) in zip(ring, offsets, strict=True))
