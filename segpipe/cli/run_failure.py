"""Why a run failed, read from its event log through the Dagster instance: the error each failed step
raised and the checks that failed with ERROR severity, with their metadata as values. The command
line explains a failed build from this instead of leaving the reader a traceback."""

from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg

from segpipe.defs.metadata import table_rows
from segpipe.defs.root_cause import root_cause


@dataclass(frozen=True)
class StepError:
    step: str | None  # None when the run failed outside any step
    error_type: str  # the class of the error the code raised, e.g. InfeasibleSpec
    message: str  # its message, without the traceback


@dataclass(frozen=True)
class FailedCheck:
    key: dg.AssetCheckKey
    blocking: bool
    metadata: Mapping[str, object]  # plain values; a table as a list of row dicts


@dataclass(frozen=True)
class RunFailure:
    job: str
    run_id: str
    partition: str | None
    steps: tuple[StepError, ...]  # steps whose own code raised (a step stopped by its blocking checks is not one)
    checks: tuple[FailedCheck, ...]


def read_run_failure(instance: dg.DagsterInstance, run_id: str) -> RunFailure:
    run = instance.get_run_by_id(run_id)
    events = [record.dagster_event for record in instance.all_logs(run_id, of_type={
        dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.ASSET_CHECK_EVALUATION, dg.DagsterEventType.RUN_FAILURE})]
    checks, stopped_by_checks = [], set()
    for event in events:
        if event.event_type != dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            continue
        evaluation = event.asset_check_evaluation_data
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            checks.append(FailedCheck(evaluation.asset_check_key, bool(evaluation.blocking),
                                      {name: _plain(value) for name, value in evaluation.metadata.items()}))
            if evaluation.blocking:
                stopped_by_checks.add(event.step_key)
    steps = [StepError(event.step_key, *root_cause(event.step_failure_data.error, event.message))
             for event in events if event.is_step_failure and event.step_key not in stopped_by_checks]
    if not steps and not checks:
        steps = [StepError(None, *root_cause(event.job_failure_data.error, event.message))
                 for event in events if event.is_run_failure]
    return RunFailure(run.job_name, run_id, run.tags.get("dagster/partition"), tuple(steps), tuple(checks))


def _plain(value: dg.MetadataValue) -> object:
    if isinstance(value, dg.TableMetadataValue):
        return table_rows(value)
    return value.value

