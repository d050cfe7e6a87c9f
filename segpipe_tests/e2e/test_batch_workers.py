"""`segpipe build --workers 2` with `release.workers: 2` (the build's process and a helper share the
batch runs, the release's per-image annotations are computed on two processes) publishes the
release a build in one process publishes, byte for byte but for the build's stamp. Real builds of
the tiny demo, each by the command in a process of its own, at one project path (released tables
name where batches landed)."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from dagster._core.instance.ref import InstanceRef  # the instance of a DAGSTER_HOME folder

from segpipe_tests.e2e.test_killed_build import entry_counts, finished, project, published, releases, unstamped

pytestmark = pytest.mark.slow
STAMPED = ["SHA256SUMS", "meta.json"]  # meta.json holds the build's run id and time, SHA256SUMS its checksum


def build(env: dict[str, str], workers: int) -> str:
    """`segpipe build --workers N` with release.workers N."""
    pipeline = Path(env["SEGPIPE_HOME"]) / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text() + f"release:\n  workers: {workers}\n")
    return finished(subprocess.Popen([sys.executable, "-m", "segpipe.cli.main", "build", "--workers", str(workers)],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))


def batch_run_processes(dagster_home: Path) -> tuple[set[int], set[int]]:
    """The process ids the batch runs' steps ran in, and those of the other runs' steps."""
    batch, other = set(), set()
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))) as instance:
        for record in instance.get_run_records():
            events = instance.all_logs(record.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_START)
            pids = {event.dagster_event.pid for event in events}
            (batch if record.dagster_run.job_name == "batch_job" else other).update(pids)
    return batch, other


def test_two_processes_publish_the_release_one_process_publishes(tiny_demo, tmp_path):
    folder = tmp_path / "project"
    one = build(project(tiny_demo, folder), workers=1)
    folder.rename(tmp_path / "one")
    two = build(project(tiny_demo, folder), workers=2)

    batch_pids, other_pids = batch_run_processes(folder / "dagster")
    # this process and one helper took the batch runs; the other runs ran in this process
    assert len(batch_pids) == 2 and other_pids < batch_pids
    assert entry_counts(two) == entry_counts(one)
    [first], [second] = releases(tmp_path / "one"), releases(folder)
    assert second["content_digest"] == first["content_digest"]
    archive = next(name for name in first["files"] if name.endswith(".zip"))
    stamped = {archive, "members.parquet"}  # both hold meta.json's stamp, or its SHA-256
    assert {n: d for n, d in second["files"].items() if n not in stamped} == {
        n: d for n, d in first["files"].items() if n not in stamped}
    members = [pl.read_parquet(published(root, marker) / "members.parquet")
               for root, marker in ((tmp_path / "one", first), (folder, second))]
    unequal = members[0].join(members[1], on="path", how="full", suffix="_two").filter(
        pl.col("sha256").ne_missing(pl.col("sha256_two")) | pl.col("part").ne_missing(pl.col("part_two")))
    assert sorted(unequal["path"]) == STAMPED
    with zipfile.ZipFile(published(tmp_path / "one", first) / archive) as ones, \
            zipfile.ZipFile(published(folder, second) / archive) as twos:
        assert ones.namelist() == twos.namelist()
        assert sorted(name for name in ones.namelist() if ones.read(name) != twos.read(name)) == STAMPED
        metas = [json.loads(zipped.read("meta.json")) for zipped in (ones, twos)]
    assert unstamped(metas[0]) == unstamped(metas[1])
