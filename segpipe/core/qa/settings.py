"""QA settings (pipeline.yaml `qa`): the thresholds the QA rules judge masks by."""

from dataclasses import dataclass


@dataclass(frozen=True)
class QaSettings:
    max_unlabeled_fraction: float
    max_error_failures: int
    vertex_tolerance_px: float = 4.0  # how far outside the image a polygon vertex may lie unflagged
    near_duplicate_bits: int = 4  # perceptual-hash bits two images may differ in and count as near copies
    max_class_imbalance: float = 1000.0  # most over least common trainable class, in pixels
    instance_area_sigma: float = 4.0  # standard deviations of log area from the class mean that flag a shape
    min_fragment_px: int = 0  # a class region with fewer pixels is a fragment; 0 or 1: no fragment rule
