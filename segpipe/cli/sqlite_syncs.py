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
"""

import contextlib
import sqlite3
import threading
from collections.abc import Iterator

from sqlalchemy import event
from sqlalchemy.engine import Engine

_keepers: dict[str, sqlite3.Connection] = {}  # database file -> the idle connection kept open to it
_lock = threading.Lock()
_installed = 0  # nested fewer_disk_syncs blocks in this process


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
    try:
        yield
    finally:
        with _lock:
            _installed -= 1
            if _installed == 0:
                event.remove(Engine, "connect", _on_connect)
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
