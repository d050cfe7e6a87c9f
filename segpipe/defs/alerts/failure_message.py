"""What a team is told about a failed run: one log line and a small JSON payload for a webhook,
each naming the job, the run, the step that failed and its error, so the reader knows where to look."""

from dataclasses import dataclass


@dataclass(frozen=True)
class FailureAlert:
    job: str
    run_id: str
    step: str | None  # None when the run failed outside any step (a crashed worker, a bad config)
    error: str

    @property
    def run_path(self) -> str:
        """The run's page, relative to the Dagster UI's address."""
        return f"/runs/{self.run_id}"

    def message(self) -> str:
        where = f"step {self.step}" if self.step else "outside any step"
        return f"Run {self.run_id} of {self.job} failed in {where}: {self.error} (see {self.run_path})"

    def payload(self) -> dict[str, str | None]:
        return {"job": self.job, "run_id": self.run_id, "step": self.step, "error": self.error,
                "run_path": self.run_path}
