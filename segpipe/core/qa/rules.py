"""QA rules over rasterized masks: each a pure function with an id, a severity and a description.

Rules judge a mask by its pixel count per value (class_pixels, counted when the mask was made),
so QA costs nothing per pixel; the rules about a mask's structure (fragments, class constraints)
read findings that mask_structure remembers per mask, so a rerun decodes only new masks.

ERROR rules gate the release (their Dagster checks are blocking); WARN rules report.
A rule that `excludes_entry` also keeps the failing entry out of consensus and the release,
so the entry is filtered with the rule's reason instead of shipping a useless mask.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl

from segpipe.core.qa.deliveries import Superseded, superseded_entries
from segpipe.core.qa.instance_areas import INSTANCE_AREA_OUTLIER
from segpipe.core.qa.mask_structure import MaskStructure
from segpipe.core.qa.near_duplicates import near_duplicate_entries
from segpipe.core.qa.polygon_checks import OUTSIDE_IMAGE, SELF_INTERSECTION, TOO_FEW_POINTS, ZERO_AREA
from segpipe.core.shared.schemas import QaResultRecord, polars_schema
from segpipe.core.qa.settings import QaSettings
from segpipe.core.taxonomy.model import Taxonomy

Severity = Literal["ERROR", "WARN"]
SHOWN_FINDINGS = 3  # per rule and entry in the reason; the count says how many more
NO_PIXELS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class EntryEvidence:
    """What the rules look at for one entry: its mask's pixels per value and its image record."""

    class_pixels: np.ndarray
    width: int
    height: int
    unmapped_labels: tuple[str, ...]
    superseded: Superseded | None  # a later delivery or an earlier copy in its batch counts instead
    polygon_findings: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # check id -> reasons
    near_duplicate_of: str | None = None
    structure: MaskStructure = MaskStructure()  # its fragments and the class constraints it breaks


RuleCheck = Callable[[EntryEvidence, Taxonomy, QaSettings], str | None]


@dataclass(frozen=True)
class QaRule:
    """`check` returns the reason an entry fails, or None when it passes; `action` says what to change
    so the entry passes, for the check's description and the build summary of a blocked release."""

    id: str
    severity: Severity
    description: str
    excludes_entry: bool
    check: RuleCheck
    action: str


def _size_matches(e: EntryEvidence, taxonomy: Taxonomy, settings: QaSettings) -> str | None:
    pixels = int(e.class_pixels.sum())
    expected = e.width * e.height
    return None if pixels == expected else f"mask has {pixels} pixels, image is {e.width}x{e.height} ({expected})"


def _ids_in_taxonomy(e: EntryEvidence, taxonomy: Taxonomy, settings: QaSettings) -> str | None:
    stray = sorted(set(np.flatnonzero(e.class_pixels).tolist()) - taxonomy.class_ids - {taxonomy.ignore_index})
    return None if not stray else f"mask contains ids {stray} that are not taxonomy classes"


def _not_empty(e: EntryEvidence, taxonomy: Taxonomy, settings: QaSettings) -> str | None:
    labelled = int(e.class_pixels.sum()) - int(e.class_pixels[taxonomy.ignore_index])
    return None if labelled > 0 else "no pixel is labelled"


def _unlabeled_fraction(e: EntryEvidence, taxonomy: Taxonomy, settings: QaSettings) -> str | None:
    fraction = float(e.class_pixels[taxonomy.ignore_index] / max(1, int(e.class_pixels.sum())))
    limit = settings.max_unlabeled_fraction
    return None if fraction <= limit else f"{fraction:.1%} of pixels are unlabelled (limit {limit:.1%})"


def _labels_mapped(e: EntryEvidence, taxonomy: Taxonomy, settings: QaSettings) -> str | None:
    return None if not e.unmapped_labels else f"unmapped labels {list(e.unmapped_labels)}"


def _not_superseded(e: EntryEvidence, taxonomy: Taxonomy, settings: QaSettings) -> str | None:
    return None if e.superseded is None else e.superseded.reason()


def _not_near_duplicate(e: EntryEvidence, taxonomy: Taxonomy, settings: QaSettings) -> str | None:
    return e.near_duplicate_of


def _meets_class_constraints(e: EntryEvidence, taxonomy: Taxonomy, settings: QaSettings) -> str | None:
    return "; ".join(e.structure.constraint_violations) if e.structure.constraint_violations else None


def _no_tiny_fragments(e: EntryEvidence, taxonomy: Taxonomy, settings: QaSettings) -> str | None:
    found = e.structure.fragments
    if not found:
        return None
    names = {c.id: c.name for c in taxonomy.classes}
    per_class = np.bincount([f.class_id for f in found], minlength=256)
    classes = ", ".join(f"{names.get(i, i)} ({n})" for i, n in enumerate(per_class.tolist()) if n)
    shown = [f"{names.get(f.class_id, f.class_id)} {f.pixels} px at x {f.bbox[0]}-{f.bbox[2]}, y {f.bbox[1]}-{f.bbox[3]}"
             for f in found[:SHOWN_FINDINGS]]
    more = f"; and {len(found) - SHOWN_FINDINGS} more" if len(found) > SHOWN_FINDINGS else ""
    count = f"{len(found)} fragment{'s' if len(found) > 1 else ''}"
    return (f"{count} under {settings.min_fragment_px} px of {classes}, the smallest {found[0].pixels} px: "
            + "; ".join(shown) + more)


def _polygon_rule(check_id: str) -> RuleCheck:
    def check(e: EntryEvidence, taxonomy: Taxonomy, settings: QaSettings) -> str | None:
        reasons = e.polygon_findings.get(check_id, ())
        if not reasons:
            return None
        more = f"; and {len(reasons) - SHOWN_FINDINGS} more" if len(reasons) > SHOWN_FINDINGS else ""
        return "; ".join(reasons[:SHOWN_FINDINGS]) + more
    return check


QA_RULES: tuple[QaRule, ...] = (
    QaRule("mask_matches_image_size", "ERROR", "The mask has the same width and height as its image.", True, _size_matches,
           "Re-export the annotation from the tool it was drawn in, for this very image, and land the batch again."),
    QaRule("mask_ids_in_taxonomy", "ERROR", "Every mask pixel is a taxonomy class id or the ignore index.", True,
           _ids_in_taxonomy, "Add the stray ids to the taxonomy's classes, or map the labels that produce them to a "
                             "class, void or skip, then run `segpipe backfill`."),
    QaRule("mask_not_empty", "WARN", "The mask labels at least one pixel.", True, _not_empty,
           "Annotate the image, or map its labels to classes rather than void or skip."),
    QaRule("unlabeled_fraction", "WARN", "At most the configured share of mask pixels is unlabelled.", False,
           _unlabeled_fraction, "Annotate the rest of the image, or raise qa.max_unlabeled_fraction for data "
                                "labelled sparsely on purpose."),
    QaRule("labels_mapped", "ERROR", (
        "Every raw label of the entry maps to a taxonomy class "
        "(a warning when the taxonomy paints unmapped labels as void or ignores them)."), False, _labels_mapped,
           "Map each label under the batch's source in the taxonomy (to a class, void or skip), then run "
           "`segpipe backfill`; `segpipe check-source --taxonomy` lists the rules to add."),
    QaRule("entry_not_superseded", "WARN", (
        "No other entry of the same image content and annotator counts instead: a delivery in a batch that landed "
        "later (a correction replaces the earlier one), or a copy earlier in the same batch."), True,
           _not_superseded, "Nothing, for a correction: the later delivery ships and the ledger names what it "
                            "replaced. For a copy, deliver each image once per annotator and batch."),
    QaRule("image_not_near_duplicate", "WARN", (
        "No other image is a near copy of this one (perceptual hash within qa.near_duplicate_bits): a copy in "
        "another split would leak."), False, _not_near_duplicate,
           "Check the two images are distinct shots; drop one if they are copies (sampling keeps near copies in "
           "one split)."),
    QaRule("class_constraints", "WARN", "The mask keeps the taxonomy's class-combination rules (constraints).",
           False, _meets_class_constraints,
           "Look at the thumbnail: fix the annotation, or loosen the taxonomy's constraint if it is too strict."),
    QaRule("tiny_fragments", "WARN", (
        "No class region is smaller than qa.min_fragment_px pixels (the sliver of an occluded polygon, a polygon "
        "too small to matter)."), False, _no_tiny_fragments,
           "Redraw or delete the slivers in the annotation tool, or lower qa.min_fragment_px."),
    QaRule(SELF_INTERSECTION, "WARN", "No polygon outline crosses itself.", False, _polygon_rule(SELF_INTERSECTION),
           "Redraw the outline the reason names so that it does not cross itself."),
    QaRule(TOO_FEW_POINTS, "WARN", "Every polygon ring has at least 3 distinct points.", False,
           _polygon_rule(TOO_FEW_POINTS), "Delete the shape the reason names, or redraw it with 3 points or more."),
    QaRule(ZERO_AREA, "WARN", "Every polygon ring encloses an area.", False, _polygon_rule(ZERO_AREA),
           "Delete the shape the reason names, or redraw it around an area."),
    QaRule(OUTSIDE_IMAGE, "WARN", "No polygon vertex lies further outside the image than qa.vertex_tolerance_px.",
           False, _polygon_rule(OUTSIDE_IMAGE),
           "Drag the vertices the reason names back into the frame, or raise qa.vertex_tolerance_px."),
    QaRule(INSTANCE_AREA_OUTLIER, "WARN", (
        "No object is far larger or smaller than its class usually is (log area within qa.instance_area_sigma "
        "standard deviations of the class mean)."), False, _polygon_rule(INSTANCE_AREA_OUTLIER),
           "Look at the thumbnail: relabel or redraw the object (a stray drag, a truck labelled car), or widen "
           "qa.instance_area_sigma."),
)


def rule_severity(rule: QaRule, taxonomy: Taxonomy) -> Severity:
    """Unmapped labels block only when the taxonomy says they are an error."""
    if rule.id == "labels_mapped":
        return unmapped_labels_severity(taxonomy)
    return rule.severity


def unmapped_labels_severity(taxonomy: Taxonomy) -> Severity:
    """ERROR under `unmapped: error`; a warning when the taxonomy voids or ignores unmapped labels."""
    return "ERROR" if taxonomy.unmapped == "error" else "WARN"


def evaluate_entries(
    entries: pl.DataFrame,
    unmapped: pl.DataFrame,
    taxonomy: Taxonomy,
    settings: QaSettings,
    polygons: pl.DataFrame | None = None,
    structure: Mapping[str, MaskStructure] | None = None,
    superseded: Mapping[str, Superseded] | None = None,
    near_duplicates: Mapping[str, str] | None = None,
    rules: tuple[QaRule, ...] | None = None,
) -> pl.DataFrame:
    """Run every rule on every entry (rows of masks, with class_pixels, joined with images' batch_id,
    file_name, landed_at and perceptual_hash); one result row per pair. `polygons` are shape findings
    (polygon_checks.polygon_findings and instance_areas.instance_area_findings), `structure` those
    of mask_structure.mask_structure. Which entries are superseded or near duplicates depends on
    every batch: a caller judging one batch at a time passes them, found over all (see by_batch).
    The rows are typed as QaResultRecord but not validated here: with_thumbnails validates the table
    once over every batch (pandera's fixed cost per call was paid once per batch). `rules`: those of
    QA_RULES to run, in their order (all by default)."""
    rules = QA_RULES if rules is None else rules
    structure = structure or {}
    superseded = superseded_entries(entries) if superseded is None else superseded
    near_duplicates = (near_duplicate_entries(entries, settings.near_duplicate_bits) if near_duplicates is None
                       else near_duplicates)
    findings = _findings_by_entry(polygons)
    unmapped_by_entry = {
        eid: tuple(labels) for eid, labels in unmapped.group_by("entry_id").agg(pl.col("raw_label").unique().sort()).iter_rows()
    }
    ordered = entries.sort("batch_id", "file_name")
    reasons: list[str | None] = []
    for entry in ordered.iter_rows(named=True):
        evidence = EntryEvidence(
            class_pixels=np.asarray(entry["class_pixels"], dtype=np.int64),
            width=entry["width"],
            height=entry["height"],
            unmapped_labels=unmapped_by_entry.get(entry["entry_id"], ()),
            superseded=superseded.get(entry["entry_id"]),
            polygon_findings=findings.get(entry["entry_id"], {}),
            near_duplicate_of=near_duplicates.get(entry["entry_id"]),
            structure=structure.get(entry["entry_id"], MaskStructure()),
        )
        reasons.extend(rule.check(evidence, taxonomy, settings) for rule in rules)
    return _results(ordered, rules, reasons, taxonomy)


def findings_results(entries: pl.DataFrame, polygons: pl.DataFrame, taxonomy: Taxonomy, settings: QaSettings,
                     rules: tuple[QaRule, ...]) -> pl.DataFrame:
    """evaluate_entries for rules that judge an entry by its shape findings alone (the instance-area
    rule, which by_batch judges in every build): each entry's evidence is its findings, without a
    pass over its mask's pixels and record."""
    findings = _findings_by_entry(polygons)
    ordered = entries.sort("batch_id", "file_name")
    reasons = [rule.check(EntryEvidence(class_pixels=NO_PIXELS, width=0, height=0, unmapped_labels=(), superseded=None,
                                        polygon_findings=findings.get(entry_id, {})), taxonomy, settings)
               for entry_id in ordered["entry_id"] for rule in rules]
    return _results(ordered, rules, reasons, taxonomy)


def _findings_by_entry(polygons: pl.DataFrame | None) -> dict[str, dict[str, tuple[str, ...]]]:
    findings: dict[str, dict[str, tuple[str, ...]]] = {}
    if polygons is not None:
        for (entry_id, check_id), group in polygons.group_by("entry_id", "check_id"):
            findings.setdefault(entry_id, {})[check_id] = tuple(group["reason"].to_list())
    return findings


def _results(ordered: pl.DataFrame, rules: tuple[QaRule, ...], reasons: list[str | None],
             taxonomy: Taxonomy) -> pl.DataFrame:
    """One row per entry of `ordered` and rule, entry after entry, `reasons` in that order: built by
    column, as a row of dicts each was most of the cost."""
    failed = pl.Series("reason", reasons, dtype=pl.String).is_not_null()
    return ordered.select("entry_id", "batch_id", "file_name").gather(
        np.repeat(np.arange(ordered.height), len(rules))).with_columns(
        check_id=pl.Series([rule.id for rule in rules] * ordered.height, dtype=pl.String),
        severity=pl.Series([rule_severity(rule, taxonomy) for rule in rules] * ordered.height, dtype=pl.String),
        passed=~failed,
        excludes_entry=pl.Series([rule.excludes_entry for rule in rules] * ordered.height, dtype=pl.Boolean) & failed,
        reason=pl.Series(reasons, dtype=pl.String),
        thumbnail_key=pl.lit(None, dtype=pl.String),
    ).cast(polars_schema(QaResultRecord))


def excluded_entries(results: pl.DataFrame) -> pl.DataFrame:
    """Entries that a failed excluding rule keeps out of the release, with the first such reason."""
    return (
        results.filter(pl.col("excludes_entry"))
        .sort("entry_id", "check_id")
        .group_by("entry_id", maintain_order=True)
        .agg(pl.format("{}: {}", pl.col("check_id"), pl.col("reason")).first().alias("reason"))
    )


def summarize_rule(results: pl.DataFrame, rule_id: str, limit: int = 20) -> tuple[int, pl.DataFrame]:
    """Failure count of one rule and its first failing entries, for check metadata."""
    failing = results.filter((pl.col("check_id") == rule_id) & ~pl.col("passed"))
    columns = ("batch_id", "file_name", "reason", "thumbnail_key")
    return failing.height, failing.select(columns).sort("thumbnail_key", "batch_id", "file_name", nulls_last=True).head(limit)


def with_thumbnails(results: pl.DataFrame, thumbnails: pl.DataFrame) -> pl.DataFrame:
    """Results with the thumbnail of each failure that has one (see qa_pictures)."""
    joined = results.drop("thumbnail_key").join(thumbnails, on=["entry_id", "check_id"], how="left")
    return QaResultRecord.validate(joined.select(results.columns))
