"""Which batches a release reads, and what became of the others, from Dagster's own records.

A batch is *done* when `batch_job`'s last asset, `annotation_masks`, is materialized for it: every
per-batch table of it then exists and agrees. Readers across batches (QA, consensus, sampling, the
release) read the done batches only, so a batch that failed (or never ran) leaves the others'
release alone; the release reports it by name with its last failure.
"""

import datetime as dt
from dataclasses import dataclass

import dagster as dg

from segpipe.defs.partitions import annotation_batches
from segpipe.defs.root_cause import root_cause

BATCH_DONE_ASSET = "annotation_masks"
LANDED_AT = "landed_at"  # batch_files' metadata: when the batch its ingest read had landed (batch.json's mtime)
_PAGE = 1000  # materializations read a query


@dataclass(frozen=True)
class LastRun:
    run_id: str
    status: str  # Dagster's run status: SUCCESS, FAILURE, STARTED, ...
    when: str  # start time, ISO, UTC seconds
    failure: str | None  # the failed step and the first line of its error


def done_batches(instance: dg.DagsterInstance) -> list[str]:
    """The batches whose per-batch tables are all materialized: what readers across batches read."""
    done = instance.get_materialized_partitions(dg.AssetKey(BATCH_DONE_ASSET))
    return sorted(b for b in instance.get_dynamic_partitions(annotation_batches.name) if b in done)


def batches_not_done(instance: dg.DagsterInstance) -> dict[str, str]:
    """Each known batch a release leaves out, with why: its last failure, or that it has not run."""
    done = set(done_batches(instance))
    return {batch: describe_not_done(last_run(instance, batch))
            for batch in sorted(instance.get_dynamic_partitions(annotation_batches.name)) if batch not in done}


def describe_not_done(run: LastRun | None) -> str:
    if run is None:
        return "not ingested yet: no run"
    if run.failure is not None:
        return f"failed in run {run.run_id[:8]} ({run.when}): {run.failure}"
    return f"not complete: last run {run.run_id[:8]} {run.status.lower()} ({run.when})"


def last_run(instance: dg.DagsterInstance, batch: str) -> LastRun | None:
    """The newest run launched for `batch` (its `dagster/partition` tag), with its failure if it failed."""
    runs = instance.get_runs(dg.RunsFilter(tags={"dagster/partition": batch}), limit=1)
    if not runs:
        return None
    run = runs[0]
    record = instance.get_run_record_by_id(run.run_id)
    started = record.start_time or record.create_timestamp.timestamp()
    stamp = dt.datetime.fromtimestamp(started, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    failure = _failure(instance, run.run_id) if run.status == dg.DagsterRunStatus.FAILURE else None
    return LastRun(run.run_id, run.status.value, stamp, failure)


def _failure(instance: dg.DagsterInstance, run_id: str) -> str:
    """The first failed step and the first line of the error its code raised (not Dagster's wrapper)."""
    for record in instance.all_logs(run_id, of_type={dg.DagsterEventType.STEP_FAILURE}):
        error_type, message = root_cause(record.dagster_event.step_failure_data.error, record.message)
        first = message.splitlines()[0] if message else "no message"
        return f"step {record.dagster_event.step_key}: {error_type}: {first}"
    return "the run failed outside any step; see its log in the Dagster UI"


@dataclass(frozen=True)
class LandedAgain:
    """A done batch whose folder or archive was landed again after its ingest read it: its tables,
    and so the releases, hold what was read then."""

    batch: str
    ingested_from: float  # when the batch its ingest read had landed, seconds since the epoch
    landed: float  # when the one in the landing zone now landed

    def explained(self) -> str:
        """When it landed again, what that means and what to do."""
        return (f"landed again ({_utc(self.landed)}) after its ingest read the one of {_utc(self.ingested_from)}; "
                f"releases hold what was read then. `segpipe batch retry {self.batch}` reads it again; a correction "
                "is better landed as a new batch (docs/landing.md, Corrections)")

    def __str__(self) -> str:
        return f"{self.batch}: {self.explained()}"


def landed_again(instance: dg.DagsterInstance, ready_at: dict[str, float]) -> list[LandedAgain]:
    """The done batches among `ready_at` (batch -> when the one in the landing zone landed) that landed
    after their ingest read them: a vendor's re-delivery into the same folder, which the landing
    sensor does not read again (only new batch ids are new partitions). A batch ingested before
    ingest recorded when it landed is taken as unchanged."""
    done = instance.get_materialized_partitions(dg.AssetKey(BATCH_DONE_ASSET))
    recorded = _landed_at_read(instance, sorted(b for b in ready_at if b in done))
    return [LandedAgain(batch, read, ready_at[batch]) for batch, read in sorted(recorded.items())
            if read != ready_at[batch]]


def _landed_at_read(instance: dg.DagsterInstance, batches: list[str]) -> dict[str, float]:
    """batch -> the landed_at its newest ingest recorded, for those that recorded one: the batches'
    batch_files materializations read newest first, a page of them a query (not a query a batch:
    the landing sensor asks every minute)."""
    found: dict[str, float | None] = {}
    cursor = None
    while batches and len(found) < len(batches):
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("batch_files"), asset_partitions=batches),
            limit=_PAGE, cursor=cursor, ascending=False)
        for record in page.records:
            materialization = record.asset_materialization
            if materialization.partition not in found:
                stamp = materialization.metadata.get(LANDED_AT)
                found[materialization.partition] = None if stamp is None else stamp.value
        if not page.has_more:
            break
        cursor = page.cursor
    return {batch: read for batch, read in found.items() if read is not None}


def _utc(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
