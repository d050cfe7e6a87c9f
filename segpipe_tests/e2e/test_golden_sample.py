"""The demo's distribution spec on a full-size demo landing zone (120 scenes, small frames):
the release meets its strata targets within the spec's tolerance and ships the sampling report."""

import csv
import io
import zipfile
from pathlib import Path

import polars as pl
import pytest

from segpipe.demo import DEMO_CONFIG
from segpipe.core.config.pipeline import load_pipeline_settings

pytestmark = pytest.mark.slow  # full_demo_build: segpipe_tests/e2e/conftest.py


def test_the_release_meets_the_strata_targets_within_the_tolerance(full_demo_build):
    spec = load_pipeline_settings(DEMO_CONFIG / "pipeline.yaml").sampling
    release = Path(full_demo_build.outcome.release_metadata["release"])
    manifest = pl.read_parquet(release / "manifest.parquet")
    assert manifest.height <= spec.target_size and manifest.height >= spec.target_size - 6  # whole sequences
    for column, targets in spec.strata.items():
        shares = dict(manifest.group_by(column).len().with_columns(pl.col("len") / manifest.height).iter_rows())
        for value, target in targets.items():
            assert abs(shares.get(value, 0.0) - target) <= spec.tolerance, (column, value, shares)
    assert manifest.group_by("sequence_id").agg(pl.col("split").n_unique())["split"].max() == 1
    checks = full_demo_build.outcome.check_outcomes
    assert checks["dataset_split:distribution_within_tolerance"] and checks["dataset_split:rare_class_floors"]
    assert checks["dataset_split:near_duplicates_in_one_split"]
    ledger = pl.read_parquet(release / "ledger.parquet")
    left_out = ledger.filter(pl.col("stage") == "sampling")
    assert left_out.height > 0 and (left_out["outcome"] == "filtered").all()
    assert left_out["reason"].str.contains(f"target_size of {spec.target_size}").all()
    counts = dict(ledger.group_by("outcome").len().iter_rows())
    assert sum(counts.values()) == ledger.height == counts["released"] + counts["filtered"] + counts["quarantined"]


def test_the_release_ships_the_sampling_report_matching_its_manifest(full_demo_build):
    release = Path(full_demo_build.outcome.release_metadata["release"])
    manifest = pl.read_parquet(release / "manifest.parquet")
    with zipfile.ZipFile(full_demo_build.outcome.release_metadata["archive"]) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("sampling/distribution.csv").decode())))
        assert archive.read("sampling/distribution.png")[:8] == b"\x89PNG\r\n\x1a\n"
        classes = pl.read_csv(io.BytesIO(archive.read("sampling/classes.csv")))
        assert archive.read("sampling/leakage.csv").decode().splitlines() == ["image_a,split_a,image_b,split_b,bits"]
    night = next(r for r in rows if r["dimension"] == "time_of_day" and r["value"] == "night")
    in_test = manifest.filter(pl.col("split") == "test")
    assert float(night["achieved"]) == pytest.approx((manifest["time_of_day"] == "night").mean())
    assert float(night["test"]) == pytest.approx((in_test["time_of_day"] == "night").mean())
    assert classes.filter(pl.col("name") == "car")["images_train"].item() > 0
