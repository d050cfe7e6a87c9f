import shutil

import dagster as dg

from segpipe.defs.ingest.sensors import landing_batches_sensor
from segpipe.io.object_store import LandingZone


def test_first_tick_runs_only_the_newest_batch_then_each_new_one(tiny_demo, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(tiny_demo.landing_root, landing)
    zone = LandingZone(root=str(landing))
    with dg.instance_for_test() as instance:
        first = landing_batches_sensor(dg.build_sensor_context(instance=instance, resources={"landing_zone": zone}))
        assert [r.partition_key for r in first.run_requests] == ["b003_vendor_c_carol"]
        assert first.dynamic_partitions_requests[0].partition_keys == sorted(tiny_demo.batch_ids)
        instance.add_dynamic_partitions("annotation_batches", sorted(tiny_demo.batch_ids))

        shutil.copytree(landing / "b001_vendor_a_alice", landing / "b004_redelivery")
        (landing / "b004_redelivery" / "batch.json").unlink()
        context = dg.build_sensor_context(instance=instance, cursor=first.cursor, resources={"landing_zone": zone})
        assert landing_batches_sensor(context).run_requests == []

        shutil.copy(landing / "b001_vendor_a_alice" / "batch.json", landing / "b004_redelivery" / "batch.json")
        ready = landing_batches_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor, resources={"landing_zone": zone}))
        assert [r.partition_key for r in ready.run_requests] == ["b004_redelivery"]
