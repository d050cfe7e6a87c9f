"""Golden-distribution sampling: select a release's images and split them, per the distribution spec.

The steps live in their own modules: units (what moves together), selection
(which units, and whether the spec is feasible at all), splits (which split). This one
joins them and keeps a nightly build stable: given the previous build's assignments under the
same spec, every image keeps its split and selection, and only new images are decided.
"""

import io
from dataclasses import dataclass

import numpy as np
import polars as pl

from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.sampling.spec import SPLITS, DistributionSpec
from segpipe.core.sampling.selection import SELECTED_BY, UNSELECTED, InfeasibleSpec, infeasibilities, select_units
from segpipe.core.sampling.units import SamplingUnits, build_units
from segpipe.core.shared.schemas import SplitRecord, polars_schema
from segpipe.core.sampling.splits import UNASSIGNED, assign_splits
from segpipe.store import keys as store_keys


@dataclass(frozen=True)
class Sample:
    splits: pl.DataFrame  # SplitRecord: every candidate image, split null when not selected
    units: SamplingUnits
    unit_split: np.ndarray  # per unit, index into SPLITS or UNASSIGNED


def sample_dataset(images: pl.DataFrame, spec: DistributionSpec, class_ids: list[int],
                   previous: pl.DataFrame | None = None, near_pairs: list[tuple[str, str]] = ()) -> Sample:
    """Select and split `images` (image_id, the group_by and strata columns, class_pixels).

    previous: an earlier result (image_id, split, spec_fingerprint); used only if made under
    this spec. near_pairs: image ids of near-duplicate pairs, kept in one split. Raises
    InfeasibleSpec, naming every constraint the data cannot meet, before deciding anything."""
    absent = [c for c in [spec.group_by, *spec.strata] if c not in images.columns]
    if absent:
        known = ", ".join(c for c in images.columns if c not in ("image_id", "class_pixels"))
        raise InfeasibleSpec(f"sampling names columns the images do not have: {absent} (they have: {known})")
    units = build_units(images, spec.group_by, list(spec.strata), class_ids, spec.seed, near_pairs)
    ratios = np.array([spec.splits[s] for s in SPLITS])
    active = int((ratios > 0).sum())
    problems = infeasibilities(units, spec)
    if problems:
        raise InfeasibleSpec("the distribution spec cannot be met by the data:\n  " + "\n  ".join(problems))
    before = previous_unit_splits(units, previous, spec.fingerprint())
    choice = select_units(units, spec, before != UNASSIGNED, active)
    unit_split = assign_splits(units, choice != UNSELECTED, ratios, before, spec.rare_classes.min_images)
    split_names = np.array([*SPLITS, None], dtype=object)
    selected_names = np.array([*SELECTED_BY, None], dtype=object)
    unit = units.unit_of_image
    frame = pl.DataFrame({
        "image_id": units.image_ids,
        "split": split_names[unit_split[unit]].tolist(),
        "unit_key": np.array(units.keys, dtype=object)[unit].tolist(),
        "selected_by": selected_names[choice[unit]].tolist(),
        "spec_fingerprint": spec.fingerprint(),
    }, schema=polars_schema(SplitRecord))
    return Sample(SplitRecord.validate(frame), units, unit_split)


def previous_unit_splits(units: SamplingUnits, previous: pl.DataFrame | None, fingerprint: str) -> np.ndarray:
    """Per unit, the split most of its previously selected images had under the same spec."""
    before = np.full(len(units), UNASSIGNED, dtype=np.int64)
    if previous is None or previous.is_empty():
        return before
    earlier = previous.filter((pl.col("spec_fingerprint") == fingerprint) & pl.col("split").is_not_null())
    split_index = {split: i for i, split in enumerate(SPLITS)}
    position = {image_id: i for i, image_id in enumerate(units.image_ids)}
    votes = np.zeros((len(units), len(SPLITS)), dtype=np.int64)
    for image_id, split in earlier.select("image_id", "split").iter_rows():
        if image_id in position:
            votes[units.unit_of_image[position[image_id]], split_index[split]] += 1
    voted = votes.sum(axis=1) > 0
    before[voted] = votes[voted].argmax(axis=1)
    return before


def kept_assignments(splits: pl.DataFrame, previous: pl.DataFrame | None) -> int:
    """Images whose split an earlier build under the same spec gave them."""
    if previous is None:
        return 0
    earlier = previous.select("image_id", pl.col("split").alias("earlier"), pl.col("spec_fingerprint").alias("earlier_spec"))
    same = splits.join(earlier, on="image_id").filter(
        (pl.col("spec_fingerprint") == pl.col("earlier_spec")) & (pl.col("split") == pl.col("earlier")))
    return same.height


def split_proportions(splits: pl.DataFrame) -> dict[str, float]:
    """Share of the selected images in each split."""
    selected = splits.filter(pl.col("split").is_not_null())
    counts = dict(selected.group_by("split").len().iter_rows())
    total = selected.height or 1
    return {split: counts.get(split, 0) / total for split in SPLITS}


def remembered_assignments(store: ArtefactStore) -> pl.DataFrame | None:
    """The splits table of the last build, if there was one."""
    return pl.read_parquet(io.BytesIO(store.read(store_keys.ASSIGNMENTS))) if store.exists(store_keys.ASSIGNMENTS) else None


def remember_assignments(store: ArtefactStore, splits: pl.DataFrame) -> None:
    out = io.BytesIO()
    splits.write_parquet(out)
    store.write(store_keys.ASSIGNMENTS, out.getvalue())


def unselected_reasons(splits: pl.DataFrame, spec: DistributionSpec) -> dict[str, str]:
    """Why each image sampling left out is not released, for the ledger."""
    reason = (f"not selected: the distribution spec's target_size of {spec.target_size} images was filled by "
              "images that fit its targets better")
    return dict.fromkeys(splits.filter(pl.col("split").is_null())["image_id"].to_list(), reason)
