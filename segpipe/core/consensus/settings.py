"""Consensus settings (pipeline.yaml `consensus`): how annotators' masks are fused and scored.

A pydantic dataclass, so it is validated on construction and still built positionally, as the
consensus code and its tests do; strict types refuse `true` or "5" for a number."""

from typing import Literal

from pydantic import ConfigDict, Field, StrictBool, StrictFloat, StrictInt
from pydantic.dataclasses import dataclass

LowScorerPolicy = Literal["exclude", "review"]
FusionRule = Literal["reliability", "plurality", "honeypot_weighted"]


@dataclass
class ConsensusSettings:
    # by name as well as by alias in Python (dataclasses.replace passes names); a file uses the alias alone
    __pydantic_config__ = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, validate_by_name=True)

    quorum: StrictFloat = Field(
        0.5, ge=0, le=1,
        description="Plurality and honeypot_weighted fusion: a pixel keeps the plurality class only if at least this "
                    "share of the annotators' votes chose it; ties and pixels below quorum become ignore. Raise it for "
                    "stricter masks with more ignore pixels.")
    min_agreement: StrictFloat = Field(
        0.6, ge=0, le=1,
        description="Images whose mean pairwise IoU between annotators is below this go to review, not the "
                    "release. Raise it to release only images annotators agree on closely.")
    boundary_tolerance: StrictInt = Field(
        2, ge=0, alias="boundary_tolerance_px",
        description="Honeypot boundary F1: a boundary pixel within this many pixels of gold's counts as matched. "
                    "Raise it for large images, where a boundary a few pixels off is still right.")
    min_honeypot_iou: StrictFloat | None = Field(
        None, ge=0, le=1,
        description="Annotators whose mean IoU on honeypots is below this are left out of fusion or send the "
                    "images they labelled to review (see low_scorer). Unset: every annotator takes part.")
    low_scorer: LowScorerPolicy = Field(
        "exclude",
        description="What happens to an annotator below min_honeypot_iou. exclude: their masks are left out of "
                    "fusion. review: the images they labelled go to review.")
    fusion: FusionRule = Field(
        "reliability",
        description="How annotators' votes count. reliability: each annotator's per-class reliability is estimated "
                    "over every image (expectation-maximisation, anchored by honeypots) and each vote weighs the "
                    "inverse of the annotator's estimated error rate; it applies to images with three or more "
                    "annotators, and to two-annotator images once honeypots exist (else they fall back to "
                    "plurality). plurality: one vote each. honeypot_weighted: each vote weighs the annotator's "
                    "honeypot mean IoU (one without honeypots weighs the mean of those with), and quorum is a share "
                    "of the image's total weight.")
    min_confidence: StrictFloat = Field(
        0.5, ge=0, le=1,
        description="Reliability fusion: a pixel whose posterior (the share of the weighted vote behind its class) is "
                    "below this becomes ignore. Raise it for masks with fewer doubtful pixels and more ignore.")
    estimate_tolerance: StrictFloat = Field(
        0.02, ge=0, le=1,
        description="Reliability fusion: an image fused by an earlier build keeps its mask until some annotator's share "
                    "of its vote weight has moved by more than this since, so a release re-fuses only images whose "
                    "annotators' estimates really moved. 0 re-fuses on any change.")
    models_vote: StrictBool = Field(
        False,
        description="Whether a model's masks (model batches, annotator model:<name>) vote in fusion like a person's, "
                    "weighed as the fusion rule weighs any annotator (by its estimated reliability or honeypot "
                    "IoU). Off by default: people often start from the model's pre-labels, so its errors are "
                    "already in their masks, and counting it again would outvote the person who corrected it. "
                    "Models are scored on honeypots either way.")
    model_disagreement_iou: StrictFloat | None = Field(
        0.5, ge=0, le=1,
        description="An image whose model mask and released people's mask have a class IoU below this, for any "
                    "class either uses, goes to review (status model_review), listing the classes in dispute. "
                    "Unset: model masks never send an image to review.")
