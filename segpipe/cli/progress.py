"""Progress of the Dagster runs a command launches in-process, from each run's event stream.

On a terminal, rich draws one bar per run (its steps done, the step running, the time) and clears
it when the run ends, so only the summary stays; elsewhere (a log file, CI) each finished step is one
plain line. Both go to stderr, so stdout keeps only the command's own output. rich rather than our
own drawing: Dagster already depends on it, and it handles terminals, widths and redraws.
"""

import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import dagster as dg
from dagster._core.execution.stats import StepEventStatus  # the status of a step record
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

_DONE = {dg.DagsterEventType.STEP_SUCCESS: "done", dg.DagsterEventType.STEP_FAILURE: "FAILED",
         dg.DagsterEventType.STEP_SKIPPED: "skipped"}
_STATUS = {StepEventStatus.SUCCESS: "done", StepEventStatus.FAILURE: "FAILED", StepEventStatus.SKIPPED: "skipped"}


class RunProgress:
    """Reports nothing: what a caller without a terminal of its own (a test, a library user) gets."""

    @contextmanager
    def run(self, instance: dg.DagsterInstance, label: str) -> Iterator[str]:
        """A new run id to launch the run under; its steps are reported while the context is open."""
        yield str(uuid.uuid4())

    def finished(self, instance: dg.DagsterInstance, label: str, run_id: str) -> None:
        """A run launched elsewhere (a worker process) has ended."""


class StepProgress(RunProgress):
    """Each step of each run, as a bar on a terminal or as a line per finished step elsewhere."""

    def __init__(self, stream: TextIO | None = None, bars: bool | None = None):
        # None: whatever sys.stderr is when a line is written, not when this default was made at import
        # (a test's capture, or a caller's redirect, replaces sys.stderr later)
        stream = _own_descriptor(stream)
        self._console = Console(file=stream, stderr=True, highlight=False, soft_wrap=True)
        self._bars = bars
        self._stream = stream
        self._writing = threading.Lock()  # runs in helper processes are reported from threads

    @contextmanager
    def run(self, instance: dg.DagsterInstance, label: str) -> Iterator[str]:
        run_id = str(uuid.uuid4())
        steps = _StepCount(instance, run_id)
        if not (self._console.is_terminal if self._bars is None else self._bars):
            instance.add_event_listener(run_id, lambda entry: self._line(entry, label, steps))
            yield run_id
            return
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=self._console, transient=True) as bar:
            task = bar.add_task(label, total=None)

            def update(entry) -> None:
                event = entry.dagster_event
                if event is None:
                    return
                if event.event_type == dg.DagsterEventType.STEP_START:
                    steps.start(event.step_key)
                    bar.update(task, total=steps.total(), description=f"{label}: {event.step_key}")
                elif event.event_type in _DONE:
                    bar.update(task, total=steps.total(), completed=steps.finish(event.step_key))

            instance.add_event_listener(run_id, update)
            yield run_id

    def finished(self, instance: dg.DagsterInstance, label: str, run_id: str) -> None:
        """A line per step of a run another process ran, as _line writes them, from the run's step records."""
        total = _StepCount(instance, run_id).total()
        records = sorted(instance.get_run_step_stats(run_id), key=lambda r: (r.end_time or 0.0, r.step_key))
        for done, record in enumerate(records, 1):
            seconds = (record.end_time or 0.0) - (record.start_time or record.end_time or 0.0)
            self._write(f"{label}: {record.step_key} {_STATUS.get(record.status, 'FAILED')} ({done}/{total} steps, "
                        f"{seconds:.1f} s)")

    def _write(self, line: str) -> None:
        """One whole line: on a terminal through the console, which keeps it above the bars."""
        with self._writing:
            if self._console.is_terminal if self._bars is None else self._bars:
                self._console.print(line, markup=False, highlight=False)
                return
            stream = self._stream or sys.stderr
            stream.write(f"{line}\n")
            stream.flush()

    def _line(self, entry, label: str, steps: "_StepCount") -> None:
        event = entry.dagster_event
        if event is None:
            return
        if event.event_type == dg.DagsterEventType.STEP_START:
            steps.start(event.step_key)
        elif event.event_type in _DONE:
            done = steps.finish(event.step_key)
            self._write(f"{label}: {event.step_key} {_DONE[event.event_type]} ({done}/{steps.total()} steps, "
                        f"{steps.seconds(event.step_key):.1f} s)")


def _own_descriptor(stream: TextIO | None) -> TextIO | None:
    """The stream on a descriptor of its own: while a step runs, Dagster points the process's
    stdout and stderr descriptors at the step's log file (compute logs), so a line another thread
    writes meanwhile (a helper process's run reported) would land there. A stream without a
    descriptor (a test's capture) is written as it is."""
    try:
        descriptor = stream.fileno() if stream is not None else None
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return stream
    if descriptor is None:
        return None
    stream.flush()
    return open(os.dup(descriptor), "w", buffering=1, encoding=getattr(stream, "encoding", None) or "utf-8",
                errors="replace")


class _StepCount:
    """The steps of one run: how many its execution plan has, which have finished, how long each took."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str):
        self._instance, self._run_id = instance, run_id
        self._total: int | None = None
        self._started: dict[str, float] = {}
        self._finished: dict[str, float] = {}

    def total(self) -> int | None:
        if self._total is None:
            run = self._instance.get_run_by_id(self._run_id)
            if run is not None and run.execution_plan_snapshot_id:
                self._total = len(self._instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id).steps)
        return self._total

    def start(self, step: str) -> None:
        self._started[step] = time.monotonic()

    def finish(self, step: str) -> int:
        self._finished[step] = time.monotonic()
        return len(self._finished)

    def seconds(self, step: str) -> float:
        return self._finished[step] - self._started.get(step, self._finished[step])
