"""Consensus settings (pipeline.yaml `consensus`): how annotators' masks are fused and scored."""

from dataclasses import dataclass
from typing import Literal

LowScorerPolicy = Literal["exclude", "review"]
FusionRule = Literal["plurality", "honeypot_weighted"]


@dataclass(frozen=True)
class ConsensusSettings:
    quorum: float
    min_agreement: float
    boundary_tolerance: int = 2  # pixels: how far a boundary may stray from gold's and still match
    min_honeypot_iou: float | None = None  # annotators scoring below on honeypots are excluded or reviewed
    low_scorer: LowScorerPolicy = "exclude"
    fusion: FusionRule = "plurality"  # honeypot_weighted: each vote weighs the annotator's honeypot mean IoU
