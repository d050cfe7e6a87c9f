"""A local build's Dagster SQLite instance without two disk syncs per recorded event.

Dagster's SQLite storage opens a connection per operation and closes it after. In WAL mode with
SQLite's default synchronous=FULL, each commit syncs the log, and each close of the last open
connection checkpoints the log into the database and syncs again: about 10 ms of waiting on the
disk per event, and a batch run records several hundred. Within `fewer_disk_syncs`, this process
keeps one idle connection open to each WAL database it uses (so closing another is never the last
close, and the log is checkpointed only when it outgrows SQLite's threshold) and sets
synchronous=NORMAL, with which SQLite keeps a WAL database consistent through a crash or a power
loss: what such a loss can undo is the last events recorded, which a build records again (a batch
not recorded as done is built again; a release of the same content is not published twice).

Dagster's SQLite storages also make a SQLAlchemy engine per operation, so each statement is
compiled again (a compiled statement is cached on its engine): meanwhile they are handed one
engine per database and options, kept (its pool is NullPool, as theirs: a connection per use),
about 1 ms less per operation and several hundred operations a run.
"""

import contextlib
import importlib
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine

_keepers: dict[str, sqlite3.Connection] = {}  # database file -> the idle connection kept open to it
_lock = threading.Lock()
_installed = 0  # nested fewer_disk_syncs blocks in this process
_engines: dict[tuple[str, str], Engine] = {}  # (URL, options) -> the engine kept for them
# Dagster's SQLite storages, each of which calls its module's create_engine for every operation
_ENGINE_MAKERS = ("dagster._core.storage.runs.sqlite.sqlite_run_storage",
                  "dagster._core.storage.schedules.sqlite.sqlite_schedule_storage",
                  "dagster._core.storage.event_log.sqlite.sqlite_event_log",
                  "dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log")


def _kept_engine(url: str, **options: Any) -> Engine:
    key = (str(url), repr(sorted(options.items())))
    with _lock:
        if key not in _engines:
            _engines[key] = sqlalchemy.create_engine(url, **options)
        return _engines[key]


def _hand_out_kept_engines(kept: bool) -> None:
    theirs = importlib.import_module("dagster._core.storage.sql").create_engine
    for name in _ENGINE_MAKERS:
        importlib.import_module(name).create_engine = _kept_engine if kept else theirs


def _on_connect(connection: object, _record: object) -> None:
    """For each new connection to a WAL database file: synchronous=NORMAL, and a kept connection."""
    if not isinstance(connection, sqlite3.Connection):
        return
    path = connection.execute("PRAGMA database_list").fetchone()[2]
    if not path or connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        return  # in memory, or not (yet) in WAL mode: as SQLite's defaults have it
    connection.execute("PRAGMA synchronous=NORMAL")
    with _lock:
        if path not in _keepers:
            keeper = sqlite3.connect(path, check_same_thread=False)
            keeper.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # opens the log's shared index
            _keepers[path] = keeper


@contextlib.contextmanager
def fewer_disk_syncs() -> Iterator[None]:
    """Every SQLAlchemy SQLite connection this process opens meanwhile is made as the module says;
    the kept connections close at the end (the last close checkpoints each log)."""
    global _installed
    with _lock:
        _installed += 1
        if _installed == 1:
            event.listen(Engine, "connect", _on_connect)
            _hand_out_kept_engines(True)
    try:
        yield
    finally:
        with _lock:
            _installed -= 1
            if _installed == 0:
                event.remove(Engine, "connect", _on_connect)
                _hand_out_kept_engines(False)
                for engine in _engines.values():
                    engine.dispose()
                _engines.clear()
                for keeper in _keepers.values():
                    keeper.close()
                _keepers.clear()


def keep_for_process() -> None:
    """In a helper process of a build: as `fewer_disk_syncs`, until the process ends."""
    global _installed
    with _lock:
        _installed += 1
        if _installed == 1:
            event.listen(Engine, "connect", _on_connect)
            _hand_out_kept_engines(True)
