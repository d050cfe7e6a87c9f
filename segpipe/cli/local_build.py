"""Build a release on one machine by launching the Dagster jobs in order, recorded in a Dagster instance.

This is what `make demo` and `segpipe build` run; the same runs appear in the Dagster UI
afterwards (`make dev`), exactly as if they had been launched there.
"""

import contextlib
import gc
import multiprocessing
import os
import threading
import uuid
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.instance.ref import InstanceRef  # what DagsterInstance.get_ref returns

from segpipe.cli.progress import RunProgress
from segpipe.cli.sqlite_syncs import fewer_disk_syncs, keep_for_process
from segpipe.core.ingest.landing import LandingProblem, scan_landing
from segpipe.core.config.pipeline import load_pipeline_settings
from segpipe.core.taxonomy.model import load_taxonomy
from segpipe.defs.batches import BATCH_DONE_ASSET, LandedAgain, done_batches, landed_again
from segpipe.defs.executor import CELERY
from segpipe.defs.partitions import BACKFILL_RUN_BATCHES, PARALLEL_RUN_TAG, annotation_batches
from segpipe.environment import Environment
from segpipe.io.locations import open_location
from segpipe.store.batch_removals import removed_batches

DEFINITIONS_MODULE = "segpipe.definitions"
PARTITION_TAG = "dagster/partition"
DEFAULT_BATCH_WORKERS = min(2, os.cpu_count() or 1)  # each process holds one batch: memory stays bounded
# A helper process is replaced after this many batch runs: what a run leaves behind in a process
# (Dagster's caches, the allocator's high-water mark) would otherwise grow with the number of batches.
BATCHES_PER_HELPER = 8


class NothingToBuild(RuntimeError):
    """No batch to build from: the landing zone has none ready, or (for a backfill) none was ingested."""


@dataclass(frozen=True)
class BuildOutcome:
    batches: list[str]
    success: bool
    failed_checks: list[str]
    check_outcomes: dict[str, bool]
    release_metadata: dict
    failed_run_id: str | None = None  # the run that failed or published no release; its event log says why
    failed_batches: dict[str, str] = field(default_factory=dict)  # batch -> its failed batch_job run of this build
    removed: list[str] = field(default_factory=list)  # ready batches left out: `segpipe batch remove` removed them
    not_batches: list[LandingProblem] = field(default_factory=list)  # landed entries that cannot be batches
    landed_again: list[LandedAgain] = field(default_factory=list)  # done batches landed again since their ingest


def run_local_build(
    defs: dg.Definitions, instance: dg.DagsterInstance, env: Environment, log_level: str = "WARNING",
    progress: RunProgress = RunProgress(), batch_workers: int = 1,
) -> BuildOutcome:
    """Ingest, map and draw every ready batch not drawn yet (one run per batch, as the landing sensor
    launches them), then QA, consensus, sampling and release over the batches that are done. So a
    nightly `segpipe build` does only the new batches' work; after a taxonomy edit, `segpipe
    backfill` remaps the drawn ones. A batch whose run fails is left out of the release, not in its
    way (the release names it); a batch `segpipe batch remove` removed is not landed again.
    With `batch_workers` > 1 the batch runs are shared by this process and `batch_workers` - 1 helper
    processes (segpipe.definitions' definitions, the same instance), so the per-image work of ingest
    and drawing uses every core; each batch's outputs are its own, so the release is the same
    whatever the number of workers. A SQLite instance records the runs with fewer disk syncs (sqlite_syncs)."""
    with fewer_disk_syncs(), _collected_per_run():
        return _build(defs, instance, env, log_level, progress, batch_workers)


def _build(defs: dg.Definitions, instance: dg.DagsterInstance, env: Environment, log_level: str,
           progress: RunProgress, batch_workers: int) -> BuildOutcome:
    batches, removed, not_batches, ready_at = _register_batches(instance, env)
    again = landed_again(instance, ready_at)
    quiet = _quiet(log_level)
    drawn = instance.get_materialized_partitions(dg.AssetKey(BATCH_DONE_ASSET))
    new = [batch for batch in batches if batch not in drawn]
    with _batch_helpers(defs, "batch_job", batch_workers, len(new)) as helpers:
        spec = _execute(defs, "taxonomy_job", instance, progress, "taxonomy", run_config=quiet)
        if not spec.success:
            return _failed(batches, spec.run_id)
        failed_batches = _batch_runs(defs, instance, new, quiet, progress, helpers)
        if not done_batches(instance):
            return replace(_failed(batches, next(iter(failed_batches.values()))), failed_batches=failed_batches,
                           not_batches=not_batches)
        return replace(_release(defs, instance, batches, quiet, progress), failed_batches=failed_batches,
                       removed=removed, not_batches=not_batches, landed_again=again)


def run_taxonomy_backfill(
    defs: dg.Definitions, instance: dg.DagsterInstance, env: Environment, log_level: str = "WARNING",
    progress: RunProgress = RunProgress(), batch_workers: int = 1,
) -> BuildOutcome:
    """After a taxonomy edit: remap every known batch with the current taxonomy (its label masks are
    reused as drawn) in runs over at most BACKFILL_RUN_BATCHES batches each, as a backfill launched
    from the UI is run (the batch assets' backfill policy), then QA, consensus, sampling and release.
    With `batch_workers` > 1 the runs are shared with helper processes as a build's batch runs are
    (run_local_build), the batches cut so that every process gets a run and the runs in flight hold
    no more batches than one run does alone; each run then also computes the release's
    annotations of the masks it makes (PARALLEL_RUN_TAG). Two processes hold two runs' worth of
    their own state, so 1 (one run at a time, the annotations left to the release's workers) is the
    default, as `segpipe backfill` has it."""
    with fewer_disk_syncs(), _collected_per_run():
        return _backfill(defs, instance, env, log_level, progress, batch_workers)


def _backfill(defs: dg.Definitions, instance: dg.DagsterInstance, env: Environment, log_level: str,
              progress: RunProgress, batch_workers: int) -> BuildOutcome:
    load_taxonomy(env.taxonomy_path)
    batches = instance.get_dynamic_partitions(annotation_batches.name)
    if not batches:
        raise NothingToBuild("no batches have been ingested yet; run `segpipe build` first")
    quiet = _quiet(log_level)
    ranges = backfill_ranges(batches, batch_workers)
    parallel = {PARALLEL_RUN_TAG: "true"} if len(ranges) > 1 and batch_workers > 1 else {}
    runs = [QueuedRun("taxonomy_backfill_job",
                      f"remap {len(batches)} batches" if len(chunk) == len(batches)
                      else f"remap batches {start + 1}-{start + len(chunk)} of {len(batches)}",
                      tags={"dagster/asset_partition_range_start": chunk[0],
                            "dagster/asset_partition_range_end": chunk[-1], **parallel})
            for start, chunk in ranges]
    with _batch_helpers(defs, "taxonomy_backfill_job", batch_workers, len(runs)) as helpers:
        spec = _execute(defs, "taxonomy_job", instance, progress, "taxonomy", run_config=quiet)
        if not spec.success:
            return _failed(sorted(batches), spec.run_id)
        failed = _queued_runs(defs, instance, runs, quiet, progress, helpers, stop_at_failure=True)
    if failed:
        return _failed(sorted(batches), next(iter(failed.values())))
    return _release(defs, instance, sorted(batches), quiet, progress)


def backfill_ranges(batches: Sequence[str], workers: int) -> list[tuple[int, list[str]]]:
    """The batches (in partition order) cut into consecutive ranges: (index of the first, batches).
    The `workers` processes run one range each at a time, so a range has at most
    BACKFILL_RUN_BATCHES / workers batches (the tables held at once stay those of
    BACKFILL_RUN_BATCHES batches), and there are at least `workers` ranges where there are enough
    batches."""
    workers = max(workers, 1)
    size = max(1, min(BACKFILL_RUN_BATCHES // workers, len(batches) // workers))
    return [(start, list(batches[start:start + size])) for start in range(0, len(batches), size)]


@contextlib.contextmanager
def _collected_per_run() -> Iterator[None]:
    """The objects alive now (the definitions, the libraries: a few hundred thousand) set aside from
    Python's garbage collector meanwhile, and a collection after each run (_execute): what a run
    leaves is in reference cycles (Dagster's execution objects refer to each other), which the
    collector, left to itself, reaches late among so many objects, while they hold the run's tables.
    A backfill's runs of ten batches each grew the process about 75 MiB a run (1.36 GiB at 10,000
    scenes); a collection over only what the build made costs a few milliseconds."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class BatchHelper:
    """A helper process for batch runs (and a backfill's remapping runs), spawned and loading the
    definitions at once, so its start-up overlaps what this process does meanwhile (the taxonomy
    run) instead of delaying its first run.
    After BATCHES_PER_HELPER runs it is replaced, the fresh one started only once the last has ended:
    two alive at once, one exiting and one starting, would add a whole helper to the build's peak."""

    def __init__(self) -> None:
        self._process, self._runs = self._started(), 0

    @staticmethod
    def _started() -> ProcessPoolExecutor:
        process = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        process.submit(_warm_helper)
        return process

    def run(self, instance_ref: InstanceRef, run: "QueuedRun", run_id: str, quiet: dict) -> bool:
        """`run` under `run_id`; whether it succeeded."""
        if self._runs == BATCHES_PER_HELPER:
            self._process.shutdown(wait=True)
            self._process, self._runs = self._started(), 0
        self._runs += 1
        return self._process.submit(_helper_run, instance_ref, run, run_id, quiet).result()

    def let_go(self) -> None:
        """Its runs are done: it exits meanwhile (about a second of tearing down), not in the build's way."""
        self._process.shutdown(wait=False)

    def close(self) -> None:
        self._process.shutdown(wait=True)


@contextlib.contextmanager
def _batch_helpers(defs: dg.Definitions, job: str, workers: int, runs: int) -> Iterator[list[BatchHelper]]:
    """The helpers that share `runs` runs of `job` with this process, `workers` processes in all (none
    under the Celery executor: its workers are where the steps run), each waited for at the end,
    whether let go (exiting while the release runs: the release's memory and an exiting helper's
    stay below two batch processes') or not.
    Helpers rather than a pool of all the workers: this process, its definitions loaded, would sit
    idle beside them, and the sum of the processes' memory is what a host must have."""
    on_workers = defs.resolve_job_def(job).executor_def.name == CELERY
    helpers = [BatchHelper() for _ in range(0 if on_workers else max(min(workers, runs) - 1, 0))]
    try:
        yield helpers
    finally:
        for helper in helpers:
            helper.close()


@dataclass(frozen=True)
class QueuedRun:
    """A run of `job` over one batch (`partition_key`) or a range of them (`tags`), shown as `label`."""

    job: str
    label: str
    partition_key: str | None = None
    tags: dict[str, str] | None = None


def _batch_runs(defs: dg.Definitions, instance: dg.DagsterInstance, batches: list[str], quiet: dict,
                progress: RunProgress, helpers: Sequence[BatchHelper] = ()) -> dict[str, str]:
    """One batch_job run per batch; the failed ones' run ids, by batch."""
    runs = {batch: QueuedRun("batch_job", f"batch {n}/{len(batches)} {batch}", partition_key=batch)
            for n, batch in enumerate(batches, 1)}
    failed = _queued_runs(defs, instance, list(runs.values()), quiet, progress, helpers)
    return {batch: failed[run.label] for batch, run in runs.items() if run.label in failed}


def _queued_runs(defs: dg.Definitions, instance: dg.DagsterInstance, runs: list[QueuedRun], quiet: dict,
                 progress: RunProgress, helpers: Sequence[BatchHelper] = (), stop_at_failure: bool = False,
                 ) -> dict[str, str]:
    """Every run of `runs` (with `stop_at_failure`, none started after one failed); the failed ones'
    run ids, by label, in the order of `runs`. This process takes the runs in turn from one queue,
    and so does each of the `helpers` processes (spawned: they share nothing with this one but the
    instance, by reference, and the environment), each run reported as it ends; once the queue is
    empty the helpers are let go."""
    queue, failed, lock, errors = list(reversed(runs)), {}, threading.Lock(), []

    def take() -> QueuedRun | None:
        with lock:
            return queue.pop() if queue and not (stop_at_failure and failed) else None

    def in_helper(helper: BatchHelper) -> None:
        try:  # an instance of the thread's own: this process's runs write through the build's meanwhile
            with dg.DagsterInstance.from_ref(instance.get_ref()) as own:
                while (run := take()) is not None:
                    run_id = str(uuid.uuid4())
                    if not helper.run(own.get_ref(), run, run_id, quiet):
                        failed[run.label] = run_id
                    progress.finished(own, run.label, run_id)
        except BaseException as exc:  # a helper that died: raised once this process's runs are done
            errors.append(exc)

    threads = [threading.Thread(target=in_helper, args=(helper,), daemon=True) for helper in helpers]
    for thread in threads:
        thread.start()
    while (run := take()) is not None:
        result = _execute(defs, run.job, instance, progress, run.label, partition_key=run.partition_key,
                          tags=run.tags, run_config=quiet)
        if not result.success:
            failed[run.label] = result.run_id
    for thread in threads:
        thread.join()
    for helper in helpers:
        helper.let_go()
    if errors:
        raise errors[0]
    return {run.label: failed[run.label] for run in runs if run.label in failed}


_HELPER_DEFS: list[dg.Definitions] = []  # a helper process's definitions, loaded once


def _helper_definitions() -> dg.Definitions:
    """In a helper process: segpipe.definitions' definitions, loaded by the first call."""
    if not _HELPER_DEFS:
        from segpipe.definitions import defs as load_defs
        keep_for_process()
        _HELPER_DEFS.append(load_defs())
        gc.collect()
        gc.freeze()  # as _collected_per_run, for the helper's life
    return _HELPER_DEFS[0]


def _warm_helper() -> None:
    _helper_definitions()


def _helper_run(instance_ref: InstanceRef, run: QueuedRun, run_id: str, quiet: dict) -> bool:
    """In a helper process: `run` under `run_id`; whether it succeeded."""
    definitions = _helper_definitions()
    with dg.DagsterInstance.from_ref(instance_ref) as instance:
        result = definitions.resolve_job_def(run.job).execute_in_process(
            instance=instance, run_id=run_id, raise_on_error=False, partition_key=run.partition_key, tags=run.tags,
            run_config=quiet)
    gc.collect()
    return result.success


def _register_batches(
    instance: dg.DagsterInstance, env: Environment,
) -> tuple[list[str], list[str], list[LandingProblem], dict[str, float]]:
    """The ready batches to build, each added as a partition; the ready ones left out because they
    were removed (`segpipe batch retry` brings one back); the landed entries that cannot be batches;
    when each batch to build landed."""
    load_taxonomy(env.taxonomy_path)
    load_pipeline_settings(env.pipeline_path)
    fs, root = open_location(env.landing_root, env.s3_endpoint_url)
    scan = scan_landing(fs, root)
    ready = list(scan.ready)
    known = set(instance.get_dynamic_partitions(annotation_batches.name))
    removed = set(removed_batches(*open_location(env.storage_root, env.s3_endpoint_url))) - known
    batches = [b for b in ready if b not in removed]
    if not batches:
        raise NothingToBuild(f"{env.landing_root}: no ready batches (folders with a batch.json, or .zip archives); "
                             "start a project from your export with `segpipe init EXPORT`, or try `segpipe demo`"
                             + (f" (removed, so left out: {', '.join(sorted(removed & set(ready)))})" if ready else "")
                             + "".join(f"\nnot a batch: {problem}" for problem in scan.problems))
    instance.add_dynamic_partitions(annotation_batches.name, [b for b in batches if b not in known])
    return batches, sorted(removed & set(ready)), scan.problems, {b: scan.ready[b].ready_at for b in batches}


def _failed(batches: list[str], run_id: str) -> BuildOutcome:
    return BuildOutcome(batches, False, [], {}, {}, run_id)


def _quiet(log_level: str) -> dict:
    return {"loggers": {"console": {"config": {"log_level": log_level}}}}


def _execute(defs: dg.Definitions, job: str, instance: dg.DagsterInstance, progress: RunProgress, label: str,
             partition_key: str | None = None, tags: dict[str, str] | None = None,
             run_config: dict | None = None) -> dg.ExecuteInProcessResult | dg.JobExecutionResult:
    """Run `job` in this process, its steps reported by `progress` under `label`; or, when the
    deployment chose Celery (SEGPIPE_EXECUTOR), orchestrate it here with its steps on the workers."""
    job_def = defs.resolve_job_def(job)
    if job_def.executor_def.name == CELERY:
        result = _execute_on_workers(job, instance, partition_key, tags, run_config, progress, label)
    else:
        with progress.run(instance, label) as run_id:
            result = job_def.execute_in_process(instance=instance, run_id=run_id, raise_on_error=False,
                                                partition_key=partition_key, tags=tags, run_config=run_config)
    gc.collect()
    return result


def _execute_on_workers(job: str, instance: dg.DagsterInstance, partition_key: str | None, tags: dict[str, str] | None,
                        run_config: dict | None, progress: RunProgress, label: str) -> dg.JobExecutionResult:
    """Each worker rebuilds the job from segpipe.definitions, so it is passed by reference, not as an
    object. Dagster picks the run id here, so `progress` shows the run's label but not its steps."""
    repository = ReconstructableRepository.for_module(DEFINITIONS_MODULE, "defs", os.getcwd())
    recon = repository.get_reconstructable_job(job)
    with progress.run(instance, label), warnings.catch_warnings():
        # dagster-celery registers its one step task again for every step it sends; Celery warns each time
        warnings.filterwarnings("ignore", message="Task name 'execute_plan' is already registered")
        return dg.execute_job(recon, instance, run_config=run_config, raise_on_error=False,
                              tags={**(tags or {}), **({PARTITION_TAG: partition_key} if partition_key else {})})


def _release(defs: dg.Definitions, instance: dg.DagsterInstance, batches: list[str], quiet: dict,
             progress: RunProgress) -> BuildOutcome:
    result = _execute(defs, "release_job", instance, progress, "release", run_config=quiet)
    evaluations = {
        f"{e.asset_check_key.asset_key.to_user_string()}:{e.check_name}": e for e in result.get_asset_check_evaluations()
    }
    failed = sorted(k for k, e in evaluations.items() if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR)
    release = [m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey("dataset_release")]
    metadata = {k: v.value for k, v in release[0].materialization.metadata.items()} if release else {}
    success = result.success and bool(release)
    return BuildOutcome(batches, success, failed, {k: e.passed for k, e in evaluations.items()}, metadata,
                        None if success else result.run_id)
