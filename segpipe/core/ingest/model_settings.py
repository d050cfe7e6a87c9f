"""Model prediction settings (pipeline.yaml `models`): which of a model batch's predicted pixels count.

Applied when a model batch is ingested (core/ingest/formats/coco_results.py): a prediction whose
score is below its label's threshold is dropped there, so every later stage sees only the pixels
that count. Labels are the model's own category names, as in its results file."""

from typing import Annotated

from pydantic import ConfigDict, Field, StrictFloat, StrictStr
from pydantic.dataclasses import dataclass

Score = Annotated[StrictFloat, Field(ge=0, le=1)]


@dataclass
class ModelSettings:
    __pydantic_config__ = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    score_threshold: Score = Field(
        0.5,
        description="A model's prediction counts only if its score is at least this (0 keeps every prediction). "
                    "Where predictions overlap, the higher score wins the pixels.")
    label_score_thresholds: dict[StrictStr, Score] = Field(
        default_factory=dict,
        description="Per label (the model's category name, as in its results file), a score threshold that "
                    "replaces score_threshold: raise it for a class the model over-predicts.")

    def threshold(self, label: str) -> float:
        """The score a prediction of `label` needs to count."""
        return self.label_score_thresholds.get(label, self.score_threshold)
