"""The Dagster daemon as production runs it: `dagster-daemon run -w workspace.yaml`, a process of its own,
on the production instance config (deploy/dagster.postgres.yaml: PostgreSQL storage, at most two runs at a
time) against a real local PostgreSQL. Batches land while it runs: the landing sensor launches a run per
batch, the run queue holds back the third of three batches landed together while two run, every run
succeeds, and the nightly schedule (here every minute) then releases every batch."""

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from segpipe.defs.partitions import annotation_batches
from segpipe_tests.conftest import tiny_demo_pipeline
from segpipe_tests.postgres_server import PostgresServer, run_postgres_server
from segpipe_tests.process_group import stop_process_group

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_CONFIG = ROOT / "deploy" / "dagster.postgres.yaml"
DATABASE = "segpipe_daemon"
RUN_LIMIT = 2  # deploy/dagster.postgres.yaml, concurrency.runs.max_concurrent_runs
EVERY_MINUTE = "* * * * *"
DEADLINE_S = 600  # two sensor ticks a minute apart, four batch runs, then the next minute's release
KEY = "5e9f1c" * 8
IN_PROGRESS = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED}
DONE = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dataclass
class DaemonDay:
    batches: list[str]
    runs: list[dg.RunRecord]  # every run of the instance, oldest first
    launched: dict[str, float]  # run id -> when the queue let it go (its RUN_STARTING event)
    most_in_progress: int  # the most runs seen starting or started at one poll
    release: dg.RunRecord  # the scheduled release that followed every batch run
    released: list[dict]  # the metadata of each dataset_release it materialized (one)
    partitions: list[str]
    daemon_log: str


def _daemon_command() -> list[str]:
    """docs/deployment.md's daemon command."""
    return [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"]


def _wait_for(instance: dg.DagsterInstance, done, seen: list[int], daemon: subprocess.Popen, log: Path) -> None:
    """Poll the instance until `done(runs)`, noting how many runs were in progress at each poll."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        runs = instance.get_run_records()
        seen.append(sum(record.dagster_run.status in IN_PROGRESS for record in runs))
        if done([record.dagster_run for record in runs]):
            return
        assert daemon.poll() is None, f"the daemon exited:\n{log.read_text(errors='replace')[-4000:]}"
        assert time.monotonic() < deadline, (f"not done after {DEADLINE_S} s: "
                                             f"{[(r.dagster_run.job_name, r.dagster_run.status) for r in runs]}\n"
                                             f"{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with run_postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def day(postgres, tiny_demo, tmp_path_factory) -> Iterator[DaemonDay]:
    tmp = tmp_path_factory.mktemp("daemon")
    postgres.create_database(DATABASE)
    home, dagster_home, arrivals = tmp / "project", tmp / "dagster_home", tmp / "arrivals"
    dagster_home.mkdir()
    shutil.copyfile(PRODUCTION_CONFIG, dagster_home / "dagster.yaml")
    shutil.copytree(Path(tiny_demo.landing_root), arrivals)
    (home / "landing").mkdir(parents=True)
    shutil.copy(Path(tiny_demo.landing_root).parent / "taxonomy.yaml", home / "taxonomy.yaml")
    pipeline = tiny_demo_pipeline()
    assert 'cron: "0 2 * * *"' in pipeline, "the demo's nightly cron changed"
    (home / "pipeline.yaml").write_text(pipeline.replace('cron: "0 2 * * *"', f'cron: "{EVERY_MINUTE}"'))
    batches = sorted(path.name for path in arrivals.iterdir())
    first, rest = batches[0], batches[1:]
    (arrivals / first).rename(home / "landing" / first)
    with pytest.MonkeyPatch.context() as env:
        for name, value in {**postgres.environment(DATABASE), "DAGSTER_HOME": str(dagster_home),
                            "SEGPIPE_HOME": str(home), "SEGPIPE_PSEUDONYM_KEY": KEY,
                            "SEGPIPE_EXECUTOR": "in_process"}.items():
            env.setenv(name, value)
        for name in ("SEGPIPE_LANDING_ROOT", "SEGPIPE_STORAGE_ROOT", "SEGPIPE_TAXONOMY", "SEGPIPE_PIPELINE_CONFIG"):
            env.delenv(name, raising=False)
        log = tmp / "daemon.log"
        daemon = subprocess.Popen(_daemon_command(), cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
        seen: list[int] = []
        try:
            with dg.DagsterInstance.get() as instance:
                # the sensor's first tick runs the one batch landed; the rest land (each a rename, as an
                # upload's last step should be) while that run goes on, for its next tick a minute later
                _wait_for(instance, lambda runs: any(r.job_name == "batch_job" for r in runs), seen, daemon, log)
                for batch in rest:
                    (arrivals / batch).rename(home / "landing" / batch)
                _wait_for(instance, lambda runs: _released_after_every_batch(instance, runs, len(batches)),
                          seen, daemon, log)
                records = sorted(instance.get_run_records(), key=lambda r: r.create_timestamp)
                batch_end = max(r.end_time for r in records if r.dagster_run.job_name == "batch_job")
                release = next(r for r in records if r.dagster_run.job_name == "release_job"
                               and r.dagster_run.status in DONE and r.start_time > batch_end)
                launched = {r.dagster_run.run_id: _launch_time(instance, r.dagster_run.run_id) for r in records}
                partitions = instance.get_dynamic_partitions(annotation_batches.name)
                released = [{k: v.value for k, v in entry.asset_materialization.metadata.items()}
                            for entry in instance.all_logs(release.dagster_run.run_id,
                                                           of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
                            if entry.asset_materialization.asset_key == dg.AssetKey("dataset_release")]
        finally:
            stop_process_group(daemon, signal.SIGTERM, 30)
        yield DaemonDay(batches, records, launched, max(seen), release, released, sorted(partitions),
                        log.read_text(errors="replace"))


def _released_after_every_batch(instance: dg.DagsterInstance, runs: list[dg.DagsterRun], batches: int) -> bool:
    """Every batch's run is done, and so is a release run that started after the last of them ended."""
    batch_runs = [r for r in runs if r.job_name == "batch_job"]
    if len(batch_runs) < batches or any(r.status not in DONE for r in batch_runs):
        return False
    last_batch_end = max(instance.get_run_record_by_id(r.run_id).end_time for r in batch_runs)
    return any(r.job_name == "release_job" and r.status in DONE
               and instance.get_run_record_by_id(r.run_id).start_time > last_batch_end for r in runs)


def test_the_landing_sensor_launched_one_run_per_landed_batch(day):
    batch_runs = [r.dagster_run for r in day.runs if r.dagster_run.job_name == "batch_job"]
    assert sorted(run.tags["dagster/partition"] for run in batch_runs) == day.batches == day.partitions
    assert {run.tags.get("dagster/sensor_name") for run in batch_runs} == {"landing_batches_sensor"}
    assert {run.status for run in batch_runs} == {dg.DagsterRunStatus.SUCCESS}, day.daemon_log[-4000:]


def _launch_time(instance: dg.DagsterInstance, run_id: str) -> float:
    """When the run queue dequeued the run: from then on the queue counts it against the limit (STARTING),
    seconds before the run's own process marks it started."""
    [starting] = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_STARTING)
    return starting.timestamp


def test_the_run_queue_never_ran_more_than_its_limit(day):
    assert day.most_in_progress <= RUN_LIMIT
    finished = [r for r in day.runs if r.dagster_run.status in DONE]  # the daemon stopped with one perhaps queued
    spans = {r.dagster_run.run_id: (day.launched[r.dagster_run.run_id], r.end_time) for r in finished}
    assert all(launched < end for launched, end in spans.values())
    most_at_once = max(sum(start <= moment < end for start, end in spans.values())
                       for moment, _ in spans.values())
    assert most_at_once <= RUN_LIMIT
    # and the limit was met: some run waited in the queue while two others held its places
    assert any(_held_back_by(run, finished, spans) >= RUN_LIMIT for run in finished), [
        (r.dagster_run.job_name, r.create_timestamp.timestamp(), *spans[r.dagster_run.run_id]) for r in finished]


def _held_back_by(run: dg.RunRecord, runs: list[dg.RunRecord], spans: dict[str, tuple[float, float]]) -> int:
    """The most other runs in progress (launched, not ended) at one moment while `run` waited in the queue."""
    queued_from, launched = run.create_timestamp.timestamp(), spans[run.dagster_run.run_id][0]
    others = [spans[o.dagster_run.run_id] for o in runs if o is not run]
    moments = [queued_from, *(start for start, _ in others if queued_from <= start < launched)]
    return max(sum(start <= moment < end for start, end in others) for moment in moments)


def test_the_nightly_schedule_released_every_batch(day):
    release = day.release.dagster_run
    assert release.tags.get("dagster/schedule_name") == "nightly_release"
    assert release.status == dg.DagsterRunStatus.SUCCESS, day.daemon_log[-4000:]
    [released] = day.released
    assert released["batches_released"] == day.batches and released["batches_not_released"] == {}
    entries = released["entries"]
    assert entries["input"] == entries["released"] + entries["filtered"] + entries["quarantined"] > 0
    # every run the daemon finished succeeded: a release over fewer batches, before the last landed, too
    assert {r.dagster_run.status for r in day.runs if r.dagster_run.status in DONE} == {dg.DagsterRunStatus.SUCCESS}
