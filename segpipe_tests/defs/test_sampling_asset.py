from datetime import UTC, datetime

import dagster as dg
import polars as pl
import pytest

from segpipe.core.sampling.selection import InfeasibleSpec
from segpipe.core.ingest.batch import METADATA_COLUMNS
from segpipe.defs.sampling.assets import SamplingConfig, golden_sample
from segpipe.demo import DEMO_CONFIG
from segpipe.io.object_store import ObjectStore
from segpipe.io.pipeline_config import PipelineConfig


def tables(n_sequences: int, night_every: int = 3) -> tuple[pl.DataFrame, pl.DataFrame]:
    """consensus_masks and batch_images for sequences of 3 images; every `night_every`-th is night."""
    rows = []
    for seq in range(n_sequences):
        for k in range(3):
            rows.append({"image_id": f"i{seq:03d}{k}", "sequence_id": f"s{seq:03d}",
                         "time_of_day": "night" if seq % night_every == 0 else "day"})
    frame = pl.DataFrame(rows)
    consensus = frame.select("image_id", pl.lit("accepted").alias("status"),
                             pl.lit([100] * 9 + [0] * 247).alias("class_pixels"))
    images = frame.with_columns(
        entry_id=pl.col("image_id"), batch_id=pl.lit("b"), file_name=pl.col("image_id") + ".jpg",
        landed_at=pl.lit(datetime(2026, 1, 1, tzinfo=UTC)),
        source_uri=pl.lit("x"), image_key=pl.col("image_id"), width=pl.lit(4), height=pl.lit(4), annotator=pl.lit("a"),
        perceptual_hash=pl.col("image_id").str.slice(1).cast(pl.Int64).map_elements(lambda v: f"{v * 0x9E3779B1:016x}"[-16:],
                                                                                    return_dtype=pl.String),
        **{c: pl.lit(None, dtype=pl.String) for c in METADATA_COLUMNS if c not in ("sequence_id", "time_of_day")})
    return consensus, images


def run(tmp_path, consensus, images, pipeline_text: str, rebalance: bool = False) -> dict[str, object]:
    tmp_path.mkdir(exist_ok=True)
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(pipeline_text)
    outputs = golden_sample(
        dg.build_asset_context(), config=SamplingConfig(rebalance=rebalance),
        pipeline_config=PipelineConfig(taxonomy_path=str(DEMO_CONFIG / "taxonomy.yaml"), pipeline_path=str(pipeline)),
        object_store=ObjectStore(root=str(tmp_path / "store")), consensus_masks=consensus, batch_images=images)
    return {getattr(o, "output_name", None) or o.check_name: o for o in outputs}


SPEC = (DEMO_CONFIG / "pipeline.yaml").read_text()
ALL_IMAGES = SPEC.replace("  target_size: 90\n", "").replace(
    "    time_of_day: {day: 0.48, dusk: 0.24, night: 0.28}\n    weather: {clear: 0.48, rain: 0.30, fog: 0.22}\n",
    "    time_of_day: {day: 0.67, night: 0.33}\n")


def test_a_rerun_with_more_images_keeps_every_split_unless_a_rebalance_is_asked(tmp_path):
    assert ALL_IMAGES != SPEC
    consensus, images = tables(30)
    first = run(tmp_path, consensus, images, ALL_IMAGES)["dataset_split"].value
    more_consensus, more_images = tables(36)
    again = run(tmp_path, more_consensus, more_images, ALL_IMAGES)
    second = again["dataset_split"].value
    kept = second.join(first.select("image_id", pl.col("split").alias("before")), on="image_id")
    assert kept.height == first.height and (kept["split"] == kept["before"]).all()
    assert again["dataset_split"].metadata["kept_from_last_build"].value == first.height
    report = again["sampling_report"].value
    assert set(report["dimension"]) == {"split", "time_of_day"}
    assert "chart" in again["sampling_report"].metadata
    assert again["distribution_within_tolerance"].passed and again["rare_class_floors"].passed
    assert again["near_duplicates_in_one_split"].passed
    rebalanced = run(tmp_path, more_consensus, more_images, ALL_IMAGES, rebalance=True)["dataset_split"]
    fresh = run(tmp_path / "fresh", more_consensus, more_images, ALL_IMAGES)["dataset_split"].value
    assert rebalanced.metadata["rebalanced"].value is True and rebalanced.metadata["kept_from_last_build"].value == 0
    assert rebalanced.value.equals(fresh)  # as if there had been no earlier build
    assert not second.equals(fresh)  # while keeping the earlier splits gave another assignment


def test_an_infeasible_spec_fails_the_asset_with_the_constraint_and_the_offer(tmp_path):
    consensus, images = tables(10, night_every=100)  # one night sequence of three images among 30
    with pytest.raises(dg.Failure) as failed:  # not retried: the data will not change on a second try
        run(tmp_path, consensus, images, ALL_IMAGES)
    assert not failed.value.allow_retries and isinstance(failed.value.__cause__, InfeasibleSpec)
    assert "time_of_day.night: target 33% of 30 images needs 10, the data offers 3" in str(failed.value.__cause__)
