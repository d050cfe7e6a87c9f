"""A real, throwaway PostgreSQL server for tests: a fresh cluster from the installed server binaries.

The cluster lives in one temporary folder (data, unix socket, log), listens on a free port on
127.0.0.1 only, takes password logins (scram-sha-256) as a production server would, and is
stopped and deleted on exit. The system's own clusters are never touched. PostgreSQL refuses to
run as root, so under root the server runs as the `postgres` system user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from segpipe_tests.s3_server import LOOPBACK, free_ports

SERVER_USER = "postgres"  # the Debian/Ubuntu packages' system user, used only when we are root
START_TIMEOUT_S = 60
PACKAGED_SERVERS = Path("/usr/lib/postgresql")  # Debian/Ubuntu: one <major>/bin per installed server


class PostgresServerError(RuntimeError):
    """The PostgreSQL server binaries could not be found, or the cluster could not be started."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    data_dir: Path

    def environment(self, database: str) -> dict[str, str]:
        """The libpq variables a client (and deploy/dagster.postgres.yaml) reads to reach `database`."""
        return {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user,
                "PGPASSWORD": self.password, "PGDATABASE": database}

    def connect(self, database: str = "postgres") -> psycopg2.extensions.connection:
        return psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                dbname=database)

    def create_database(self, name: str) -> None:
        connection = self.connect()
        try:
            connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()


def server_binaries() -> Path:
    """The directory holding initdb and pg_ctl: the newest /usr/lib/postgresql/<major>/bin, else PATH."""
    packaged = sorted((d for d in PACKAGED_SERVERS.glob("*/bin") if d.parent.name.isdigit()),
                      key=lambda d: int(d.parent.name), reverse=True)
    on_path = [Path(p).parent] if (p := shutil.which("pg_ctl")) else []
    for candidate in [*packaged, *on_path]:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    raise PostgresServerError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or on PATH; "
        "install the server (apt-get install postgresql)")


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str], log_path: Path) -> None:
    completed = subprocess.run(_as_server_user(command), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               env=_server_env())
    with log_path.open("a") as log:
        log.write(f"$ {' '.join(command)}\n{completed.stdout}{completed.stderr}")
    if completed.returncode != 0:
        raise PostgresServerError(
            f"{Path(command[0]).name} exited with code {completed.returncode}:\n{completed.stdout}{completed.stderr}\n"
            f"--- tail of {log_path} ---\n{_log_tail(log_path)}")


def _server_env() -> dict[str, str]:
    """The caller's environment minus libpq's PG* variables, which would point initdb/pg_ctl elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"LC_ALL": "C.UTF-8"}


def _log_tail(log_path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"<no log: {exc}>"


def _stop(bin_dir: Path, cluster: Path, log_path: Path) -> None:
    """`pg_ctl stop -m fast`; if that fails, SIGKILL the postmaster named in postmaster.pid."""
    with contextlib.suppress(PostgresServerError):
        _run([str(bin_dir / "pg_ctl"), "stop", "-D", str(cluster), "-m", "fast", "-w", "-t", str(START_TIMEOUT_S)],
             log_path)
        return
    pid_file = cluster / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, ProcessLookupError):
        os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGKILL)


@contextlib.contextmanager
def run_postgres_server() -> Iterator[PostgresServer]:
    """initdb a new cluster in a temporary folder, start it on 127.0.0.1, yield it, stop and delete it."""
    bin_dir = server_binaries()
    base = Path(tempfile.mkdtemp(prefix="segpipe-postgres-"))
    cluster, sockets, log_path = base / "data", base / "sockets", base / "postgres.log"
    sockets.mkdir()
    password_file = base / "password"
    server = PostgresServer(LOOPBACK, free_ports(1)[0], "segpipe", uuid.uuid4().hex, cluster)
    password_file.write_text(server.password + "\n")
    log_path.touch()
    if os.geteuid() == 0:
        owner = pwd.getpwnam(SERVER_USER)
        for path in (base, sockets, password_file, log_path):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    initialized = False
    try:
        _run([str(bin_dir / "initdb"), "-D", str(cluster), "-U", server.user, f"--pwfile={password_file}",
              "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"], log_path)
        # The data is throwaway: skip the disk flushes that make a durable server slow to commit.
        options = (f"-c listen_addresses={LOOPBACK} -p {server.port} -k {sockets} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        initialized = True
        _run([str(bin_dir / "pg_ctl"), "start", "-D", str(cluster), "-l", str(log_path), "-o", options,
              "-w", "-t", str(START_TIMEOUT_S)], log_path)
        yield server
    finally:
        if initialized:
            _stop(bin_dir, cluster, log_path)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":  # manual check: python -m segpipe_tests.postgres_server
    with run_postgres_server() as s:
        print(s)
