"""`segpipe batches`, `segpipe batch retry ID` and `segpipe batch remove ID`: what became of each
batch, and the two ways on for one that failed, without the Dagster UI."""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg
import polars as pl

from segpipe.cli.progress import RunProgress
from segpipe.core.ingest.landing import LandingProblem, find_ready_batches, scan_landing
from segpipe.defs.batches import BATCH_DONE_ASSET, LandedAgain, describe_not_done, landed_again, last_run
from segpipe.defs.partitions import annotation_batches
from segpipe.environment import Environment
from segpipe.io.locations import open_location
from segpipe.store import keys
from segpipe.store.batch_removals import record_removal, removed_batches


class UnknownBatch(LookupError):
    """An id that is neither a batch Dagster knows nor one ready in the landing zone."""


@dataclass(frozen=True)
class BatchRow:
    batch: str
    state: str  # landed / ingested / changed (landed again since ingested) / failed / removed
    last_run: str


def batch_rows(instance: dg.DagsterInstance, env: Environment) -> list[BatchRow]:
    """Every batch ready in the landing zone, known to Dagster or ever removed, with its state:
    *landed* (never run), *ingested* (its tables are done), *changed* (done, but landed again
    since: see defs/batches.landed_again), *failed* (its last run failed, or it is not done),
    *removed* (`segpipe batch remove`; not a partition any more)."""
    known = set(instance.get_dynamic_partitions(annotation_batches.name))
    done = instance.get_materialized_partitions(dg.AssetKey(BATCH_DONE_ASSET))
    removed = removed_batches(*open_location(env.storage_root, env.s3_endpoint_url))
    landed = find_ready_batches(*open_location(env.landing_root, env.s3_endpoint_url))
    ready = set(landed)
    changed = {again.batch: again for again in landed_again(
        instance, {batch: landed[batch].ready_at for batch in ready & known})}
    rows = []
    for batch in sorted(known | ready | set(removed)):
        run = last_run(instance, batch)
        if batch not in known and batch in removed:
            record = removed[batch]
            rows.append(BatchRow(batch, "removed", f"removed {record['removed_at']} (was {record['state']})"))
        elif run is None:
            rows.append(BatchRow(batch, "landed", "no run yet"))
        elif run.failure is None and batch in done and batch in changed:
            rows.append(BatchRow(batch, "changed", f"run {run.run_id[:8]} {run.status.lower()} ({run.when}); "
                                                   f"{changed[batch].explained()}"))
        elif run.failure is None and batch in done:
            rows.append(BatchRow(batch, "ingested", f"run {run.run_id[:8]} {run.status.lower()} ({run.when})"))
        else:
            rows.append(BatchRow(batch, "failed", describe_not_done(run)))
    return rows


def landing_problems(env: Environment) -> list[LandingProblem]:
    """The entries of the landing zone that cannot become batches, so are in no row."""
    return scan_landing(*open_location(env.landing_root, env.s3_endpoint_url)).problems


def format_batch_rows(rows: list[BatchRow], problems: list[LandingProblem] = ()) -> str:
    if not rows:
        table = ["no batches: none ready in the landing zone, none ingested, none removed"]
    else:
        width = max(len(row.batch) for row in rows)
        table = [f"{'batch':<{width}}  {'state':<8}  last run",
                 *(f"{row.batch:<{width}}  {row.state:<8}  {row.last_run}" for row in rows)]
    return "\n".join(table + landing_problem_lines(problems))


def landed_again_lines(batches: Sequence[LandedAgain]) -> list[str]:
    """Each done batch landed again since its ingest, with what that means and what to do."""
    if not batches:
        return []
    one = len(batches) == 1
    return [f"LANDED AGAIN: {len(batches)} batch{'' if one else 'es'} changed in the landing zone after "
            f"{'it was' if one else 'they were'} ingested ({'its' if one else 'their'} changes are in no release)",
            *(f"  {batch}" for batch in batches)]


def landing_problem_lines(problems: list[LandingProblem]) -> list[str]:
    """Each landed entry that is not read as a batch, with why and what to do."""
    if not problems:
        return []
    count = f"{len(problems)} entr{'y' if len(problems) == 1 else 'ies'}"
    return [f"NOT A BATCH: {count} of the landing zone, not read (not in any count above)",
            *(line for p in problems for line in (f"  {p.path}: {p.reason}", f"    what to do: {p.what_to_do}"))]


def retry_batch(defs: dg.Definitions, instance: dg.DagsterInstance, env: Environment, batch: str,
                log_level: str = "CRITICAL", progress: RunProgress = RunProgress()) -> dg.ExecuteInProcessResult:
    """Run `batch_job` for the batch again, as landed now: a removed batch ready again comes back."""
    known = set(instance.get_dynamic_partitions(annotation_batches.name))
    if batch not in known:
        ready = list(find_ready_batches(*open_location(env.landing_root, env.s3_endpoint_url)))
        if batch not in ready:
            raise UnknownBatch(_unknown(batch, known | set(ready), f"and nothing by that name is ready in {env.landing_root}"))
        instance.add_dynamic_partitions(annotation_batches.name, [batch])
    quiet = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    with progress.run(instance, f"batch {batch}") as run_id:
        return defs.resolve_job_def("batch_job").execute_in_process(
            instance=instance, partition_key=batch, run_config=quiet, raise_on_error=False, run_id=run_id)


def remove_batch(defs: dg.Definitions, instance: dg.DagsterInstance, env: Environment, batch: str) -> tuple[str, dict]:
    """Delete the batch's partition and per-batch tables, so later releases leave it out, after
    recording the removal (its state, last run, entries accepted and quarantined) in the store; the
    images and masks stay, being content-addressed and perhaps shared. Returns the record's key."""
    known = set(instance.get_dynamic_partitions(annotation_batches.name))
    if batch not in known:
        raise UnknownBatch(_unknown(batch, known, "(only a batch known to Dagster can be removed)"))
    fs, root = open_location(env.storage_root, env.s3_endpoint_url)
    row = next(row for row in batch_rows(instance, env) if row.batch == batch)
    run = last_run(instance, batch)
    tables = [f"{root}/{keys.TABLES_DIR}/{'/'.join(key.path)}/{batch}.parquet" for key in _per_batch_assets(defs)]
    record = {
        "batch": batch, "removed_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "state": row.state,
        "last_run": run.run_id if run else None, "last_failure": run.failure if run else None,
        "entries": _rows(fs, tables, f"/batch_images/{batch}.parquet"),
        "quarantined": _rows(fs, tables, f"/batch_quarantine/{batch}.parquet"),
        "tables_deleted": [t.removeprefix(f"{root}/") for t in tables if fs.exists(t)],
    }
    key = record_removal(fs, root, record)
    instance.delete_dynamic_partition(annotation_batches.name, batch)
    for table in record["tables_deleted"]:
        fs.rm_file(f"{root}/{table}")
    return key, record


def _rows(fs, tables: list[str], ending: str) -> int:
    """The rows of the batch's table whose path ends so; 0 when ingest never wrote it."""
    table = next((t for t in tables if t.endswith(ending)), None)
    return pl.read_parquet(fs.cat_file(table)).height if table and fs.exists(table) else 0


def _per_batch_assets(defs: dg.Definitions) -> list[dg.AssetKey]:
    graph = defs.resolve_asset_graph()
    return sorted((key for key in graph.get_all_asset_keys()
                   if graph.get(key).partitions_def == annotation_batches), key=lambda k: k.to_user_string())


def _unknown(batch: str, known: set[str], why: str) -> str:
    listed = ", ".join(sorted(known)) or "none"
    return f"no batch {batch!r} {why}; known batches: {listed} (`segpipe batches` lists them with their state)"
