import os
import shutil
import zipfile

import dagster as dg

from segpipe.defs.ingest.sensors import landing_batches_sensor
from segpipe.io.object_store import LandingZone, ObjectStore
from segpipe.store.batch_removals import record_removal


def tick(instance: dg.DagsterInstance, zone: LandingZone, cursor: str | None = None,
         store: ObjectStore | None = None) -> dg.SensorResult:
    store = store or ObjectStore(root=f"{zone.root}-store")
    return landing_batches_sensor(dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"landing_zone": zone, "object_store": store}))


def test_a_removed_batch_landed_again_is_not_added_back(tiny_demo, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(tiny_demo.landing_root, landing)
    store = ObjectStore(root=str(tmp_path / "store"))
    record_removal(*store.location(), {"batch": "b002_vendor_b_bob", "removed_at": "2026-12-04T16:17:22Z", "state": "failed"})
    with dg.instance_for_test() as instance:
        result = tick(instance, LandingZone(root=str(landing)), "4", store)
    assert sorted(result.dynamic_partitions_requests[0].partition_keys) == sorted(set(tiny_demo.batch_ids) - {"b002_vendor_b_bob"})


def test_first_tick_over_many_batches_runs_only_the_most_recently_landed(tmp_path):
    landing = tmp_path / "landing"
    for n in range(30):
        batch = landing / f"b{n:03d}"
        batch.mkdir(parents=True)
        (batch / "batch.json").write_text("{}")
        landed_at = 1_700_000_000 + (n if n != 7 else 10_000)  # b007 landed last although its name sorts early
        os.utime(batch / "batch.json", (landed_at, landed_at))
    zone = LandingZone(root=str(landing))
    with dg.instance_for_test() as instance:
        first = tick(instance, zone)
        assert [r.partition_key for r in first.run_requests] == ["b007"]
        assert first.dynamic_partitions_requests[0].partition_keys == [f"b{n:03d}" for n in range(30) if n != 7] + ["b007"]


def test_later_ticks_run_each_new_batch_once_its_marker_or_archive_is_complete(tiny_demo, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(tiny_demo.landing_root, landing)
    zone = LandingZone(root=str(landing))
    with dg.instance_for_test() as instance:
        first = tick(instance, zone)
        assert len(first.run_requests) == 1
        instance.add_dynamic_partitions("annotation_batches", sorted(tiny_demo.batch_ids))

        shutil.copytree(landing / "b001_vendor_a_alice", landing / "b004_redelivery")
        (landing / "b004_redelivery" / "batch.json").unlink()  # still uploading: no marker yet
        with zipfile.ZipFile(landing / "b005_archive.zip.part", "w") as archive:  # an archive being copied in
            archive.writestr("images/a.jpg", b"x")
        assert tick(instance, zone, first.cursor).run_requests == []

        (landing / "b004_redelivery" / "batch.json").write_text("{}")
        (landing / "b005_archive.zip.part").rename(landing / "b005_archive.zip")
        ready = tick(instance, zone, first.cursor)
        assert sorted(r.partition_key for r in ready.run_requests) == ["b004_redelivery", "b005_archive"]
        assert {r.run_key for r in ready.run_requests} == {"b004_redelivery", "b005_archive"}
        instance.add_dynamic_partitions("annotation_batches", ["b004_redelivery", "b005_archive"])
        assert tick(instance, zone, ready.cursor).run_requests == []


def test_an_entry_that_cannot_become_a_batch_is_named_in_the_skip_reason_and_logged_on_every_tick(tmp_path, capfd):
    landing = tmp_path / "landing"
    for name in ("b001", "b002 (copy)"):
        (landing / name).mkdir(parents=True)
        (landing / name / "batch.json").write_text("{}")
    (landing / "b003.zip").symlink_to(tmp_path / "elsewhere.zip")
    zone = LandingZone(root=str(landing))
    with dg.instance_for_test() as instance:
        first = tick(instance, zone)
        assert [r.partition_key for r in first.run_requests] == ["b001"] and first.skip_reason is None
        logged = [line for line in capfd.readouterr().err.splitlines() if "WARNING - not a batch: " in line]
        assert any(f"{landing}/b002 (copy): 'b002 (copy)' is not a batch id" in line for line in logged)
        assert any(f"{landing}/b003.zip: is a symbolic link" in line for line in logged)

        instance.add_dynamic_partitions("annotation_batches", ["b001"])
        idle = tick(instance, zone, first.cursor)
    assert idle.run_requests == []
    reason = idle.skip_reason.skip_message.splitlines()
    assert reason[0] == "no new ready batch; 2 landed entries are not batches:"
    assert reason[1].startswith(f"- {landing}/b002 (copy): 'b002 (copy)' is not a batch id")
    assert "Rename the folder to a batch id such as 'b002_copy'" in reason[1]
    assert reason[2].startswith(f"- {landing}/b003.zip: is a symbolic link")


def test_a_done_batch_landed_again_is_named_in_the_skip_reason_and_logged_but_not_run(tmp_path, capfd):
    """A re-delivery into an ingested batch's folder is no new batch: the sensor starts nothing for it,
    and says on every tick that it landed again and how to read it (defs/batches.landed_again)."""
    landing = tmp_path / "landing"
    (landing / "b001").mkdir(parents=True)
    marker = landing / "b001" / "batch.json"
    marker.write_text("{}")
    os.utime(marker, (1_700_000_000, 1_700_000_000))
    zone = LandingZone(root=str(landing))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("annotation_batches", ["b001"])
        for asset, metadata in (("batch_files", {"landed_at": dg.MetadataValue.timestamp(1_700_000_000.0)}),
                                ("annotation_masks", {})):  # as b001's batch_job run left them
            instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition="b001", metadata=metadata))
        assert tick(instance, zone, "1").skip_reason.skip_message == "no new ready batch in the landing zone"

        os.utime(marker, (1_700_003_600, 1_700_003_600))
        again = tick(instance, zone, "1")
    assert again.run_requests == [] and again.dynamic_partitions_requests == []
    reason = again.skip_reason.skip_message.splitlines()
    assert reason[:2] == ["no new ready batch", "1 batch landed again since ingested, not read again by this sensor:"]
    assert reason[2].startswith("- b001: landed again (2023-11-14 23:13:20 UTC) after its ingest read the one of "
                                "2023-11-14 22:13:20 UTC") and "`segpipe batch retry b001` reads it again" in reason[2]
    assert any("WARNING - landed again: b001: landed again" in line for line in capfd.readouterr().err.splitlines())
