"""`store_gc_job`: `segpipe gc` as a Dagster job, and the store_gc schedule the daemon runs it on, so a
deployment's store is pruned without a cron of its own; its run shows what was deleted."""

import dagster as dg

from segpipe.core.config.pipeline import NightlySettings, load_pipeline_settings
from segpipe.environment import current_environment
from segpipe.io.object_store import ObjectStore
from segpipe.io.pipeline_config import PipelineConfig
from segpipe.store.store_gc import collect_store_garbage, report_lines, retention_of


@dg.op(description="`segpipe gc`: the versions the retention rule (pipeline.yaml `release`) does not keep, the parts "
                   "no kept version uses and the masks no table names, deleted; safe while others build and publish.")
def collect_store_garbage_op(context: dg.OpExecutionContext, pipeline_config: PipelineConfig,
                             object_store: ObjectStore) -> dg.Output[None]:
    settings = pipeline_config.settings()
    retention = retention_of(settings.release)
    fs, root = object_store.location()
    done = collect_store_garbage(fs, root, settings.dataset_name, retention)
    lines = report_lines(settings.dataset_name, done, retention, dry_run=False)
    context.log.info("\n".join(lines))
    return dg.Output(None, metadata={
        "versions_retired": len(done.releases.retired), "parts_deleted": len(done.releases.parts_deleted),
        "masks_and_memos_deleted": done.superseded.files, "mib_freed": round(done.bytes_freed / 2**20, 1),
        "report": dg.MetadataValue.text("\n".join(lines)),  # what `segpipe gc` prints
    })


@dg.job(description="One `segpipe gc` of the store; the store_gc schedule runs it at pipeline.yaml's nightly.gc_cron.")
def store_gc_job() -> None:
    collect_store_garbage_op()


def store_gc_schedule(nightly: NightlySettings) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="store_gc", job=store_gc_job, cron_schedule=nightly.gc_cron, execution_timezone=nightly.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"At {nightly.gc_cron} ({nightly.timezone}, pipeline.yaml nightly.gc_cron): `segpipe gc` by "
                    "the release section's retention rule.")


@dg.definitions
def store_gc_jobs() -> dg.Definitions:
    """The schedule follows pipeline.yaml's `nightly.gc_cron` (none when it is null), read when the code location
    loads; the job is there either way, to launch from the UI."""
    nightly = load_pipeline_settings(current_environment().pipeline_path).nightly
    return dg.Definitions(jobs=[store_gc_job],
                          schedules=[store_gc_schedule(nightly)] if nightly.gc_cron is not None else [])
