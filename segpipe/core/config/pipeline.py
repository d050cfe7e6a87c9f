"""Pipeline settings (pipeline.yaml): validated on load, so a typo fails before any work.

Each stage declares its own section (QaSettings, ConsensusSettings, DistributionSpec); this module
composes them with the release-wide keys and the nightly schedule. Every key has a default, so an
empty file is a valid configuration; docs/configuration.md is rendered from these models.

Settings are pydantic dataclasses: validated wherever they are built, from a file or in code, and
still plain frozen dataclasses to the stages (positional, dataclasses.replace)."""

from pathlib import Path
from typing import Literal
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ConfigDict, Field, StrictBool, StrictStr, field_validator
from pydantic.dataclasses import dataclass

from segpipe.core.config.cron import cron_problem
from segpipe.core.config.yaml_source import load_model, parse_model
from segpipe.core.consensus.settings import ConsensusSettings
from segpipe.core.ingest.model_settings import ModelSettings
from segpipe.core.qa.settings import QaSettings
from segpipe.core.release.settings import ReleaseSettings
from segpipe.core.sampling.spec import DistributionSpec

MaskEncoding = Literal["grayscale", "palette"]


@dataclass
class NightlySettings:
    __pydantic_config__ = ConfigDict(extra="forbid", frozen=True)

    cron: StrictStr = Field(
        "0 2 * * *",
        description="When the nightly release build starts, in `timezone`: five-field cron (minute hour "
                    "day-of-month month day-of-week) of numbers, `*`, ranges, steps, lists and month or weekday "
                    "names. Move it to an hour after the day's batches have landed.")
    timezone: StrictStr = Field(
        "UTC",
        description="The IANA time zone name (UTC, Europe/Berlin) `cron` is read in; the build follows its daylight "
                    "saving. Set your team's zone to keep the build at the same local hour all year.")
    failure_webhook_url: StrictStr | None = Field(
        None,
        description="Every failed segpipe run is logged; with this set it is also POSTed here as JSON (job, run_id, "
                    "step, error, run_path), e.g. to a chat webhook relay, so someone hears of it, and so is each "
                    "batch of which nothing can be released (alert: bad_input). A secret: logs show only its scheme "
                    "and host.",
        json_schema_extra={"secret": True})
    gc_cron: StrictStr | None = Field(
        "0 4 * * 0",
        description="When the Dagster daemon runs `segpipe gc` (the `store_gc` schedule of `store_gc_job`) by "
                    "`release`'s retention rule, in `timezone`: five-field cron, as `cron`. Null: no schedule; "
                    "launch the job in the UI or run `segpipe gc` yourself.")

    @field_validator("cron", "gc_cron")
    @classmethod
    def _five_field_cron(cls, cron: str | None) -> str | None:
        problem = None if cron is None else cron_problem(cron)
        if problem:
            raise ValueError(problem)
        return cron

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, timezone: str) -> str:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone name such as 'Europe/Berlin'") from None
        return timezone

    @field_validator("failure_webhook_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and (urlparse(url).scheme not in ("http", "https") or not urlparse(url).netloc):
            raise ValueError("must be an http(s) URL")
        return url


@dataclass
class PipelineSettings:
    __pydantic_config__ = ConfigDict(extra="forbid", frozen=True)

    dataset_name: StrictStr = Field(
        "dataset",
        description="Names the releases: their folder in the store and their archive files. Letters, digits, '-', "
                    "'_' and '.' (not dots alone). Give each dataset published to one store its own name.")
    mask_encoding: MaskEncoding = Field(
        "grayscale",
        description="How masks are written. grayscale: 8-bit single-channel PNG of class ids (OpenCV and PIL read "
                    "ids). palette: the same ids with the taxonomy colours as a PNG palette (PIL reads ids, OpenCV "
                    "expands them to colours), for masks a person can look at.")
    instance_masks: StrictBool = Field(
        False,
        description="Also release Cityscapes-style instance-id masks (instances/<split>/<stem>.png, 16-bit PNG: "
                    "class_id * 1000 + k for each object of a class with has_instances, the bare class id for "
                    "crowds and other classes), for training instance or panoptic models.")
    qa: QaSettings = Field(
        default_factory=QaSettings,
        description="The thresholds the QA rules judge entries by.")
    models: ModelSettings = Field(
        default_factory=ModelSettings,
        description="Which predictions of a model batch (batch.json `\"kind\": \"model\"`) count, read when the "
                    "batch is ingested: rerun ingest for a batch after changing them.")
    consensus: ConsensusSettings = Field(
        default_factory=ConsensusSettings,
        description="How annotators' masks are fused into one, and how annotators are scored on honeypots.")
    sampling: DistributionSpec = Field(
        default_factory=DistributionSpec,
        description="The distribution spec: which accepted images a release holds and how they split.")
    release: ReleaseSettings = Field(
        default_factory=ReleaseSettings,
        description="How a release is cut into parts in the store, and which versions `segpipe gc` keeps.")
    nightly: NightlySettings = Field(
        default_factory=NightlySettings,
        description="The nightly build: the nightly_release schedule runs release_job (QA, consensus, sampling and "
                    "a release from every ingested batch). Read when Dagster loads the definitions: after an "
                    "edit, reload the code location.")

    @field_validator("dataset_name")
    @classmethod
    def _path_safe(cls, name: str) -> str:
        if not name or not all(ch.isalnum() or ch in "-_." for ch in name) or set(name) == {"."}:
            raise ValueError("must be letters, digits, '-', '_' or '.' (not dots alone)")
        return name

    @field_validator("qa", "models", "consensus", "sampling", "release", "nightly", mode="before")
    @classmethod
    def _defaults_when_unset(cls, section: object) -> object:
        """A section whose keys are all commented out reads as null: its defaults."""
        return {} if section is None else section


def parse_pipeline_settings(text: str, origin: str) -> PipelineSettings:
    return parse_model(PipelineSettings, text, origin)


def load_pipeline_settings(path: Path) -> PipelineSettings:
    return load_model(PipelineSettings, path)
