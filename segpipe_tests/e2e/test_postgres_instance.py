"""The production instance config (deploy/dagster.postgres.yaml, loaded as-is) on a real local PostgreSQL:
a segpipe build records its runs and materializations there, and a fresh instance sees them."""

import json
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

from segpipe.store.keys import RELEASE_MARKER
from segpipe.definitions import defs as load_defs
from segpipe.defs.partitions import annotation_batches
from segpipe.environment import current_environment
from segpipe.cli.local_build import BuildOutcome, run_local_build
from segpipe_tests.conftest import tiny_demo_pipeline
from segpipe_tests.postgres_server import PostgresServer, run_postgres_server

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_CONFIG = ROOT / "deploy" / "dagster.postgres.yaml"
DATABASE = "segpipe_dagster"


@dataclass
class PostgresBuilds:
    server: PostgresServer
    cold: BuildOutcome
    again: BuildOutcome
    storage_kinds: tuple[type, type]
    store: Path


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with run_postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def builds(postgres, tiny_demo, tmp_path_factory) -> Iterator[PostgresBuilds]:
    """Two builds of the same landing zone, as a nightly host would run them, with DAGSTER_HOME holding
    the production config as its dagster.yaml and the connection in the libpq variables the README names."""
    tmp = tmp_path_factory.mktemp("postgres-build")
    postgres.create_database(DATABASE)
    dagster_home = tmp / "dagster_home"
    dagster_home.mkdir()
    shutil.copyfile(PRODUCTION_CONFIG, dagster_home / "dagster.yaml")
    with pytest.MonkeyPatch.context() as env:
        for name, value in postgres.environment(DATABASE).items():
            env.setenv(name, value)
        env.setenv("DAGSTER_HOME", str(dagster_home))
        shutil.copytree(Path(tiny_demo.landing_root), tmp / "landing")
        env.setenv("SEGPIPE_LANDING_ROOT", str(tmp / "landing"))
        env.setenv("SEGPIPE_STORAGE_ROOT", str(tmp / "store"))
        env.setenv("SEGPIPE_TAXONOMY", str(tiny_demo.taxonomy_path))
        (tmp / "pipeline.yaml").write_text(tiny_demo_pipeline())
        env.setenv("SEGPIPE_PIPELINE_CONFIG", str(tmp / "pipeline.yaml"))
        with dg.DagsterInstance.get() as instance:
            kinds = (type(instance.run_storage), type(instance.event_log_storage))
            cold = run_local_build(load_defs(), instance, current_environment())
            again = run_local_build(load_defs(), instance, current_environment())
        yield PostgresBuilds(postgres, cold, again, kinds, tmp / "store")


def _query(server: PostgresServer, sql: str, *params) -> list[tuple]:
    connection = server.connect(DATABASE)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    finally:
        connection.close()


def _release_runs(server: PostgresServer) -> list[str]:
    return [run_id for (run_id,) in _query(
        server, "SELECT run_id FROM runs WHERE pipeline_name = 'release_job' ORDER BY create_timestamp")]


def test_a_build_on_the_postgres_instance_publishes_its_release_once(builds):
    assert builds.storage_kinds == (PostgresRunStorage, PostgresEventLogStorage)
    cold, again = builds.cold, builds.again
    assert cold.success and again.success, (cold.failed_checks, again.failed_checks)
    assert cold.release_metadata["newly_published"] is True
    # The rebuild finds the same content already released, as on SQLite: nothing new is published.
    assert again.release_metadata["newly_published"] is False
    assert again.release_metadata["diff_against"] == (f"nothing published: {cold.release_metadata['version']} already "
                                                      "holds this content") and "diff_items" not in again.release_metadata
    assert again.release_metadata["version"] == cold.release_metadata["version"]
    assert again.release_metadata["archive"] == cold.release_metadata["archive"]
    releases = Path(cold.release_metadata["release"]).parent
    assert [marker.parent.name for marker in releases.glob(f"*/{RELEASE_MARKER}")] == [cold.release_metadata["version"]]


def test_the_runs_and_the_release_materializations_are_rows_in_postgres(builds):
    batches = len(builds.cold.batches)
    assert batches > 1 and builds.again.batches == builds.cold.batches
    runs = dict(((job, status), count) for job, status, count in _query(
        builds.server, "SELECT pipeline_name, status, count(*) FROM runs GROUP BY pipeline_name, status"))
    # the rebuild draws no batch again: each was drawn once, by the first build
    assert runs == {("taxonomy_job", "SUCCESS"): 2, ("batch_job", "SUCCESS"): batches, ("release_job", "SUCCESS"): 2}
    materialized_in = [run_id for (run_id,) in _query(
        builds.server, "SELECT run_id FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
        "AND asset_key = %s ORDER BY id", dg.AssetKey("dataset_release").to_string())]
    assert materialized_in == _release_runs(builds.server)
    with zipfile.ZipFile(builds.cold.release_metadata["archive"]) as archive:
        assert json.loads(archive.read("meta.json"))["lineage"]["run_id"] == materialized_in[0]


def test_a_fresh_instance_from_the_same_config_sees_the_same_history(builds):
    stored = {run_id for (run_id,) in _query(builds.server, "SELECT run_id FROM runs")}
    with dg.DagsterInstance.get() as fresh:
        assert {run.run_id for run in fresh.get_runs()} == stored
        assert len(stored) == len(builds.cold.batches) + 2 * 2
        latest = fresh.get_latest_materialization_event(dg.AssetKey("dataset_release"))
        partitions = fresh.get_dynamic_partitions(annotation_batches.name)
    assert latest.run_id == _release_runs(builds.server)[-1]
    metadata = latest.asset_materialization.metadata
    assert metadata["version"].value == builds.cold.release_metadata["version"]
    assert metadata["newly_published"].value is False
    assert sorted(partitions) == sorted(builds.cold.batches)
