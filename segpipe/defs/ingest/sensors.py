import dagster as dg

from segpipe.core.landing import list_ready_batches
from segpipe.defs.partitions import annotation_batches
from segpipe.io.object_store import LandingZone


# Per batch: ingest, map, rasterize. Launched by the landing sensor, one run per new batch.
batch_job = dg.define_asset_job(
    "batch_job",
    selection=dg.AssetSelection.groups("ingest") | dg.AssetSelection.assets("mapped_shapes", "annotation_masks"),
    description="Ingest, map and rasterize one annotation batch.",
)


@dg.sensor(job=batch_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def landing_batches_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZone) -> dg.SensorResult:
    """Adds every ready batch as a partition and runs the new ones. On its first tick it runs only the
    newest, so turning it on over a full landing zone does not start hundreds of runs (backfill the rest)."""
    fs, root = landing_zone.location()
    ready = list_ready_batches(fs, root)
    known = set(context.instance.get_dynamic_partitions(annotation_batches.name))
    new = [batch for batch in ready if batch not in known]
    to_run = new[-1:] if context.cursor is None else new
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=batch, run_key=batch) for batch in to_run],
        dynamic_partitions_requests=[annotation_batches.build_add_request(new)] if new else [],
        cursor=str(len(ready)),
    )
