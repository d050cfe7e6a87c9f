"""fewer_disk_syncs: Dagster-style SQLite access (an engine without a pool, a connection per
operation) keeps its data, with synchronous=NORMAL and the log left unchecked-pointed meanwhile."""

import contextlib
import sqlite3
import threading
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from segpipe.cli.sqlite_syncs import fewer_disk_syncs

SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def wal_database(tmp_path: Path) -> Path:
    path = tmp_path / "events.db"
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE events (body TEXT)")
    return path


def record(path: Path, body: str) -> str:
    """One event, as Dagster's SQLite storage writes it: a fresh engine and connection; the
    connection's synchronous setting."""
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=NullPool)
    with engine.connect() as connection:
        connection.execute(sa.text("INSERT INTO events VALUES (:body)"), {"body": body})
        connection.commit()
        mode = connection.execute(sa.text("PRAGMA synchronous")).scalar_one()
    engine.dispose()
    return SYNCHRONOUS[mode]


def stored(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return [body for (body,) in connection.execute("SELECT body FROM events")]


def test_within_the_block_commits_do_not_sync_and_closes_do_not_checkpoint_and_every_event_is_kept(tmp_path):
    path = wal_database(tmp_path)
    wal = path.with_name(path.name + "-wal")
    assert record(path, "before") == "FULL" and not wal.exists()  # the last close checkpointed the log away
    with fewer_disk_syncs():
        modes = [record(path, f"event {n}") for n in range(5)]
        assert modes == ["NORMAL"] * 5
        assert wal.exists() and wal.stat().st_size > 0  # closes left the log for a later checkpoint
        assert stored(path) == ["before", *(f"event {n}" for n in range(5))]  # other connections see it all
    assert not wal.exists()  # the kept connection's close checkpointed it into the database
    assert stored(path) == ["before", *(f"event {n}" for n in range(5))]
    assert record(path, "after") == "FULL"  # outside the block, SQLite's defaults again


def test_a_database_not_in_wal_mode_and_one_in_memory_are_left_as_they_are(tmp_path):
    rollback = tmp_path / "rollback.db"
    with contextlib.closing(sqlite3.connect(rollback)) as connection, connection:
        connection.execute("CREATE TABLE events (body TEXT)")
    with fewer_disk_syncs():
        assert record(rollback, "x") == "FULL"
        with sa.create_engine("sqlite://").connect() as connection:
            assert SYNCHRONOUS[connection.execute(sa.text("PRAGMA synchronous")).scalar_one()] == "FULL"
    assert stored(rollback) == ["x"]


def test_nested_blocks_and_threads_share_the_kept_connections_until_the_outer_block_ends(tmp_path):
    path = wal_database(tmp_path)
    wal = path.with_name(path.name + "-wal")
    with fewer_disk_syncs():
        with fewer_disk_syncs():
            threads = [threading.Thread(target=record, args=(path, f"thread {n}")) for n in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert wal.exists() and record(path, "outer") == "NORMAL"
    assert not wal.exists()
    assert sorted(stored(path)) == ["outer", *(f"thread {n}" for n in range(4))]


def test_a_dagster_sqlite_instance_records_a_run_within_the_block(tmp_path):
    @dg.asset
    def number() -> int:
        return 1

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance, fewer_disk_syncs():
        result = dg.materialize([number], instance=instance)
        assert result.success
        assert instance.get_latest_materialization_event(dg.AssetKey("number")) is not None
    with dg.instance_for_test(temp_dir=str(tmp_path)) as reopened:
        assert reopened.get_run_record_by_id(result.run_id).dagster_run.is_success


def _engines_per_database(tmp_path: Path, within: bool) -> dict[str, set[int]]:
    """The engines Dagster's SQLite storages connected through, per database, while a run was recorded."""
    engines: dict[str, set[int]] = {}

    def connected(connection: sa.Connection) -> None:
        engines.setdefault(str(connection.engine.url), set()).add(id(connection.engine))

    @dg.asset
    def number() -> int:
        return 1

    tmp_path.mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        sa.event.listen(sa.Engine, "engine_connect", connected)
        try:
            with fewer_disk_syncs() if within else contextlib.nullcontext():
                assert dg.materialize([number], instance=instance).success
        finally:
            sa.event.remove(sa.Engine, "engine_connect", connected)
    return {url: ids for url, ids in engines.items() if url.startswith("sqlite:///")}


def test_dagster_sqlite_storages_are_handed_one_kept_engine_per_database_within_the_block(tmp_path):
    from dagster._core.storage import sql
    from dagster._core.storage.event_log.sqlite import sqlite_event_log
    from dagster._core.storage.runs.sqlite import sqlite_run_storage

    outside = _engines_per_database(tmp_path / "outside", within=False)
    assert max(len(ids) for ids in outside.values()) > 1  # Dagster's own: an engine per operation
    within = _engines_per_database(tmp_path / "within", within=True)
    assert within and all(len(ids) == 1 for ids in within.values())  # compiled statements cached on it
    assert sqlite_event_log.create_engine is sql.create_engine is sqlite_run_storage.create_engine  # theirs again
