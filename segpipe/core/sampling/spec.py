"""The distribution spec (pipeline.yaml `sampling`): the mix of images a release should have.

A production dataset is chosen, not dumped: a foundation drawn as the data comes (everyday
scenes in their natural proportions), a targeted share that fills the proportions asked of each
strata column (camera, city, time_of_day, any image metadata column), floors for rare classes in
every split, and splits grouped so one scene (a sequence) never lands in two. Every key but seed,
group_by and splits is optional: without target_size every accepted image is released, without
strata only the splits are balanced.

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

from dataclasses import dataclass, field
from typing import Any

import orjson

from segpipe.core.shared.config_fields import column_name, count, fraction, section
from segpipe.core.shared.errors import ConfigError

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class RareClassFloors:
    """Each trainable class in at least min_images images and min_pixel_share of the labelled
    pixels of every split, as far as the data allows (a class in two images cannot be in three splits)."""

    min_images: int = 0
    min_pixel_share: float = 0.0


@dataclass(frozen=True)
class DistributionSpec:
    seed: int
    group_by: str
    splits: dict[str, float]
    target_size: int | None = None
    foundation_share: float = 1.0
    strata: dict[str, dict[str, float]] = field(default_factory=dict)
    rare_classes: RareClassFloors = RareClassFloors()
    tolerance: float = 0.05

    def fingerprint(self) -> str:
        """What an image's split depends on: a nightly build keeps earlier assignments while this
        stays the same, and assigns afresh once it changes."""
        return orjson.dumps([self.seed, self.group_by, self.splits, self.target_size, self.foundation_share,
                             self.strata, [self.rare_classes.min_images, self.rare_classes.min_pixel_share]],
                            option=orjson.OPT_SORT_KEYS).decode()


SPEC_KEYS = {"seed", "group_by", "splits"}
OPTIONAL_KEYS = {"target_size", "foundation_share", "strata", "rare_classes", "tolerance"}


def parse_distribution_spec(doc: Any, where: str) -> DistributionSpec:
    """The `sampling` section, validated; `where` names the file in errors."""
    spec = section(doc, f"{where}: sampling", SPEC_KEYS, OPTIONAL_KEYS)
    splits = spec["splits"]
    if not isinstance(splits, dict) or set(splits) != set(SPLITS):
        raise ConfigError(f"{where}: sampling.splits must give exactly {list(SPLITS)}, got {splits!r}")
    for split, share in splits.items():
        fraction(share, f"{where}: sampling.splits.{split}")
    if abs(sum(splits.values()) - 1.0) > 1e-6:
        raise ConfigError(f"{where}: sampling.splits must add up to 1, they add up to {sum(splits.values())}")
    target_size = spec.get("target_size")
    if target_size is not None and (count(target_size, f"{where}: sampling.target_size") == 0):
        raise ConfigError(f"{where}: sampling.target_size must be at least 1, got 0")
    strata = spec.get("strata") or {}
    if not isinstance(strata, dict):
        raise ConfigError(f"{where}: sampling.strata must map a column to {{value: share}}, got {strata!r}")
    targets = {}
    for column, shares in strata.items():
        place = f"{where}: sampling.strata.{column}"
        column_name(column, place)
        if not isinstance(shares, dict) or not shares:
            raise ConfigError(f"{place}: must map each value to its share, got {shares!r}")
        targets[column] = {str(value): fraction(share, f"{place}.{value}") for value, share in shares.items()}
        if abs(sum(targets[column].values()) - 1.0) > 1e-6:
            raise ConfigError(f"{place}: shares must add up to 1, they add up to {sum(targets[column].values()):g}")
    floors = section(spec.get("rare_classes") or {}, f"{where}: sampling.rare_classes", set(),
                     {"min_images", "min_pixel_share"})
    return DistributionSpec(
        seed=count(spec["seed"], f"{where}: sampling.seed"),
        group_by=column_name(spec["group_by"], f"{where}: sampling.group_by"),
        splits={s: float(splits[s]) for s in SPLITS},
        target_size=target_size,
        foundation_share=fraction(spec.get("foundation_share", DistributionSpec.foundation_share),
                                  f"{where}: sampling.foundation_share"),
        strata=targets,
        rare_classes=RareClassFloors(
            min_images=count(floors.get("min_images", 0), f"{where}: sampling.rare_classes.min_images"),
            min_pixel_share=fraction(floors.get("min_pixel_share", 0.0), f"{where}: sampling.rare_classes.min_pixel_share"),
        ),
        tolerance=fraction(spec.get("tolerance", DistributionSpec.tolerance), f"{where}: sampling.tolerance"),
    )
