"""A real Redis broker and real dagster-celery workers for tests, each a process group of its own.

Redis is Debian's redis-server (`make test` installs it when missing), on a free port of 127.0.0.1,
keeping nothing on disk. Each worker is started with the very command docs/deployment.md gives,
`dagster-celery worker start -A dagster_celery.app -y deploy/celery.yaml`, in the environment the
caller gives it (the same SEGPIPE_* and DAGSTER_HOME as the run that sends it steps)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from segpipe_tests.process_group import stop_process_group
from segpipe_tests.s3_server import LOOPBACK, free_ports

ROOT = Path(__file__).resolve().parents[1]
WORKER_CONFIG = ROOT / "deploy" / "celery.yaml"
REDIS_SERVER = Path("/usr/bin/redis-server")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class BrokerError(RuntimeError):
    """redis-server is missing, or it or a worker did not come up."""


@dataclass(frozen=True)
class Broker:
    url: str
    process: subprocess.Popen


@dataclass(frozen=True)
class Worker:
    name: str
    process: subprocess.Popen  # the leader of the worker's process group: every pid the worker runs steps in
    log: Path


def worker_command(name: str) -> list[str]:
    """docs/deployment.md's worker command; one step at a time per worker (a 2-core test machine)."""
    return [str(Path(sys.executable).parent / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
            "-y", str(WORKER_CONFIG), "-n", name, "--", "--concurrency=1"]


def _venv_on_path(env: dict[str, str]) -> dict[str, str]:
    """The worker command starts `celery` from PATH, as in an activated virtualenv."""
    return {**env, "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}"}


def _redis_ping(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1) as connection:
        connection.sendall(b"PING\r\n")
        return connection.recv(16).startswith(b"+PONG")
    return False


@contextlib.contextmanager
def run_redis_broker() -> Iterator[Broker]:
    """redis-server on 127.0.0.1 and a free port, no persistence; stopped (its group killed) on exit."""
    if not REDIS_SERVER.is_file():
        raise BrokerError(f"{REDIS_SERVER} not found; install Debian's redis-server (`make test` does)")
    port = free_ports(1)[0]
    folder = Path(tempfile.mkdtemp(prefix="segpipe-redis-"))
    process = subprocess.Popen(
        [str(REDIS_SERVER), "--bind", LOOPBACK, "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--protected-mode", "yes"],
        stdout=(folder / "redis.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _redis_ping(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise BrokerError(f"redis-server did not answer on {LOOPBACK}:{port}:\n"
                                  + (folder / "redis.log").read_text(errors="replace")[-2000:])
            time.sleep(0.1)
        yield Broker(f"redis://{LOOPBACK}:{port}/0", process)
    finally:
        stop_process_group(process, signal.SIGTERM, STOP_TIMEOUT_S)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def run_celery_workers(names: list[str], env: dict[str, str], logs: Path) -> Iterator[list[Worker]]:
    """One worker process group per name, each ready (it said so in its log) before the next starts:
    each opens the instance on start, and two first opens of one SQLite instance race to create it."""
    workers = []
    try:
        for name in names:
            log = logs / f"{name}.log"
            process = subprocess.Popen(worker_command(name), env=_venv_on_path(env), stdout=log.open("w"),
                                       stderr=subprocess.STDOUT, start_new_session=True)
            workers.append(Worker(name, process, log))
            deadline = time.monotonic() + START_TIMEOUT_S
            while " ready." not in log.read_text(errors="replace"):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise BrokerError(f"celery worker {name} did not start:\n"
                                      + log.read_text(errors="replace")[-3000:])
                time.sleep(0.2)
        yield workers
    finally:
        for worker in workers:
            stop_process_group(worker.process, signal.SIGTERM, STOP_TIMEOUT_S)
