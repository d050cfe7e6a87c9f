import dagster as dg

from segpipe.core.ingest.landing import find_ready_batches
from segpipe.defs.partitions import annotation_batches
from segpipe.io.object_store import LandingZone, ObjectStore
from segpipe.store.batch_removals import removed_batches

# Per batch: ingest, map, rasterize. Launched by the landing sensor, one run per new batch.
batch_job = dg.define_asset_job(
    "batch_job",
    selection=dg.AssetSelection.groups("ingest") | dg.AssetSelection.assets("mapped_shapes", "label_masks", "annotation_masks"),
    description="Ingest, map and rasterize one annotation batch.",
)


@dg.sensor(job=batch_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def landing_batches_sensor(
    context: dg.SensorEvaluationContext, landing_zone: LandingZone, object_store: ObjectStore,
) -> dg.SensorResult:
    """Adds every ready batch (a folder with batch.json, or a .zip) as a partition and runs the new
    ones. On its first tick it runs only the most recently landed one, so turning it on over a full
    landing zone does not start hundreds of runs; the rest are there to backfill. A batch `segpipe
    batch remove` removed stays out until `segpipe batch retry` brings it back."""
    fs, root = landing_zone.location()
    ready = find_ready_batches(fs, root)
    known = set(context.instance.get_dynamic_partitions(annotation_batches.name))
    known |= set(removed_batches(*object_store.location()))
    new = sorted((batch for batch in ready.values() if batch.batch_id not in known), key=lambda b: (b.ready_at, b.batch_id))
    to_run = new[-1:] if context.cursor is None else new
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=batch.batch_id, run_key=batch.batch_id) for batch in to_run],
        dynamic_partitions_requests=[annotation_batches.build_add_request([b.batch_id for b in new])] if new else [],
        cursor=str(len(ready)),
    )
