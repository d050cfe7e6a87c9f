import dagster as dg

from segpipe.core.ingest.landing import LandingProblem, scan_landing
from segpipe.defs.batches import LandedAgain, landed_again
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
    batch remove` removed stays out until `segpipe batch retry` brings it back. An entry that cannot
    become a batch (a bad name, a folder and a .zip with one id, a link), and a done batch landed
    again since its ingest (which only `segpipe batch retry` reads again), is logged as a warning on
    every tick, and named in the skip reason of a tick that starts nothing."""
    fs, root = landing_zone.location()
    scan = scan_landing(fs, root)
    ready = scan.ready
    partitions = set(context.instance.get_dynamic_partitions(annotation_batches.name))
    again = landed_again(context.instance, {b: landed.ready_at for b, landed in ready.items() if b in partitions})
    problems = [*(f"not a batch: {problem}" for problem in scan.problems), *(f"landed again: {a}" for a in again)]
    for problem in problems:
        context.log.warning(problem)
    known = partitions | set(removed_batches(*object_store.location()))
    new = sorted((batch for batch in ready.values() if batch.batch_id not in known), key=lambda b: (b.ready_at, b.batch_id))
    to_run = new[-1:] if context.cursor is None else new
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=batch.batch_id, run_key=batch.batch_id) for batch in to_run],
        dynamic_partitions_requests=[annotation_batches.build_add_request([b.batch_id for b in new])] if new else [],
        cursor=str(len(ready)),
        skip_reason=_skip_reason(scan.problems, again) if not to_run else None,
    )


def _skip_reason(problems: list[LandingProblem], again: list[LandedAgain]) -> str:
    """Why a tick started nothing: no new batch; each landed entry that cannot become one, and each
    batch landed again since its ingest."""
    if not problems and not again:
        return "no new ready batch in the landing zone"
    lines = ["no new ready batch" + (";" if problems else "")]
    if problems:
        lines[0] += f" {len(problems)} landed entr{'y is' if len(problems) == 1 else 'ies are'} not batches:"
        lines += [f"- {problem}" for problem in problems]
    if again:
        lines += [f"{len(again)} batch{'' if len(again) == 1 else 'es'} landed again since ingested, not read "
                  "again by this sensor:", *(f"- {batch}" for batch in again)]
    return "\n".join(lines)
