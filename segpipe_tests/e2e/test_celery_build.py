"""A build whose steps run on Celery workers: a real Redis broker and two `dagster-celery` workers, each a
process group of its own, take the steps of every run `segpipe build` orchestrates (SEGPIPE_EXECUTOR=celery),
on one persistent instance (SQLite under DAGSTER_HOME) and one object store. The run's events show the
steps spread over both workers, and the release holds exactly what an in-process build of the same landing
zone releases."""

import os
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from segpipe_tests.celery_workers import run_celery_workers, run_redis_broker
from segpipe_tests.e2e.test_killed_build import assert_same_release_apart_from_stamp, build, entry_counts, finished, project

pytestmark = pytest.mark.slow

WORKERS = ["segpipe-worker-1", "segpipe-worker-2"]
JOBS = {"taxonomy_job", "batch_job", "release_job"}


def step_starts(dagster_home: Path) -> list[tuple[str, str, int]]:
    """(job, step, pid) of every step start the instance recorded."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return [(run.job_name, entry.dagster_event.step_key, entry.dagster_event.pid)
                for run in instance.get_runs()
                for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)]


def test_a_build_on_two_celery_workers_releases_what_an_in_process_build_does(tiny_demo, tmp_path):
    folder = tmp_path / "project"  # both builds at one path: released tables name where batches landed
    reference = finished(build(project(tiny_demo, folder)))
    folder.rename(tmp_path / "reference")
    env = project(tiny_demo, folder)
    with run_redis_broker() as broker:
        env |= {"SEGPIPE_EXECUTOR": "celery", "SEGPIPE_CELERY_BROKER": broker.url}
        with run_celery_workers(WORKERS, env, tmp_path) as workers:
            distributed = finished(build(env))
            starts = step_starts(folder / "dagster")
            # while the workers live, every pid a step started in names its worker by its process group
            worker_of = {pid: next((w.name for w in workers if os.getpgid(pid) == w.process.pid), None)
                         for pid in {pid for _, _, pid in starts}}

    assert {job for job, _, _ in starts} == JOBS
    assert None not in worker_of.values(), f"steps ran outside the workers: {worker_of}"
    steps_per_worker = Counter(worker_of[pid] for _, _, pid in starts)
    assert set(steps_per_worker) == set(WORKERS), steps_per_worker
    assert len(worker_of) >= 2

    assert entry_counts(distributed) == entry_counts(reference)
    assert_same_release_apart_from_stamp(tmp_path / "reference", folder)
