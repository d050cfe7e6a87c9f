import os
import shutil
import zipfile
from datetime import UTC, datetime

import dagster as dg
import polars as pl

from segpipe.defs.ingest.assets import ingest_annotation_batch
from segpipe.io.annotator_pseudonyms import AnnotatorPseudonyms
from segpipe_tests.conftest import PACKAGE_PIPELINE_CONFIG
from segpipe.io.object_store import LandingZone, ObjectStore
from segpipe.io.parquet_io_manager import PolarsParquetIOManager


def ingest_resources(tmp_path, landing) -> dict:
    """The resources an ingest reads and writes through: `landing`, and a store in `tmp_path`."""
    store = tmp_path / "store"
    return {
        "landing_zone": LandingZone(root=str(landing)),
        "object_store": ObjectStore(root=str(store)),
        "annotator_pseudonyms": AnnotatorPseudonyms(key_file=str(tmp_path / "pseudonym.key")),
        "pipeline_config": PACKAGE_PIPELINE_CONFIG,
        "io_manager": PolarsParquetIOManager(base_path=str(store / "tables")),
    }


def materialize_batch(tmp_path, landing, batch_id: str,
                      instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    """The batch's ingest, on `instance` when given, else on a throwaway one."""
    if instance is None:
        with dg.instance_for_test() as throwaway:
            return materialize_batch(tmp_path, landing, batch_id, throwaway)
    if batch_id not in instance.get_dynamic_partitions("annotation_batches"):
        instance.add_dynamic_partitions("annotation_batches", [batch_id])
    return dg.materialize([ingest_annotation_batch], partition_key=batch_id, instance=instance,
                          resources=ingest_resources(tmp_path, landing))


def test_a_zip_batch_is_ingested_and_its_images_copied_into_the_store(tiny_demo, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    folder = tiny_demo.landing_root / "b002_vendor_b_bob"
    with zipfile.ZipFile(landing / "b002.zip", "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.name != "batch.json":
                archive.write(path, path.relative_to(folder).as_posix())
        archive.writestr("batch.json", (folder / "batch.json").read_text().replace("b002_vendor_b_bob", "b002"))
    landed = datetime(2026, 5, 4, 12, 30, 15, tzinfo=UTC)
    os.utime(landing / "b002.zip", (landed.timestamp(), landed.timestamp()))
    result = materialize_batch(tmp_path, landing, "b002")
    assert result.success
    images = result.output_for_node("ingest_annotation_batch", "batch_images")["b002"]
    files = result.output_for_node("ingest_annotation_batch", "batch_files")["b002"]
    assert images.height > 0 and (files["outcome"] == "read").all()
    assert images["landed_at"].unique().to_list() == [landed]  # when the archive landed, on every entry
    for key in images["image_key"]:
        assert (tmp_path / "store" / key).is_file()
    quarantine = result.output_for_node("ingest_annotation_batch", "batch_quarantine")["b002"]
    checks = {check.check_name: check for check in result.get_asset_check_evaluations()}
    assert checks["entries_accepted"].passed == quarantine.is_empty()
    assert checks["entries_accepted"].metadata["quarantined"].value == quarantine.height
    assert checks["batch_usable"].passed


def test_an_unsafe_archive_quarantines_without_failing_the_run(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    with zipfile.ZipFile(landing / "evil.zip", "w") as archive:
        archive.writestr("images/a.jpg", b"x")
        archive.writestr("../../../etc/cron.d/evil", b"* * * * * root rm -rf /")
    result = materialize_batch(tmp_path, landing, "evil")
    assert result.success
    quarantine = result.output_for_node("ingest_annotation_batch", "batch_quarantine")["evil"]
    assert quarantine["rule"].to_list() == ["unsafe_archive_path"]
    assert "evil.zip" in quarantine["message"][0] and "cron.d" in quarantine["message"][0]
    assert not (tmp_path / "etc").exists()
    checks = {check.check_name: check for check in result.get_asset_check_evaluations()}
    assert not checks["entries_accepted"].passed and checks["entries_accepted"].metadata["quarantined"].value == 1
    assert not checks["batch_usable"].passed and checks["batch_usable"].metadata["rule"].value == "unsafe_archive_path"


def test_the_pseudonym_key_is_created_once_and_reused_across_runs(tiny_demo, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(tiny_demo.landing_root / "b001_vendor_a_alice", landing / "b001_vendor_a_alice")
    first = materialize_batch(tmp_path, landing, "b001_vendor_a_alice")
    second = materialize_batch(tmp_path, landing, "b001_vendor_a_alice")
    names = [r.output_for_node("ingest_annotation_batch", "batch_images")["b001_vendor_a_alice"]["annotator"].unique().to_list() for r in (first, second)]
    assert names[0] == names[1] and len(names[0]) == 1 and names[0][0].startswith("annotator-")
    assert pl.Series(names[0]).str.contains("alice").sum() == 0


def test_a_run_over_several_batches_ingests_each_into_its_own_partition(tiny_demo, tmp_path):
    landing, store = tmp_path / "landing", tmp_path / "store"
    batches = ["b001_vendor_a_alice", "b002_vendor_b_bob"]
    for batch in batches:
        shutil.copytree(tiny_demo.landing_root / batch, landing / batch)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("annotation_batches", batches)
        result = dg.materialize(
            [ingest_annotation_batch], instance=instance,
            tags={"dagster/asset_partition_range_start": batches[0], "dagster/asset_partition_range_end": batches[-1]},
            resources=ingest_resources(tmp_path, landing),
        )
    assert result.success
    materialized = {(m.asset_key.to_user_string(), m.partition) for m in result.get_asset_materialization_events()}
    assert {("batch_images", b) for b in batches} <= materialized
    for batch in batches:  # one Parquet file per batch, holding that batch's entries only
        table = pl.read_parquet(store / "tables" / "batch_images" / f"{batch}.parquet")
        assert table.height > 0 and table["batch_id"].unique().to_list() == [batch]
