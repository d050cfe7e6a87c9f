"""A real `dagster dev -w workspace.yaml` for tests, on a free loopback port, with a throwaway DAGSTER_HOME.

The server (webserver, daemon and code server) runs in its own session so the whole process group
can be stopped: SIGINT first (dagster dev's clean shutdown), SIGKILL for whatever is left, since
SIGTERM is not reliably delivered in every sandbox.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from segpipe_tests.process_group import stop_process_group
from segpipe_tests.s3_server import LOOPBACK, free_ports

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 180.0  # a cold code server imports dagster, polars and segpipe; slow on a busy 2-core box
STOP_TIMEOUT_S = 20.0


class DagsterDevError(RuntimeError):
    """`dagster dev` could not be started or reached."""


@dataclass(frozen=True)
class DagsterDevServer:
    url: str
    dagster_home: Path
    log_path: Path
    pid: int

    def graphql(self, query: str, variables: Mapping | None = None, timeout: float = 30.0) -> dict:
        """POST one GraphQL request and return its `data`; errors are raised, not returned."""
        body = orjson.dumps({"query": query, "variables": dict(variables or {})})
        request = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"})
        with _no_proxy().open(request, timeout=timeout) as response:
            answer = orjson.loads(response.read())
        if answer.get("errors"):
            raise DagsterDevError(f"GraphQL errors: {answer['errors']}")
        return answer["data"]

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"<no log: {exc}>"


def dagster_executable() -> Path:
    """The `dagster` CLI of the interpreter running the tests (not whatever PATH finds first)."""
    path = Path(sys.executable).parent / "dagster"
    if not path.is_file():
        raise DagsterDevError(f"{path} not found; install the project (pip install -e '.[dev]')")
    return path


def _no_proxy() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _server_env(dagster_home: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment, this checkout first on the import path, and the test's own settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEGPIPE_", "DAGSTER_"))}
    env["DAGSTER_HOME"] = str(dagster_home)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env["NO_PROXY"] = env["no_proxy"] = "*"
    env.update(extra)
    return env


def _wait_until_ready(server: DagsterDevServer, process: subprocess.Popen, timeout: float) -> None:
    """Ready once the webserver answers /server_info and the segpipe code location has loaded."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | str | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DagsterDevError(
                f"dagster dev exited with code {process.returncode}.\n--- log ---\n{server.log_tail()}")
        try:
            with _no_proxy().open(f"{server.url}/server_info", timeout=5):
                pass
            entries = server.graphql(LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
            loaded = {e["name"]: e["locationOrLoadError"]["__typename"] for e in entries if e["locationOrLoadError"]}
            if loaded.get("segpipe") == "RepositoryLocation":
                return
            if loaded.get("segpipe") == "PythonError":
                raise DagsterDevError(f"the segpipe code location failed to load.\n--- log ---\n{server.log_tail()}")
            last_error = f"locations: {loaded}"
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last_error = exc
        time.sleep(1.0)
    raise DagsterDevError(
        f"dagster dev at {server.url} not ready after {timeout:.0f}s (last: {last_error!r}).\n"
        f"--- log ---\n{server.log_tail()}")


LOCATION_STATUS = """
query { workspaceOrError { ... on Workspace { locationEntries {
  name locationOrLoadError { __typename } } } } }
"""


@contextlib.contextmanager
def run_dagster_dev(env: Mapping[str, str], timeout: float = START_TIMEOUT_S) -> Iterator[DagsterDevServer]:
    """Start `dagster dev -w workspace.yaml` from the repo root with `env` added, yield it, stop it on exit."""
    dagster_home = Path(tempfile.mkdtemp(prefix="segpipe-dagster-home-"))
    shutil.copy(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    [port] = free_ports(1)
    log_path = dagster_home / "dagster-dev.log"
    command = [str(dagster_executable()), "dev", "-w", "workspace.yaml", "-h", LOOPBACK, "-p", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=_server_env(dagster_home, env), stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    server = DagsterDevServer(f"http://{LOOPBACK}:{port}", dagster_home, log_path, process.pid)
    started = False
    try:
        _wait_until_ready(server, process, timeout)
        started = True
        yield server
    finally:
        stop_process_group(process, signal.SIGINT, STOP_TIMEOUT_S)
        if started:  # after a failed start, keep the log the error points at
            shutil.rmtree(dagster_home, ignore_errors=True)
