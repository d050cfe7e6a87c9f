"""`segpipe build --workers 2` with `release.workers: 2` (the build's process and a helper share the
batch runs, the release's per-image annotations are computed on two processes) publishes the
release a build in one process publishes, byte for byte but for the build's stamp; and so does
`segpipe backfill --workers 2` after a taxonomy edit that changes masks (its remapping runs shared
the same way). Real builds of the tiny demo, each by the command in a process of its own, at one
project path (released tables name where batches landed)."""

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


def backfill(env: dict[str, str], workers: int) -> str:
    """A taxonomy edit that changes the masks of every batch with a car, then `segpipe backfill --workers N`."""
    taxonomy = Path(env["SEGPIPE_HOME"]) / "taxonomy.yaml"
    assert "    automobile: car" in taxonomy.read_text()
    taxonomy.write_text(taxonomy.read_text().replace("    automobile: car", "    automobile: road"))
    return finished(subprocess.Popen([sys.executable, "-m", "segpipe.cli.main", "backfill", "--workers", str(workers)],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))


def step_processes(dagster_home: Path, run_ids: set[str] | None = None) -> dict[str, set[int]]:
    """job name -> the process ids the steps of its runs ran in (of the runs in `run_ids`, or all)."""
    processes: dict[str, set[int]] = {}
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))) as instance:
        for record in instance.get_run_records():
            if run_ids is not None and record.dagster_run.run_id not in run_ids:
                continue
            events = instance.all_logs(record.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_START)
            processes.setdefault(record.dagster_run.job_name, set()).update(e.dagster_event.pid for e in events)
    return processes


def remap_annotations_computed(dagster_home: Path) -> list[int]:
    """`release_annotations_computed` of each annotation_masks partition the backfill's runs made."""
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))) as instance:
        runs = {r.dagster_run.run_id for r in instance.get_run_records(dg.RunsFilter(job_name="taxonomy_backfill_job"))}
        records = instance.fetch_materializations(dg.AssetKey("annotation_masks"), limit=1000).records
        return [record.asset_materialization.metadata["release_annotations_computed"].value
                for record in records if record.run_id in runs]


def run_ids(dagster_home: Path) -> set[str]:
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))) as instance:
        return {record.dagster_run.run_id for record in instance.get_run_records()}


@pytest.fixture(scope="module")
def built_and_backfilled(tiny_demo, tmp_path_factory) -> dict:
    """The tiny demo built and then backfilled on one process (in one/) and on two (in project/)."""
    root = tmp_path_factory.mktemp("workers")
    folder, outputs = root / "project", {}
    for workers in (1, 2):
        env = project(tiny_demo, folder)
        built = build(env, workers)
        build_runs = run_ids(folder / "dagster")
        outputs[workers] = (built, backfill(env, workers))
        if workers == 1:
            folder.rename(root / "one")
    return {"root": root, "folder": folder, "outputs": outputs, "build_runs": build_runs}


def test_two_processes_publish_the_release_one_process_publishes(built_and_backfilled):
    tmp_path, folder = built_and_backfilled["root"], built_and_backfilled["folder"]
    (one, _), (two, _) = built_and_backfilled["outputs"][1], built_and_backfilled["outputs"][2]

    processes = step_processes(folder / "dagster", built_and_backfilled["build_runs"])
    batch_pids = processes.pop("batch_job")
    # this process and one helper took the batch runs; the other runs ran in this process
    assert len(batch_pids) == 2 and set().union(*processes.values()) < batch_pids
    assert entry_counts(two) == entry_counts(one)
    [first, _], [second, _] = releases(tmp_path / "one"), releases(folder)
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


def test_a_backfill_on_two_processes_publishes_what_one_process_publishes(built_and_backfilled):
    """The remapping runs are cut so both processes get one, each computing the changed masks'
    annotations ahead of the release."""
    tmp_path, folder = built_and_backfilled["root"], built_and_backfilled["folder"]
    (_, one), (_, two) = built_and_backfilled["outputs"][1], built_and_backfilled["outputs"][2]

    assert len(step_processes(folder / "dagster")["taxonomy_backfill_job"]) == 2
    assert len(step_processes(tmp_path / "one" / "dagster")["taxonomy_backfill_job"]) == 1
    # the parallel runs computed the changed masks' annotations; one run over every batch left them to the release
    assert sum(remap_annotations_computed(folder / "dagster")) > 0
    assert set(remap_annotations_computed(tmp_path / "one" / "dagster")) == {0}
    assert entry_counts(two) == entry_counts(one)
    [cold_one, first], [cold_two, second] = releases(tmp_path / "one"), releases(folder)
    assert first["content_digest"] == second["content_digest"] != cold_one["content_digest"] == cold_two["content_digest"]
    assert {n: d for n, d in second["files"].items() if not n.endswith((".zip", ".parquet"))} == {
        n: d for n, d in first["files"].items() if not n.endswith((".zip", ".parquet"))}
