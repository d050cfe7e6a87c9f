"""Stopping a test server started with start_new_session=True: its whole process group, not just the leader."""

import contextlib
import os
import signal
import subprocess


def stop_process_group(process: subprocess.Popen, first_signal: signal.Signals, timeout: float) -> None:
    """Send `first_signal` to the group, wait, then SIGKILL whatever is left: the leader may have exited
    while its children (Dagster's runs and code server, SeaweedFS's volume server) linger."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, first_signal)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
