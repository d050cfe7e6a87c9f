"""Pipeline settings (pipeline.yaml): validated on load, so a typo fails before any work."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from segpipe.core.errors import ConfigError

MaskEncoding = Literal["grayscale", "palette"]
LowScorerPolicy = Literal["exclude", "review"]
FusionRule = Literal["plurality", "honeypot_weighted"]
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class QaSettings:
    max_unlabeled_fraction: float
    max_error_failures: int
    vertex_tolerance_px: float = 4.0  # how far outside the image a polygon vertex may lie unflagged
    near_duplicate_bits: int = 4  # perceptual-hash bits two images may differ in and count as near copies
    max_class_imbalance: float = 1000.0  # most over least common trainable class, in pixels
    instance_area_sigma: float = 4.0  # standard deviations of log area from the class mean that flag a shape
    min_fragment_px: int = 0  # a class region with fewer pixels is a fragment; 0 or 1: no fragment rule


@dataclass(frozen=True)
class ConsensusSettings:
    quorum: float
    min_agreement: float
    boundary_tolerance: int = 2  # pixels: how far a boundary may stray from gold's and still match
    min_honeypot_iou: float | None = None  # annotators scoring below on honeypots are excluded or reviewed
    low_scorer: LowScorerPolicy = "exclude"
    fusion: FusionRule = "plurality"  # honeypot_weighted: each vote weighs the annotator's honeypot mean IoU


@dataclass(frozen=True)
class SamplingSettings:
    seed: int
    stratify_by: str
    group_by: str
    splits: dict[str, float]


@dataclass(frozen=True)
class PipelineSettings:
    dataset_name: str
    mask_encoding: MaskEncoding
    instance_masks: bool  # also write Cityscapes-style 16-bit instance-id masks (class_id * 1000 + k)
    qa: QaSettings
    consensus: ConsensusSettings
    sampling: SamplingSettings


def parse_pipeline_settings(text: str, origin: str) -> PipelineSettings:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}") from exc
    top = _section(doc, origin, {"dataset_name", "mask_encoding", "qa", "consensus", "sampling"}, {"instance_masks"})
    name = top["dataset_name"]
    if not isinstance(name, str) or not name or not all(ch.isalnum() or ch in "-_." for ch in name):
        raise ConfigError(f"{origin}: dataset_name must be letters, digits, '-', '_' or '.', got {name!r}")
    encoding = top["mask_encoding"]
    if encoding not in ("grayscale", "palette"):
        raise ConfigError(f"{origin}: mask_encoding must be 'grayscale' or 'palette', got {encoding!r}")
    instance_masks = top.get("instance_masks", False)
    if not isinstance(instance_masks, bool):
        raise ConfigError(f"{origin}: instance_masks must be true or false, got {instance_masks!r}")
    qa = _section(top["qa"], f"{origin}: qa", {"max_unlabeled_fraction", "max_error_failures"},
                  {"vertex_tolerance_px", "near_duplicate_bits", "max_class_imbalance", "instance_area_sigma",
                   "min_fragment_px"})
    consensus = _section(top["consensus"], f"{origin}: consensus", {"quorum", "min_agreement"},
                         {"boundary_tolerance_px", "min_honeypot_iou", "low_scorer", "fusion"})
    low_scorer = consensus.get("low_scorer", ConsensusSettings.low_scorer)
    if low_scorer not in ("exclude", "review"):
        raise ConfigError(f"{origin}: consensus.low_scorer must be 'exclude' or 'review', got {low_scorer!r}")
    fusion = consensus.get("fusion", ConsensusSettings.fusion)
    if fusion not in ("plurality", "honeypot_weighted"):
        raise ConfigError(f"{origin}: consensus.fusion must be 'plurality' or 'honeypot_weighted', got {fusion!r}")
    min_honeypot_iou = consensus.get("min_honeypot_iou")
    sampling = _section(top["sampling"], f"{origin}: sampling", {"seed", "stratify_by", "group_by", "splits"})
    splits = sampling["splits"]
    if not isinstance(splits, dict) or set(splits) != set(SPLITS):
        raise ConfigError(f"{origin}: sampling.splits must give exactly {list(SPLITS)}, got {splits!r}")
    for split, share in splits.items():
        _fraction(share, f"{origin}: sampling.splits.{split}")
    if abs(sum(splits.values()) - 1.0) > 1e-6:
        raise ConfigError(f"{origin}: sampling.splits must add up to 1, they add up to {sum(splits.values())}")
    return PipelineSettings(
        dataset_name=name,
        mask_encoding=encoding,
        instance_masks=instance_masks,
        qa=QaSettings(
            max_unlabeled_fraction=_fraction(qa["max_unlabeled_fraction"], f"{origin}: qa.max_unlabeled_fraction"),
            max_error_failures=_count(qa["max_error_failures"], f"{origin}: qa.max_error_failures"),
            vertex_tolerance_px=_non_negative(qa.get("vertex_tolerance_px", QaSettings.vertex_tolerance_px), f"{origin}: qa.vertex_tolerance_px"),
            near_duplicate_bits=_count(qa.get("near_duplicate_bits", QaSettings.near_duplicate_bits), f"{origin}: qa.near_duplicate_bits"),
            max_class_imbalance=_non_negative(qa.get("max_class_imbalance", QaSettings.max_class_imbalance), f"{origin}: qa.max_class_imbalance"),
            instance_area_sigma=_non_negative(qa.get("instance_area_sigma", QaSettings.instance_area_sigma), f"{origin}: qa.instance_area_sigma"),
            min_fragment_px=_count(qa.get("min_fragment_px", QaSettings.min_fragment_px), f"{origin}: qa.min_fragment_px"),
        ),
        consensus=ConsensusSettings(
            quorum=_fraction(consensus["quorum"], f"{origin}: consensus.quorum"),
            min_agreement=_fraction(consensus["min_agreement"], f"{origin}: consensus.min_agreement"),
            boundary_tolerance=_count(consensus.get("boundary_tolerance_px", ConsensusSettings.boundary_tolerance),
                                      f"{origin}: consensus.boundary_tolerance_px"),
            min_honeypot_iou=None if min_honeypot_iou is None else _fraction(
                min_honeypot_iou, f"{origin}: consensus.min_honeypot_iou"),
            low_scorer=low_scorer,
            fusion=fusion,
        ),
        sampling=SamplingSettings(
            seed=_count(sampling["seed"], f"{origin}: sampling.seed"),
            stratify_by=_name(sampling["stratify_by"], f"{origin}: sampling.stratify_by"),
            group_by=_name(sampling["group_by"], f"{origin}: sampling.group_by"),
            splits={s: float(splits[s]) for s in SPLITS},
        ),
    )


def load_pipeline_settings(path: Path) -> PipelineSettings:
    return parse_pipeline_settings(path.read_text(encoding="utf-8"), str(path))


def _section(doc: Any, where: str, keys: set[str], optional: frozenset[str] | set[str] = frozenset()) -> dict:
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a mapping with keys {sorted(keys)}")
    missing, unknown = keys - set(doc), set(doc) - keys - set(optional)
    problems = ([f"missing keys {sorted(missing)}"] if missing else []) + ([f"unknown keys {sorted(unknown)}"] if unknown else [])
    if problems:
        raise ConfigError(f"{where}: {'; '.join(problems)}")
    return doc


def _fraction(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{where}: must be a number in [0, 1], got {value!r}")
    return float(value)


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: must be a non-negative integer, got {value!r}")
    return value


def _non_negative(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
        raise ConfigError(f"{where}: must be a non-negative number, got {value!r}")
    return float(value)


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: must be a column name, got {value!r}")
    return value
