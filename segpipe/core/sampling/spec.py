"""The distribution spec (pipeline.yaml `sampling`): the mix of images a release should have.

A production dataset is chosen, not dumped: a foundation drawn as the data comes (everyday
scenes in their natural proportions), a targeted share that fills the proportions asked of each
strata column (camera, city, time_of_day, any image metadata column), floors for rare classes in
every split, and splits grouped so one scene (a sequence) never lands in two. Every key is
optional: without target_size every accepted image is released, without strata only the splits
are balanced.

    sampling:
      seed: 7
      group_by: sequence_id
      splits: {train: 0.7, val: 0.15, test: 0.15}
      target_size: 90              # images to release; default: all accepted
      foundation_share: 0.5        # of target_size drawn in natural proportions; the rest is targeted
      strata:                      # column -> value -> share of the selection (shares add up to 1)
        time_of_day: {day: 0.45, dusk: 0.25, night: 0.3}
      rare_classes: {min_images: 2, min_pixel_share: 0.001}   # per split, where the data allows
      tolerance: 0.05              # how far an achieved share may stray from its target
"""

from typing import Annotated, Literal, get_args

import orjson
from pydantic import (AfterValidator, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, TypeAdapter,
                      ValidationError, field_validator)
from pydantic.dataclasses import dataclass

from segpipe.core.shared.errors import ConfigError, validation_problems

Split = Literal["train", "val", "test"]
SPLITS: tuple[str, ...] = get_args(Split)
Share = Annotated[StrictFloat, Field(ge=0, le=1)]


def _adds_up_to_one(shares: dict[str, float]) -> dict[str, float]:
    if not shares:
        raise ValueError("must give each value its share")
    total = sum(shares.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"shares must add up to 1, they add up to {total:g}")
    return shares


def _every_split(splits: dict[str, float]) -> dict[str, float]:
    """All three splits, in SPLITS order; a split meant to stay empty is given 0, so none is forgotten."""
    missing = [split for split in SPLITS if split not in splits]
    if missing:
        raise ValueError(f"must give a share for each of {', '.join(SPLITS)}; missing: {', '.join(missing)}")
    return {split: splits[split] for split in SPLITS}


Shares = Annotated[dict[str, Share], AfterValidator(_adds_up_to_one)]
SplitShares = Annotated[dict[Split, Share], AfterValidator(_every_split), AfterValidator(_adds_up_to_one)]


@dataclass
class RareClassFloors:
    """Each trainable class in at least min_images images and min_pixel_share of the labelled
    pixels of every split, as far as the data allows (a class in two images cannot be in three splits)."""

    __pydantic_config__ = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    min_images: StrictInt = Field(
        0, ge=0,
        description="Each trainable class appears in at least this many images of every split, where the data "
                    "allows. Raise it so every split can evaluate rare classes.")
    min_pixel_share: StrictFloat = Field(
        0.0, ge=0, le=1,
        description="Each trainable class holds at least this share of the labelled pixels of every split, where "
                    "the data allows.")


@dataclass
class DistributionSpec:
    """A pydantic dataclass, so it is validated on construction and still built with keywords or
    dataclasses.replace, as the sampling code, its tests and benchmarks do."""

    __pydantic_config__ = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    seed: StrictInt = Field(
        0, ge=0,
        description="Seeds the random choices of selection and splitting, so a build is reproducible. Changing it "
                    "draws another selection and split; earlier split assignments are redone.")
    group_by: StrictStr = Field(
        "sequence_id", min_length=1,
        description="The image metadata column whose value groups images that must share a split (the frames of "
                    "one sequence); near-duplicate images are kept together too. An image without a value is its "
                    "own group.")
    splits: SplitShares = Field(
        default_factory=lambda: {"train": 0.7, "val": 0.15, "test": 0.15},
        description="Share of the selection in each split: train, val and test, adding up to 1.")
    target_size: StrictInt | None = Field(
        None, ge=1,
        description="Images to release. Unset: every accepted image. Set it to cap the release or to leave room "
                    "for the strata targets.")
    foundation_share: StrictFloat = Field(
        1.0, ge=0, le=1,
        description="Share of target_size drawn in the data's natural proportions; the rest is chosen to bring the "
                    "selection to the strata targets.")
    strata: dict[Annotated[StrictStr, Field(min_length=1)], Shares] = Field(
        default_factory=dict,
        description="Per image metadata column (camera, city, time_of_day, weather or any other), the share of the "
                    "selection each value should have; a column's shares add up to 1 and a value not listed gets "
                    "0. Every split is balanced on these columns too.")
    rare_classes: RareClassFloors = Field(
        default_factory=RareClassFloors,
        description="Floors for rare classes in every split, where the data allows.")
    tolerance: StrictFloat = Field(
        0.05, ge=0, le=1,
        description="How far an achieved share may stray from its target. A target further from what the data can "
                    "give at all fails the build before sampling, naming the value and what the data offers.")

    @field_validator("strata", "rare_classes", mode="before")
    @classmethod
    def _empty_when_unset(cls, value: object) -> object:
        """A key whose contents are all commented out reads as null: the defaults."""
        return {} if value is None else value

    @field_validator("strata", mode="before")
    @classmethod
    def _values_as_text(cls, strata: object) -> object:
        """Metadata values are text: YAML's `2019: 0.5` names the value "2019"."""
        if not isinstance(strata, dict):
            return strata
        return {column: {str(value): share for value, share in shares.items()} if isinstance(shares, dict) else shares
                for column, shares in strata.items()}

    def fingerprint(self) -> str:
        """What an image's split depends on: a nightly build keeps earlier assignments while this
        stays the same, and assigns afresh once it changes."""
        return orjson.dumps([self.seed, self.group_by, self.splits, self.target_size, self.foundation_share,
                             self.strata, [self.rare_classes.min_images, self.rare_classes.min_pixel_share]],
                            option=orjson.OPT_SORT_KEYS).decode()


def parse_distribution_spec(doc: object, origin: str) -> DistributionSpec:
    """The `sampling` section of `origin`, already loaded, validated on its own; raises ConfigError naming
    every problem (without lines: those come from the file, see segpipe.core.config)."""
    try:
        return TypeAdapter(DistributionSpec).validate_python({} if doc is None else doc, by_name=False)
    except ValidationError as error:
        raise ConfigError(validation_problems(error, origin, DistributionSpec, prefix=("sampling",))) from None
