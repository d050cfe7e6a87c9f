import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from segpipe.core.sampling import assign_splits, split_proportions
from segpipe.core.settings import SamplingSettings

SPEC = SamplingSettings(seed=7, stratify_by="time_of_day", group_by="sequence_id",
                        splits={"train": 0.7, "val": 0.15, "test": 0.15})


def catalogue(n_groups: int, sizes: list[int], strata: list[str]) -> pl.DataFrame:
    rows = []
    for g in range(n_groups):
        for k in range(sizes[g % len(sizes)]):
            rows.append({"image_id": f"img{g:04d}_{k}", "sequence_id": f"seq{g:04d}", "time_of_day": strata[g % len(strata)]})
    return pl.DataFrame(rows)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.lists(st.integers(1, 6), min_size=1, max_size=5),
       st.lists(st.sampled_from(["day", "dusk", "night"]), min_size=1, max_size=3), st.integers(0, 1000))
def test_deterministic_and_no_group_spans_two_splits(n_groups, sizes, strata, seed):
    images = catalogue(n_groups, sizes, strata)
    spec = SamplingSettings(seed, SPEC.stratify_by, SPEC.group_by, SPEC.splits)
    first, second = assign_splits(images, spec), assign_splits(images.sample(fraction=1.0, shuffle=True, seed=1), spec)
    assert first.equals(second)
    assert first.group_by("group_key").agg(pl.col("split").n_unique())["split"].max() == 1
    assert first.height == images.height


def test_proportions_and_strata_follow_the_targets_on_a_large_catalogue():
    splits = assign_splits(catalogue(300, [3, 4, 5], ["day", "day", "dusk", "night"]), SPEC)
    proportions = split_proportions(splits)
    for split, target in SPEC.splits.items():
        assert abs(proportions[split] - target) < 0.03
    for _, stratum in splits.group_by("stratum"):
        assert abs(split_proportions(stratum)["train"] - 0.7) < 0.06


def test_images_without_a_group_are_their_own_group():
    images = pl.DataFrame({"image_id": ["a", "b"], "sequence_id": [None, None], "time_of_day": ["day", None]})
    splits = assign_splits(images, SPEC)
    assert splits["group_key"].to_list() == ["a", "b"]
    assert splits["stratum"].to_list() == ["day", "(missing)"]
