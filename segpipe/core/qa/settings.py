"""QA settings (pipeline.yaml `qa`): the thresholds the QA rules judge masks by.

A pydantic dataclass, so it is validated on construction and still built positionally or with
dataclasses.replace, as the QA code and its tests do; strict types refuse `true` or "5" for a number."""

from pydantic import ConfigDict, Field, StrictFloat, StrictInt
from pydantic.dataclasses import dataclass


@dataclass
class QaSettings:
    __pydantic_config__ = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    max_unlabeled_fraction: StrictFloat = Field(
        0.05, ge=0, le=1,
        description="An entry whose mask leaves more than this share of its pixels unlabelled is flagged. Raise it "
                    "where annotators leave background unlabelled on purpose.")
    max_error_failures: StrictInt = Field(
        0, ge=0,
        description="A blocking (ERROR) check fails, and stops the release, when more than this many entries fail "
                    "its rule. Raise it to tolerate a few known failures per rule.")
    vertex_tolerance_px: StrictFloat = Field(
        4.0, ge=0,
        description="A polygon vertex further than this many pixels outside the image is flagged; annotators' "
                    "clicks overshoot the border by a pixel or two. Raise it for tools that let vertices overshoot "
                    "further.")
    near_duplicate_bits: StrictInt = Field(
        4, ge=0, le=64,
        description="Two different image files whose 64-bit perceptual hashes differ in at most this many bits are "
                    "flagged as near copies (re-encoded, resized) and kept in one split. Lower it when distinct "
                    "but similar scenes are flagged; distinct demo scenes differ in 8 or more.")
    max_class_imbalance: StrictFloat = Field(
        1000.0, ge=0,
        description="Warn when the most common trainable class has more than this many times the pixels of the "
                    "rarest one present. Lower it to hear about imbalance sooner.")
    instance_area_sigma: StrictFloat = Field(
        4.0, ge=0,
        description="Warn about an object whose area is this many standard deviations (of log area) from its "
                    "class's mean: a stray drag or a label swap. Judged for classes with has_instances. Lower it "
                    "to see more outliers.")
    min_fragment_px: StrictInt = Field(
        0, ge=0,
        description="Warn when a mask has a class region (4-connected) of fewer pixels than this: the sliver of an "
                    "occluded polygon, a polygon too small to matter; ignore pixels never count. 0 or 1: off, as "
                    "the cracks between hand-drawn neighbouring polygons leave 1-pixel regions in most masks. Set "
                    "it (e.g. 50) to list and picture them.")
