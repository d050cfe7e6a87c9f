"""Release settings (pipeline.yaml `release`): how a release is cut into parts in the store, on how
many processes its per-image annotations are computed, which versions `segpipe gc` keeps, and which
trainer layouts (exports) it carries besides its own.

A pydantic dataclass, validated on construction; strict types refuse `true` or "5" for a number."""

from typing import Literal

from pydantic import ConfigDict, Field, StrictFloat, StrictInt, StrictStr, field_validator
from pydantic.dataclasses import dataclass

from segpipe.core.ingest.batch import METADATA_COLUMNS

MIB = 1 << 20
# The export writers' names (writers/cityscapes.py, voc.py, hf.py); test_exports checks they match.
ExportName = Literal["cityscapes", "voc", "hf"]
CITY_FROM_BATCH = "batch"


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
                    "kept, and gc deletes only parts no version uses (left by failed publishes). Either way it "
                    "deletes the masks no table names any more (a taxonomy edit's earlier ones), their memos and the "
                    "QA thumbnails no table names.")
    keep: tuple[StrictStr, ...] = Field(
        (),
        description="Versions `segpipe gc` keeps whatever keep_last says: those a team has pinned.")
    gc_grace_hours: StrictFloat | StrictInt = Field(
        24, gt=0,
        description="`segpipe gc` deletes an unused part, or a mask no table names, only once it is older than "
                    "this, so what a publisher or a build has written but not yet committed is safe. Keep it above "
                    "the longest build.")

    exports: tuple[ExportName, ...] = Field(
        (),
        description="Trainer layouts the release carries besides its own (see docs/release-format.md): "
                    "`cityscapes` (gtFine/<split>/<city>/*_gtFine_labelTrainIds.png, and *_gtFine_labelIds.png "
                    "with the Cityscapes presets), `voc` (SegmentationClass/ palette PNGs, ImageSets/Segmentation/, "
                    "labelmap.txt) and `hf` (a Hugging Face `datasets` card). Their label files are members of the "
                    "release; their images are the release's own, linked into place by `segpipe fetch VERSION DIR "
                    "--layout NAME`, so no image is stored twice.")
    cityscapes_city: StrictStr = Field(
        CITY_FROM_BATCH,
        description="What the Cityscapes layout's <city> folder (and the first part of its file names) is: "
                    "`batch`, the pseudonym of the batch that first delivered the image, or a metadata column "
                    f"({', '.join(METADATA_COLUMNS)}); an image without a value for the column goes under "
                    "`unknown`.")

    @field_validator("exports")
    @classmethod
    def _each_once(cls, exports: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(exports)) != len(exports):
            raise ValueError(f"lists an export twice: {list(exports)}")
        return exports

    @field_validator("cityscapes_city")
    @classmethod
    def _known_city_source(cls, city: str) -> str:
        if city not in (CITY_FROM_BATCH, *METADATA_COLUMNS):
            raise ValueError(f"must be {CITY_FROM_BATCH!r} or a metadata column: {', '.join(METADATA_COLUMNS)}")
        return city

    @property
    def part_bytes(self) -> int:
        return max(1, round(self.part_mib * MIB))
