"""Release settings (pipeline.yaml `release`): how a release is cut into parts in the store, on how
many processes its per-image annotations are computed, and which versions `segpipe gc` keeps.

A pydantic dataclass, validated on construction; strict types refuse `true` or "5" for a number."""

from pydantic import ConfigDict, Field, StrictFloat, StrictInt, StrictStr
from pydantic.dataclasses import dataclass

MIB = 1 << 20


@dataclass
class ReleaseSettings:
    __pydantic_config__ = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    part_mib: StrictFloat | StrictInt = Field(
        256, gt=0,
        description="The size, in MiB of images, at which a release's images are cut into parts that later "
                    "versions share (see docs/release-format.md): a dataset whose images and masks fit in one part "
                    "is one ZIP. Larger parts mean fewer files; smaller ones mean a nightly or a re-split rewrites "
                    "less.")
    workers: StrictInt = Field(
        2, ge=1,
        description="Processes a release computes its per-image annotations on (YOLO outlines traced from each "
                    "mask, COCO annotations drawn from each mask's shapes) before writing them: the build's own "
                    "and workers - 1 helpers, each helper about 180 MiB. 2 uses both cores of a small host; 1 "
                    "computes them in the build's process as it writes. The release is the same whatever the "
                    "number.")
    keep_last: StrictInt | None = Field(
        None, ge=1,
        description="`segpipe gc` keeps this many of the newest versions, the one latest.json names and those in "
                    "`keep`, and deletes the others with every part no kept version uses. Unset: every version is "
                    "kept, and gc deletes only parts no version uses (left by failed publishes).")
    keep: tuple[StrictStr, ...] = Field(
        (),
        description="Versions `segpipe gc` keeps whatever keep_last says: those a team has pinned.")
    gc_grace_hours: StrictFloat | StrictInt = Field(
        24, gt=0,
        description="`segpipe gc` deletes an unused part only once it is older than this, so the parts a "
                    "publisher has written but not yet committed are safe. Keep it above the longest release "
                    "build.")

    @property
    def part_bytes(self) -> int:
        return max(1, round(self.part_mib * MIB))
