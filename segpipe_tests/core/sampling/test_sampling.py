import io

import numpy as np
import polars as pl
import pytest
from PIL import Image

from segpipe.core.config.pipeline import load_pipeline_settings
from segpipe.core.ingest.batch import METADATA_COLUMNS
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.sampling.chart import render_distribution_chart
from segpipe.core.sampling.report import distribution_report, report_files
from segpipe.core.sampling.spec import DistributionSpec, RareClassFloors, parse_distribution_spec
from segpipe.core.shared.errors import ConfigError
from segpipe.core.sampling.selection import InfeasibleSpec
from segpipe.core.sampling.sample import (
    remember_assignments,
    remembered_assignments,
    sample_dataset,
    split_proportions,
    unselected_reasons,
)
from segpipe.core.sampling.units import build_units
from segpipe.environment import PACKAGE_CONFIG

SPLITS = {"train": 0.6, "val": 0.2, "test": 0.2}


def pixels(*classes: int) -> list[int]:
    """class_pixels of a mask holding each listed class on 10 pixels."""
    counts = [0] * 256
    for c in classes:
        counts[c] += 10
    return counts


def catalogue(rows: list[tuple[str, str | None, str, tuple[int, ...]]]) -> pl.DataFrame:
    """(image_id, sequence_id, time_of_day, classes) per image."""
    return pl.DataFrame({
        "image_id": [r[0] for r in rows], "sequence_id": [r[1] for r in rows], "time_of_day": [r[2] for r in rows],
        "class_pixels": [pixels(*r[3]) for r in rows],
    }, schema_overrides={"sequence_id": pl.String})


def spec(**changes) -> DistributionSpec:
    return DistributionSpec(**{"seed": 1, "group_by": "sequence_id", "splits": SPLITS, **changes})


def test_units_join_groups_linked_by_a_near_copy_and_images_without_a_group_stand_alone():
    images = catalogue([("a1", "s1", "day", ()), ("a2", "s1", "day", ()), ("b1", "s2", "night", (1,)),
                        ("c1", None, "day", (1, 2)), ("d1", "s3", "dusk", ())])
    units = build_units(images, "sequence_id", ["time_of_day"], [1, 2], seed=1, near_pairs=[("d1", "a2")])
    by_image = dict(zip(units.image_ids, (units.keys[u] for u in units.unit_of_image), strict=True))
    assert by_image == {"a1": "s1", "a2": "s1", "d1": "s1", "b1": "s2", "c1": "c1 (ungrouped)"}
    s1 = units.keys.index("s1")
    assert units.size[s1] == 3
    assert dict(zip(units.strata_labels, units.strata_counts[s1].tolist(), strict=True)) == {
        ("time_of_day", "day"): 2, ("time_of_day", "dusk"): 1, ("time_of_day", "night"): 0}
    c1 = units.keys.index("c1 (ungrouped)")
    assert units.class_images[c1].tolist() == [1, 1] and units.class_pixels[c1].tolist() == [10, 10]
    assert sorted(units.rank.tolist()) == list(range(len(units)))


def test_every_group_lands_in_one_split_and_the_sizes_follow_the_ratios():
    rows = [(f"g{g}_{k}", f"g{g}", ["day", "night"][g % 2], (g % 3,)) for g in range(50) for k in range(2)]
    sample = sample_dataset(catalogue(rows), spec(), [0, 1, 2])
    splits = sample.splits.with_columns(pl.col("image_id").str.split("_").list.first().alias("group"))
    assert splits.group_by("group").agg(pl.col("split").n_unique())["split"].max() == 1
    assert split_proportions(sample.splits) == {"train": 0.6, "val": 0.2, "test": 0.2}
    assert set(splits["selected_by"]) == {"all"}


def test_a_rare_class_reaches_its_floor_in_every_split_where_its_ratio_would_not_put_it():
    rows = [(f"g{g}", f"g{g}", "day", (0,)) for g in range(54)] + [(f"r{g}", f"r{g}", "day", (0, 5)) for g in range(6)]
    floors = spec(rare_classes=RareClassFloors(min_images=2))  # 6 rare images at 0.6/0.2/0.2 would give 3.6/1.2/1.2
    split_of = dict(sample_dataset(catalogue(rows), floors, [0, 5]).splits.select("image_id", "split").iter_rows())
    assert sorted(split_of[f"r{g}"] for g in range(6)) == ["test", "test", "train", "train", "val", "val"]


GENERIC = {"train": 0.7, "val": 0.15, "test": 0.15}  # the packaged pipeline.yaml's splits


def test_fewer_groups_than_splits_fill_the_largest_splits_instead_of_failing():
    """A tiny export, as `segpipe init` makes a project of: one image, or two that are near copies."""
    floors = spec(splits=GENERIC, rare_classes=RareClassFloors(min_images=2))
    assert dict(sample_dataset(catalogue([("a", None, "day", (1,))]), floors, [1]).splits
                .select("image_id", "split").iter_rows()) == {"a": "train"}
    copies = sample_dataset(catalogue([("a", None, "day", (1,)), ("b", None, "day", (1,))]), floors, [1],
                            near_pairs=[("a", "b")])
    assert dict(copies.splits.select("image_id", "split").iter_rows()) == {"a": "train", "b": "train"}
    assert sample_dataset(catalogue([]), floors, [1]).splits.is_empty()  # QA filtered every image


def test_floors_a_class_cannot_meet_in_every_split_do_not_heap_its_images_into_one():
    """labelme's three VOC photos (person in two, four classes in one each) once all went to test,
    train left empty; a class in four images gets one per split."""
    tiny = [("a", None, "day", (0, 2)), ("b", None, "day", (1, 3)), ("c", None, "day", (0, 4, 5))]
    floors = spec(splits=GENERIC, rare_classes=RareClassFloors(min_images=2))
    split_of = dict(sample_dataset(catalogue(tiny), floors, [0, 1, 2, 3, 4, 5]).splits.select("image_id", "split").iter_rows())
    assert sorted(split_of.values()).count("train") == 2
    rows = [(f"r{g}", None, "day", (0, 5)) for g in range(4)] + [(f"g{g}", None, "day", (0,)) for g in range(16)]
    split_of = dict(sample_dataset(catalogue(rows), floors, [0, 5]).splits.select("image_id", "split").iter_rows())
    assert set(split_of[f"r{g}"] for g in range(4)) == {"train", "val", "test"}


def test_a_target_size_selects_toward_the_strata_targets_and_the_rest_is_filtered_with_a_reason():
    rows = [(f"d{g}", f"d{g}", "day", (0,)) for g in range(80)] + [(f"n{g}", f"n{g}", "night", (0,)) for g in range(20)]
    wanted = spec(target_size=40, foundation_share=0.5, strata={"time_of_day": {"day": 0.5, "night": 0.5}})
    sample = sample_dataset(catalogue(rows), wanted, [0])
    chosen = sample.splits.filter(pl.col("split").is_not_null())
    assert chosen.height == 40
    assert chosen.filter(pl.col("image_id").str.starts_with("n")).height == 20
    by = dict(chosen.group_by("selected_by").len().iter_rows())
    assert by["foundation"] == 20 and by["targeted"] == 20  # foundation drawn 80:20 like the data, 16 day and 4 night
    assert chosen.filter((pl.col("selected_by") == "foundation") & pl.col("image_id").str.starts_with("n")).height == 4
    reasons = unselected_reasons(sample.splits, wanted)
    assert len(reasons) == 60 and all("target_size of 40" in r for r in reasons.values())


def test_an_infeasible_spec_names_each_constraint_and_what_the_data_offers():
    rows = [(f"d{g}", f"d{g}", "day", (0,)) for g in range(8)] + [("n0", "n0", "night", (0,))]
    with pytest.raises(InfeasibleSpec) as found:
        sample_dataset(catalogue(rows), spec(target_size=20, strata={"time_of_day": {"day": 0.5, "dusk": 0.2, "night": 0.3}}), [0])
    message = str(found.value)
    assert "sampling.target_size: 20 images asked for, the data offers 9" in message
    assert "sampling.strata.time_of_day.dusk: target 20%, but no image has time_of_day = dusk (the data offers day 8, night 1)" in message
    assert "sampling.strata.time_of_day.night: target 30% of 9 images needs 3, the data offers 1" in message
    with pytest.raises(InfeasibleSpec, match=r"columns the images do not have: \['weather'\]"):
        sample_dataset(catalogue(rows), spec(strata={"weather": {"clear": 1.0}}), [0])


def test_a_later_build_keeps_every_split_and_assigns_only_new_images():
    rows = [(f"g{g}_{k}", f"g{g}", "day", (g % 2,)) for g in range(20) for k in range(3)]
    first = sample_dataset(catalogue(rows), spec(), [0, 1]).splits
    grown = rows + [(f"h{g}", f"h{g}", "night", (1,)) for g in range(10)] + [("g3_9", "g3", "day", (0,))]
    second = sample_dataset(catalogue(grown), spec(), [0, 1], previous=first).splits
    kept = second.join(first.select("image_id", pl.col("split").alias("before")), on="image_id")
    assert kept.height == 60 and (kept["split"] == kept["before"]).all()
    split_of = dict(second.select("image_id", "split").iter_rows())
    assert split_of["g3_9"] == split_of["g3_0"]  # a new frame of a known sequence joins its split
    changed_spec = sample_dataset(catalogue(grown), spec(seed=2), [0, 1], previous=first).splits
    assert set(changed_spec["selected_by"]) == {"all"}  # another spec: nothing is carried over


def test_assignments_are_remembered_in_the_store():
    store = ArtefactStore.in_memory({})
    assert remembered_assignments(store) is None
    splits = sample_dataset(catalogue([("a", "s", "day", ()), ("b", "t", "day", ()), ("c", "u", "day", ())]), spec(), []).splits
    remember_assignments(store, splits)
    assert remembered_assignments(store).equals(splits)


def test_the_report_gives_target_natural_and_achieved_shares_and_the_class_floors():
    rows = [(f"d{g}", f"d{g}", "day", (0,)) for g in range(6)] + [(f"n{g}", f"n{g}", "night", (0, 3)) for g in range(4)]
    wanted = spec(strata={"time_of_day": {"day": 0.6, "night": 0.4}}, rare_classes=RareClassFloors(min_images=1))
    sample = sample_dataset(catalogue(rows), wanted, [0, 3])
    report = distribution_report(sample, wanted, {0: "road", 3: "pole"})
    day = report.distribution.filter(pl.col("value") == "day").row(0, named=True)
    assert (day["target"], day["natural"], day["achieved"]) == (0.6, 0.6, 0.6)
    splits = dict(sample.splits.select("image_id", "split").iter_rows())
    test_images = [i for i, s in splits.items() if s == "test"]
    assert day["test"] == pytest.approx(sum(i.startswith("d") for i in test_images) / len(test_images))
    pole = report.classes.filter(pl.col("name") == "pole").row(0, named=True)
    assert [pole[f"images_{s}"] for s in ("train", "val", "test")] == [
        sum(1 for i, s in splits.items() if s == split and i.startswith("n")) for split in ("train", "val", "test")]
    assert all(pole[f"floor_met_{s}"] for s in ("train", "val", "test"))
    leaks = pl.DataFrame({"image_a": ["d0"], "split_a": ["train"], "image_b": ["n0"], "split_b": ["test"], "bits": [2]})
    colours = {0: (128, 64, 128), 3: (153, 153, 153)}
    files = report_files(report.distribution, report.classes, leaks, colours)
    assert sorted(files) == ["sampling/classes.csv", "sampling/distribution.csv", "sampling/distribution.png",
                             "sampling/leakage.csv"]
    assert files["sampling/leakage.csv"].decode().splitlines() == ["image_a,split_a,image_b,split_b,bits", "d0,train,n0,test,2"]
    assert files["sampling/distribution.png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert render_distribution_chart(report.distribution, report.classes, colours) == files["sampling/distribution.png"]
    with Image.open(io.BytesIO(files["sampling/distribution.png"])) as chart:
        drawn = {colour for _, colour in chart.convert("RGB").getcolors(1 << 16)}
    assert set(colours.values()) <= drawn  # each class beside a swatch of its colour
    assert report.distances.filter(pl.col("dimension") == "time_of_day")["achieved_distance"].item() == pytest.approx(0.0)


@pytest.mark.parametrize(("doc", "message"), [
    ({"splits": {"train": 1.0, "val": 0.0, "test": 0.0}, "strata": {"time_of_day": {"day": 0.5}}},
     "sampling.strata.time_of_day: shares must add up to 1, they add up to 0.5"),
    ({"splits": {"train": 1.0, "val": 0.0, "test": 0.0}, "target_size": 0},
     "p.yaml: sampling.target_size: must be at least 1, got 0"),
    ({"splits": {"train": 1.0, "val": 0.0, "test": 0.0}, "rare_classes": {"min_image": 2}},
     "sampling.rare_classes.min_image: unknown key; did you mean 'min_images'"),
    ({"splits": {"train": 1.0, "val": 0.0, "test": 0.0}, "foundation_share": 1.5}, "sampling.foundation_share"),
    ({"splits": {"train": 0.5, "val": 0.0, "test": 0.0}}, "must add up to 1"),
])
def test_a_bad_spec_fails_on_load_naming_the_key(doc, message):
    with pytest.raises(ConfigError, match=message):
        parse_distribution_spec({"seed": 1, "group_by": "sequence_id", **doc}, "p.yaml")


def test_the_fingerprint_changes_with_what_splits_depend_on_and_not_with_the_tolerance():
    base = spec(strata={"time_of_day": {"day": 1.0}})
    assert base.fingerprint() == spec(strata={"time_of_day": {"day": 1.0}}, tolerance=0.2).fingerprint()
    assert base.fingerprint() != spec(strata={"time_of_day": {"day": 1.0}}, seed=9).fingerprint()
    assert base.fingerprint() != spec(strata={"time_of_day": {"day": 1.0}}, target_size=5).fingerprint()
    assert np.unique([spec(splits=s).fingerprint() for s in (SPLITS, {"train": 0.8, "val": 0.1, "test": 0.1})]).size == 2


def test_the_packaged_spec_releases_every_image_of_an_export_without_metadata_each_image_its_own_group():
    """No metadata CSV: every metadata column is null, as image_metadata gives it; nothing to stratify."""
    packaged = load_pipeline_settings(PACKAGE_CONFIG / "pipeline.yaml").sampling
    images = pl.DataFrame({"image_id": [f"i{k:02d}" for k in range(40)],
                           "class_pixels": [pixels(k % 3, 3) for k in range(40)]}).with_columns(
        *[pl.lit(None, pl.String).alias(column) for column in METADATA_COLUMNS])
    sample = sample_dataset(images, packaged, [0, 1, 2, 3])
    splits = sample.splits
    assert splits["split"].null_count() == 0 and splits.height == 40
    assert splits["unit_key"].to_list() == [f"i{k:02d} (ungrouped)" for k in range(40)]
    shares = dict(splits.group_by("split").len().with_columns(pl.col("len") / 40).iter_rows())
    assert all(abs(shares[split] - target) <= packaged.tolerance for split, target in packaged.splits.items())
    report = distribution_report(sample, packaged, {0: "a", 1: "b", 2: "c", 3: "d"})
    assert report.distances["within_tolerance"].all()
