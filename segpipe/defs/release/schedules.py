import dagster as dg

from segpipe.core.config.pipeline import NightlySettings, load_pipeline_settings
from segpipe.defs.batches import done_batches
from segpipe.environment import current_environment

# Across batches: QA, consensus, sampling, release. Blocking QA checks stop it before the release.
release_job = dg.define_asset_job(
    "release_job",
    selection=dg.AssetSelection.assets("qa_report").downstream(),
    description="QA-gate, fuse, split and publish a release from every materialized batch.",
)


def release_if_a_batch_is_done(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """A tick before any batch is done (a new deployment, or the first batch still drawing) skips with
    a reason rather than starting a release of nothing, which could only fail."""
    if not done_batches(context.instance):
        return dg.SkipReason("no batch is done yet (ingested, mapped and drawn), so there is nothing to release; "
                             "the landing sensor runs each batch that lands")
    return dg.RunRequest()


def nightly_release_schedule(nightly: NightlySettings) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="nightly_release",
        job=release_job,
        cron_schedule=nightly.cron,
        execution_timezone=nightly.timezone,
        execution_fn=release_if_a_batch_is_done,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"At {nightly.cron} ({nightly.timezone}, pipeline.yaml nightly): QA, consensus, sampling "
                    "and a new release if the data changed (skipped while no batch is done).",
    )


@dg.definitions
def release_jobs() -> dg.Definitions:
    """The schedule follows pipeline.yaml's `nightly` section, read when the code location loads."""
    nightly = load_pipeline_settings(current_environment().pipeline_path).nightly
    return dg.Definitions(jobs=[release_job], schedules=[nightly_release_schedule(nightly)])
