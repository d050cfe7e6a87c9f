import dagster as dg

# Across batches: QA, consensus, sampling, release. Blocking QA checks stop it before the release.
release_job = dg.define_asset_job(
    "release_job",
    selection=dg.AssetSelection.assets("qa_report").downstream(),
    description="QA-gate, fuse, split and publish a release from every materialized batch.",
)

nightly_release = dg.ScheduleDefinition(
    name="nightly_release",
    job=release_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night at 02:00 UTC: QA, consensus, sampling and a new release if the data changed.",
)
