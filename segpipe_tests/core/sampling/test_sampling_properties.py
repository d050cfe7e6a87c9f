"""Properties of golden-distribution sampling (issue 6) over generated manifests.

Every pool is a list of sequences (the spec's group_by column) of a few images, each image with a
camera, a time_of_day and the classes it holds (class_pixels); some images have no sequence and
are their own group. Near-duplicate pairs are drawn among the pool's images.
"""

import numpy as np
import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from segpipe.core.sampling.spec import SPLITS, DistributionSpec, RareClassFloors
from segpipe.core.sampling.selection import InfeasibleSpec
from segpipe.core.sampling.sample import sample_dataset

CLASS_IDS = [1, 2, 3, 4]
CAMERAS = ("front", "rear")
TIMES = ("day", "dusk", "night")
RATIOS = {"train": 0.7, "val": 0.15, "test": 0.15}
SCHEMA = {"image_id": pl.String, "sequence_id": pl.String, "camera": pl.String, "time_of_day": pl.String,
          "class_pixels": pl.List(pl.Int64)}


def manifest(rows: list[tuple[str, str | None, str, str, dict[int, int]]]) -> pl.DataFrame:
    """(image_id, sequence_id, camera, time_of_day, {class id: pixels}) per image."""
    return pl.DataFrame([{"image_id": image_id, "sequence_id": group, "camera": camera, "time_of_day": time,
                          "class_pixels": [classes.get(c, 0) for c in range(256)]}
                         for image_id, group, camera, time, classes in rows], schema=SCHEMA)


CLASS_SETS = st.lists(st.sampled_from(CLASS_IDS), max_size=3)  # classes of an image, drawn with its pixels
PIXELS = st.integers(1, 500)


@st.composite
def pool_rows(draw: st.DrawFn, min_groups: int = 6, max_groups: int = 20, max_size: int = 4, prefix: str = "") -> list:
    sizes = st.integers(1, max_size)
    image = st.tuples(st.sampled_from(TIMES), CLASS_SETS, PIXELS)
    rows = []
    for g in range(draw(st.integers(min_groups, max_groups))):
        grouped = draw(st.integers(0, 3)) > 0  # a quarter of the images have no sequence
        camera = draw(st.sampled_from(CAMERAS))
        for k in range(draw(sizes) if grouped else 1):
            time, classes, pixels = draw(image)
            rows.append((f"{prefix}img{g:02d}_{k}", f"{prefix}seq{g:02d}" if grouped else None, camera, time,
                         {c: pixels + c for c in classes}))
    return rows


@st.composite
def pairs_among(draw: st.DrawFn, image_ids: list[str], max_pairs: int = 3) -> list[tuple[str, str]]:
    pairs = draw(st.lists(st.tuples(st.sampled_from(image_ids), st.sampled_from(image_ids)), max_size=max_pairs))
    return [(a, b) for a, b in pairs if a != b]


def spec(**overrides) -> DistributionSpec:
    return DistributionSpec(**{"seed": 7, "group_by": "sequence_id", "splits": RATIOS, **overrides})


def natural_shares(images: pl.DataFrame, column: str) -> dict[str, float]:
    """A column's shares in the data: a strata target any target_size can meet."""
    counts = dict(images.group_by(column).len().iter_rows())
    return {value: n / images.height for value, n in counts.items()}


def split_of(splits: pl.DataFrame) -> dict[str, str | None]:
    return dict(splits.select("image_id", "split").iter_rows())


def target_for(images: pl.DataFrame, share: float | None) -> int | None:
    return None if share is None else max(1, round(share * images.height))


@settings(max_examples=50, deadline=None)
@given(st.data(), pool_rows(), st.integers(0, 2**31 - 1), st.none() | st.floats(0.2, 0.9), st.integers(0, 2**16))
def test_the_same_input_and_seed_give_the_same_splits_in_any_row_order(data, rows, seed, share, shuffle):
    images = manifest(rows)
    pairs = data.draw(pairs_among(images["image_id"].to_list()))
    target = target_for(images, share)
    strata = {"time_of_day": natural_shares(images, "time_of_day")} if target else {}
    the_spec = spec(seed=seed, target_size=target, foundation_share=0.5, strata=strata,
                    rare_classes=RareClassFloors(min_images=1))
    first = sample_dataset(images, the_spec, CLASS_IDS, near_pairs=pairs)
    rng = np.random.default_rng(shuffle)
    shuffled_pairs = [(b, a) if rng.random() < 0.5 else (a, b) for a, b in reversed(pairs)]
    again = sample_dataset(images.sample(fraction=1.0, shuffle=True, seed=shuffle), the_spec, CLASS_IDS,
                           near_pairs=shuffled_pairs)
    assert again.splits.equals(first.splits)
    assert sorted(first.splits["image_id"]) == sorted(images["image_id"])


@settings(max_examples=50, deadline=None)
@given(st.data(), pool_rows(), st.none() | st.floats(0.2, 0.9))
def test_no_group_and_no_near_duplicate_pair_spans_two_splits(data, rows, share):
    images = manifest(rows)
    pairs = data.draw(pairs_among(images["image_id"].to_list()))
    the_spec = spec(target_size=target_for(images, share), foundation_share=0.5,
                    rare_classes=RareClassFloors(min_images=1))
    splits = sample_dataset(images, the_spec, CLASS_IDS, near_pairs=pairs).splits
    per_group = (splits.join(images.select("image_id", "sequence_id"), on="image_id")
                 .filter(pl.col("sequence_id").is_not_null())
                 .group_by("sequence_id").agg(pl.col("split").n_unique()))  # null (not selected) counts as one
    assert per_group.filter(pl.col("split") > 1)["sequence_id"].to_list() == []
    split = split_of(splits)
    assert [(a, b) for a, b in pairs if split[a] != split[b]] == []


@st.composite
def pools_with_feasible_floors(draw: st.DrawFn) -> tuple[list, int]:
    """Groups each planted in one split, and every class in min_images images of the groups planted
    in each split: the planted assignment meets every floor, so a floor is never out of reach. Each
    class so sits in at least 3 * min_images distinct groups."""
    min_images = draw(st.integers(1, 3))
    sizes, rows, planted = st.integers(1, 3), [], {}
    for split in range(len(SPLITS)):
        for g in range(draw(st.integers(min_images, min_images + 3))):
            key = f"s{split}g{g}"
            planted[key] = [(f"{key}_{k}", {c: 100 + c for c in draw(CLASS_SETS)}) for k in range(draw(sizes))]
        keys = [key for key in planted if key.startswith(f"s{split}")]
        for c in CLASS_IDS:
            for key in draw(st.permutations(keys))[:min_images]:
                image = draw(st.integers(0, len(planted[key]) - 1))
                planted[key][image][1].setdefault(c, draw(PIXELS))
    for key, images in planted.items():
        rows.extend((image_id, key, "front", "day", classes) for image_id, classes in images)
    return rows, min_images


TIGHT_FLOORS = ([(key, key, "front", "day", {c: 1 for c in classes}) for key, classes in (
    ("s0g0", (1, 2, 3)), ("s0g1", (1, 2, 4)), ("s0g2", (3, 4)), ("s1g0", (1, 2, 3, 4)), ("s1g1", (1, 2, 3, 4)),
    ("s2g0", (1, 2, 3, 4)), ("s2g1", (1, 2, 3, 4)))], 2)  # feasible: train s0g*, val s1g*, test s2g*


@settings(max_examples=60, deadline=None)
@given(pools_with_feasible_floors(), st.integers(0, 2**31 - 1))
@example(TIGHT_FLOORS, 0)
def test_rare_class_floors_are_met_in_every_split_when_the_data_allows(pool, seed):
    rows, min_images = pool
    images = manifest(rows)
    splits = sample_dataset(images, spec(seed=seed, rare_classes=RareClassFloors(min_images=min_images)),
                            CLASS_IDS).splits
    holders = splits.join(images.select("image_id", "class_pixels"), on="image_id")
    for c in CLASS_IDS:
        with_class = holders.filter(pl.col("class_pixels").list.get(c) > 0)
        counts = dict(with_class.group_by("split").len().iter_rows())
        assert {s: counts.get(s, 0) >= min_images for s in SPLITS} == {s: True for s in SPLITS}, (c, counts)


@settings(max_examples=50, deadline=None)
@given(st.data(), pool_rows(), pool_rows(min_groups=1, max_groups=6, prefix="new"), st.none() | st.floats(0.2, 0.9),
       st.integers(0, 2**31 - 1))
def test_appended_images_leave_every_earlier_image_where_it_was(data, rows, new_rows, share, seed):
    old = manifest(rows)
    grown_in_place = [(f"{image_id}_late", group, camera, time, classes)
                      for image_id, group, camera, time, classes in
                      data.draw(st.lists(st.sampled_from([r for r in rows if r[1] is not None] or rows), max_size=4,
                                         unique_by=lambda r: r[0]))
                      if group is not None]
    grown = pl.concat([old, manifest(new_rows), manifest(grown_in_place)])
    pairs = data.draw(pairs_among(old["image_id"].to_list()))
    target = target_for(old, share)
    strata = {"time_of_day": natural_shares(old, "time_of_day")} if target else {}
    the_spec = spec(seed=seed, target_size=target, foundation_share=0.5, strata=strata,
                    rare_classes=RareClassFloors(min_images=1))
    first = sample_dataset(old, the_spec, CLASS_IDS, near_pairs=pairs)
    second = sample_dataset(grown, the_spec, CLASS_IDS, previous=first.splits, near_pairs=pairs)
    before, after = split_of(first.splits), split_of(second.splits)
    assert {image_id: after[image_id] for image_id in before} == before


@st.composite
def many_small_groups(draw: st.DrawFn) -> list:
    """60 to 150 sequences of one to three images (size 1 also stands for an image without one);
    each image's time_of_day and classes come from a drawn seed, as they only feed the labels the
    assignment balances besides the sizes."""
    sizes = draw(st.lists(st.integers(1, 3), min_size=60, max_size=150))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    return [(f"img{g:03d}_{k}", f"seq{g:03d}", "front", str(rng.choice(TIMES)),
             {int(c): int(rng.integers(1, 500)) for c in rng.choice(CLASS_IDS, size=int(rng.integers(0, 3)))})
            for g, size in enumerate(sizes) for k in range(size)]


@settings(max_examples=40, deadline=None)
@given(many_small_groups(),
       st.sampled_from([RATIOS, {"train": 0.8, "val": 0.1, "test": 0.1}, {"train": 0.6, "val": 0.2, "test": 0.2},
                        {"train": 0.5, "val": 0.5, "test": 0.0}]), st.integers(0, 2**31 - 1))
def test_split_sizes_follow_their_ratios_over_many_small_groups(rows, ratios, seed):
    """A split that would hold more than its share plus half a unit is passed over while another is
    not (split_assignment), so with units of at most `largest` images a split ends below its share
    plus 1.5 * largest, and above its share minus that slack of each other active split: at most
    4.5 images over (7.5 % of the smallest pool, 60 images) and 9 under. No floors, which place
    units regardless of size."""
    images = manifest(rows)
    the_spec = spec(seed=seed, splits=ratios, strata={"time_of_day": natural_shares(images, "time_of_day")})
    splits = sample_dataset(images, the_spec, CLASS_IDS).splits
    largest = images.group_by(pl.col("sequence_id").fill_null(pl.col("image_id"))).len()["len"].max()
    active = sum(share > 0 for share in ratios.values())
    counts = dict(splits.group_by("split").len().iter_rows())
    for split, share in ratios.items():
        excess = counts.get(split, 0) - share * images.height
        assert -1.5 * largest * (active - 1) < excess < 1.5 * largest, (split, counts, images.height)


@st.composite
def pools_for_targets(draw: st.DrawFn) -> tuple[pl.DataFrame, DistributionSpec]:
    """Every (camera, time_of_day) cell holds 40 to 80 images in sequences of one to three; the
    targets mix the natural shares (the foundation) with weights of 1 to 3 per value (the targeted
    part), and target_size is a sixth of the pool, so each cell holds more images than any target
    can ask of it."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    rows = []
    for camera in CAMERAS:
        for time in TIMES:
            left, g = draw(st.integers(40, 80)), 0
            while left:
                size = min(left, int(rng.integers(1, 4)))
                key = f"{camera}-{time}-{g}"
                rows.extend((f"{key}_{k}", key, camera, time, {1: 100, int(rng.choice(CLASS_IDS)): 20})
                            for k in range(size))
                left, g = left - size, g + 1
    images = manifest(rows)
    foundation = draw(st.sampled_from([0.0, 0.25, 0.5, 0.75]))
    strata = {}
    for column, values in (("camera", CAMERAS), ("time_of_day", TIMES)):
        weights = dict(zip(values, draw(st.lists(st.integers(1, 3), min_size=len(values), max_size=len(values))),
                           strict=True))
        natural = natural_shares(images, column)
        strata[column] = {v: foundation * natural[v] + (1 - foundation) * weights[v] / sum(weights.values())
                          for v in values}
    return images, spec(seed=draw(st.integers(0, 2**31 - 1)), target_size=images.height // 6,
                        foundation_share=foundation, strata=strata)


@settings(max_examples=40, deadline=None)
@given(pools_for_targets())
def test_selected_strata_shares_are_within_tolerance_of_the_targets(pool):
    images, the_spec = pool
    selected = (sample_dataset(images, the_spec, CLASS_IDS).splits.filter(pl.col("split").is_not_null())
                .join(images.select("image_id", "camera", "time_of_day"), on="image_id"))
    assert selected.height <= the_spec.target_size
    for column, targets in the_spec.strata.items():
        achieved = natural_shares(selected, column)
        off = {v: round(achieved.get(v, 0.0) - share, 3) for v, share in targets.items()
               if abs(achieved.get(v, 0.0) - share) > the_spec.tolerance}
        assert off == {}, (column, achieved, targets, selected.height)


def day_and_night(days: int, nights: int) -> pl.DataFrame:
    return manifest([(f"d{n}", None, "front", "day", {1: 10}) for n in range(days)]
                    + [(f"n{n}", None, "front", "night", {1: 10}) for n in range(nights)])


def problem(images: pl.DataFrame, the_spec: DistributionSpec, place: str) -> str:
    """The line of the InfeasibleSpec message about `place`."""
    with pytest.raises(InfeasibleSpec) as raised:
        sample_dataset(images, the_spec, CLASS_IDS)
    lines = [line.strip() for line in str(raised.value).splitlines() if place in line]
    assert len(lines) == 1, str(raised.value)
    return lines[0]


@settings(max_examples=30, deadline=None)
@given(st.integers(3, 20), st.integers(3, 20))
def test_a_target_value_no_image_has_is_infeasible_and_named(days, nights):
    line = problem(day_and_night(days, nights), spec(strata={"time_of_day": {"day": 0.5, "snow": 0.5}}),
                   "time_of_day.snow")
    assert "no image has time_of_day = snow" in line
    assert f"the data offers day {days}, night {nights}" in line


@settings(max_examples=30, deadline=None)
@given(st.integers(3, 20), st.integers(3, 20), st.data())
def test_a_target_share_above_what_the_data_holds_is_infeasible_and_named(days, nights, data):
    target = data.draw(st.integers(nights + 3, days + nights))
    share = min(1.0, nights / target + 0.1)
    line = problem(day_and_night(days, nights),
                   spec(target_size=target, strata={"time_of_day": {"day": 1 - share, "night": share}}),
                   "time_of_day.night")
    assert f"of {target} images" in line
    assert f"the data offers {nights}" in line
    assert f"day {days}, night {nights}" in line


@settings(max_examples=30, deadline=None)
@given(st.integers(3, 20), st.integers(3, 20), st.integers(1, 50))
def test_a_target_size_above_the_pool_is_infeasible_and_named(days, nights, more):
    line = problem(day_and_night(days, nights), spec(target_size=days + nights + more), "target_size")
    assert f"{days + nights + more} images asked for, the data offers {days + nights}" in line


@pytest.mark.parametrize("overrides", [{"strata": {"weather": {"rain": 1.0}}}, {"group_by": "weather"}])
def test_a_column_the_images_lack_is_infeasible_and_named(overrides):
    with pytest.raises(InfeasibleSpec) as raised:
        sample_dataset(day_and_night(3, 3), spec(**overrides), CLASS_IDS)
    assert "['weather']" in str(raised.value)
    assert "sequence_id, camera, time_of_day" in str(raised.value)
