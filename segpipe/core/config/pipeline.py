"""Pipeline settings (pipeline.yaml): validated on load, so a typo fails before any work."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from segpipe.core.shared.config_fields import count, fraction, non_negative, section
from segpipe.core.config.cron import cron_problem
from segpipe.core.sampling.spec import DistributionSpec, parse_distribution_spec
from segpipe.core.consensus.settings import ConsensusSettings
from segpipe.core.qa.settings import QaSettings
from segpipe.core.shared.errors import ConfigError

MaskEncoding = Literal["grayscale", "palette"]


@dataclass(frozen=True)
class NightlySettings:
    cron: str = "0 2 * * *"  # when the nightly release build starts, in `timezone`
    timezone: str = "UTC"  # an IANA name (Europe/Berlin): the build follows its daylight saving
    failure_webhook_url: str | None = None  # a failed run is POSTed here as JSON as well as logged


@dataclass(frozen=True)
class PipelineSettings:
    dataset_name: str
    mask_encoding: MaskEncoding
    instance_masks: bool  # also write Cityscapes-style 16-bit instance-id masks (class_id * 1000 + k)
    qa: QaSettings
    consensus: ConsensusSettings
    sampling: DistributionSpec
    nightly: NightlySettings = NightlySettings()


def parse_pipeline_settings(text: str, origin: str) -> PipelineSettings:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}") from exc
    top = section(doc, origin, {"dataset_name", "mask_encoding", "qa", "consensus", "sampling"},
                  {"instance_masks", "nightly"})
    name = top["dataset_name"]
    if not isinstance(name, str) or not name or not all(ch.isalnum() or ch in "-_." for ch in name):
        raise ConfigError(f"{origin}: dataset_name must be letters, digits, '-', '_' or '.', got {name!r}")
    encoding = top["mask_encoding"]
    if encoding not in ("grayscale", "palette"):
        raise ConfigError(f"{origin}: mask_encoding must be 'grayscale' or 'palette', got {encoding!r}")
    instance_masks = top.get("instance_masks", False)
    if not isinstance(instance_masks, bool):
        raise ConfigError(f"{origin}: instance_masks must be true or false, got {instance_masks!r}")
    qa = section(top["qa"], f"{origin}: qa", {"max_unlabeled_fraction", "max_error_failures"},
                  {"vertex_tolerance_px", "near_duplicate_bits", "max_class_imbalance", "instance_area_sigma",
                   "min_fragment_px"})
    consensus = section(top["consensus"], f"{origin}: consensus", {"quorum", "min_agreement"},
                         {"boundary_tolerance_px", "min_honeypot_iou", "low_scorer", "fusion"})
    low_scorer = consensus.get("low_scorer", ConsensusSettings.low_scorer)
    if low_scorer not in ("exclude", "review"):
        raise ConfigError(f"{origin}: consensus.low_scorer must be 'exclude' or 'review', got {low_scorer!r}")
    fusion = consensus.get("fusion", ConsensusSettings.fusion)
    if fusion not in ("plurality", "honeypot_weighted"):
        raise ConfigError(f"{origin}: consensus.fusion must be 'plurality' or 'honeypot_weighted', got {fusion!r}")
    min_honeypot_iou = consensus.get("min_honeypot_iou")
    return PipelineSettings(
        dataset_name=name,
        mask_encoding=encoding,
        instance_masks=instance_masks,
        qa=QaSettings(
            max_unlabeled_fraction=fraction(qa["max_unlabeled_fraction"], f"{origin}: qa.max_unlabeled_fraction"),
            max_error_failures=count(qa["max_error_failures"], f"{origin}: qa.max_error_failures"),
            vertex_tolerance_px=non_negative(qa.get("vertex_tolerance_px", QaSettings.vertex_tolerance_px), f"{origin}: qa.vertex_tolerance_px"),
            near_duplicate_bits=count(qa.get("near_duplicate_bits", QaSettings.near_duplicate_bits), f"{origin}: qa.near_duplicate_bits"),
            max_class_imbalance=non_negative(qa.get("max_class_imbalance", QaSettings.max_class_imbalance), f"{origin}: qa.max_class_imbalance"),
            instance_area_sigma=non_negative(qa.get("instance_area_sigma", QaSettings.instance_area_sigma), f"{origin}: qa.instance_area_sigma"),
            min_fragment_px=count(qa.get("min_fragment_px", QaSettings.min_fragment_px), f"{origin}: qa.min_fragment_px"),
        ),
        consensus=ConsensusSettings(
            quorum=fraction(consensus["quorum"], f"{origin}: consensus.quorum"),
            min_agreement=fraction(consensus["min_agreement"], f"{origin}: consensus.min_agreement"),
            boundary_tolerance=count(consensus.get("boundary_tolerance_px", ConsensusSettings.boundary_tolerance),
                                      f"{origin}: consensus.boundary_tolerance_px"),
            min_honeypot_iou=None if min_honeypot_iou is None else fraction(
                min_honeypot_iou, f"{origin}: consensus.min_honeypot_iou"),
            low_scorer=low_scorer,
            fusion=fusion,
        ),
        sampling=parse_distribution_spec(top["sampling"], origin),
        nightly=parse_nightly_settings(
            {} if top.get("nightly") is None else top["nightly"], f"{origin}: nightly"),  # None: every key commented out
    )


def parse_nightly_settings(doc: Any, where: str) -> NightlySettings:
    nightly = section(doc, where, set(), {"cron", "timezone", "failure_webhook_url"})
    cron = nightly.get("cron", NightlySettings.cron)
    problem = cron_problem(cron) if isinstance(cron, str) else "must be a string"
    if problem:
        raise ConfigError(f"{where}.cron: {problem}, got {cron!r}")
    timezone = nightly.get("timezone", NightlySettings.timezone)
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, TypeError, ValueError):
        raise ConfigError(f"{where}.timezone: must be an IANA time zone name such as 'Europe/Berlin', got {timezone!r}") from None
    webhook = nightly.get("failure_webhook_url", NightlySettings.failure_webhook_url)
    if webhook is not None and (not isinstance(webhook, str) or urlparse(webhook).scheme not in ("http", "https")
                                or not urlparse(webhook).netloc):
        raise ConfigError(f"{where}.failure_webhook_url: must be an http(s) URL, got {webhook!r}")
    return NightlySettings(cron=cron, timezone=timezone, failure_webhook_url=webhook)


def load_pipeline_settings(path: Path) -> PipelineSettings:
    return parse_pipeline_settings(path.read_text(encoding="utf-8"), str(path))
