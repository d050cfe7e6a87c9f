"""What a team is told about a batch of which nothing can be released: its run succeeded (ingest never
fails for bad input, or the batch's partition would hold up every later release), so the alert says
which batch, why, the first file and rule, and what whoever delivered it should do."""

from collections.abc import Callable
from dataclasses import asdict, dataclass

import dagster as dg

from segpipe.defs.ingest.bad_input import BATCH_USABLE


@dataclass(frozen=True)
class UnusableBatchReport:
    batch: str
    problem: str
    rule: str
    file: str
    message: str
    what_to_do: str


@dataclass(frozen=True)
class BadInputAlert:
    job: str
    run_id: str
    batches: tuple[UnusableBatchReport, ...]

    @property
    def run_path(self) -> str:
        """The run's page, relative to the Dagster UI's address."""
        return f"/runs/{self.run_id}"

    def messages(self) -> list[str]:
        """One line per batch."""
        return [
            f"Batch {b.batch} (run {self.run_id} of {self.job}) has nothing to release: {b.problem}; "
            f"{b.rule + ': ' if b.rule else ''}{b.message}"
            f"{f' (file {b.file})' if b.file else ''}. What to do: {b.what_to_do} (see {self.run_path})"
            for b in self.batches
        ]

    def payload(self) -> dict[str, object]:
        return {"alert": "bad_input", "job": self.job, "run_id": self.run_id, "run_path": self.run_path,
                "batches": [asdict(b) for b in self.batches]}


def bad_input_alert(instance: dg.DagsterInstance, run: dg.DagsterRun,
                    redact: Callable[[str], str]) -> BadInputAlert | None:
    """The batches whose batch_usable check failed in `run`, read from its event log, each text passed
    through `redact` (it is logged and posted); None when no batch failed it."""
    reports = []
    for record in instance.all_logs(run.run_id, of_type={dg.DagsterEventType.ASSET_CHECK_EVALUATION}):
        evaluation = record.dagster_event.asset_check_evaluation_data
        if evaluation.asset_check_key != BATCH_USABLE or evaluation.passed:
            continue
        meta = {name: value.value for name, value in evaluation.metadata.items()}
        batch = evaluation.partition or str(meta.get("batch", ""))
        reports.append(UnusableBatchReport(batch, *(redact(str(meta.get(key, ""))) for key in (
            "problem", "rule", "file", "message", "what_to_do"))))
    return BadInputAlert(run.job_name, run.run_id, tuple(reports)) if reports else None
