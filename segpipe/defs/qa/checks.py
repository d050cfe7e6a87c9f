"""The QA gate: one Dagster asset check per QA rule, plus the unmapped-label report and the class
statistics; ERROR checks are blocking, so a failure stops the release.

All of them are evaluated in one step: they read the same tables, and a step per check would cost
a Dagster step each (with its event-log writes) for a table lookup.
"""

import dagster as dg
import polars as pl

from segpipe.core.qa.class_statistics import class_statistics
from segpipe.core.qa.pictures import failure_pictures, problem_colour
from segpipe.core.qa.rules import QA_RULES, excluded_entries, summarize_rule
from segpipe.core.taxonomy.model import unmapped_label_report, unmapped_segments
from segpipe.core.shared.pictures import colour_swatch
from segpipe.defs.metadata import markdown_table, metadata_table
from segpipe.defs.pictures import CHECK_PICTURES, gallery, stored_pictures
from segpipe.defs.retries import OBJECT_STORE_RETRY, only_transient_retried
from segpipe.io.object_store import ObjectStore
from segpipe.io.pipeline_config import PipelineConfig

RULE_SPECS = [dg.AssetCheckSpec(rule.id, asset="qa_report", blocking=rule.severity == "ERROR",
                                description=f"{rule.description} Severity: {rule.severity}. What to do: {rule.action}")
              for rule in QA_RULES]
UNMAPPED_SPEC = dg.AssetCheckSpec(
    "unmapped_labels", asset="qa_report", blocking=True, additional_deps=["mapped_shapes", "batch_images"],
    description="Every unmapped source label, with its shape and entry counts and example files. Blocking when "
                "the taxonomy's unmapped policy is error.")
CLASS_SPECS = [
    dg.AssetCheckSpec("class_never_present", asset="qa_report", additional_deps=["annotation_masks"],
                      description="Every trainable class appears in at least one mask that QA kept. Severity: WARN."),
    dg.AssetCheckSpec("class_imbalance", asset="qa_report", additional_deps=["annotation_masks"], description=(
        "The most common trainable class has at most qa.max_class_imbalance times the pixels of the rarest "
        "one present. Severity: WARN.")),
]


@dg.multi_asset_check(
    name="qa_gate",
    retry_policy=OBJECT_STORE_RETRY,
    specs=[*RULE_SPECS, UNMAPPED_SPEC, *CLASS_SPECS],
    ins={"qa_report": dg.AssetIn("qa_report"), "mapped_shapes": dg.AssetIn("mapped_shapes"),
         "batch_images": dg.AssetIn("batch_images"), "annotation_masks": dg.AssetIn("annotation_masks")},
)
def qa_gate(pipeline_config: PipelineConfig, object_store: ObjectStore, qa_report: pl.DataFrame,
            mapped_shapes: pl.DataFrame, batch_images: pl.DataFrame, annotation_masks: pl.DataFrame):
    """Rules pass while their failures stay within the budget (max_error_failures for ERROR rules,
    none for WARN); unmapped labels block under `unmapped: error`; class statistics warn."""
    with only_transient_retried():
        taxonomy, settings = pipeline_config.taxonomy(), pipeline_config.settings()
        problem = problem_colour(taxonomy)
        for rule in QA_RULES:
            failures, worst = summarize_rule(qa_report, rule.id)
            worst = worst.with_columns(pl.col("thumbnail_key").map_elements(object_store.url, return_dtype=pl.String))
            severity = qa_report.filter(pl.col("check_id") == rule.id)["severity"].first() or rule.severity
            budget = settings.qa.max_error_failures if severity == "ERROR" else 0
            metadata = {"failures": failures, "allowed_failures": budget, "failing_entries": metadata_table(worst)}
            if pictures := failure_pictures(qa_report, rule.id):
                metadata["thumbnails"] = gallery(stored_pictures(object_store, pictures), CHECK_PICTURES)
                metadata["problem_colour"] = dg.MetadataValue.md(
                    f"{colour_swatch(problem)} marks the problem; the mask's colours are in qa_report's legend")
            yield dg.AssetCheckResult(
                asset_key="qa_report", check_name=rule.id, passed=failures <= budget,
                severity=dg.AssetCheckSeverity.ERROR if severity == "ERROR" else dg.AssetCheckSeverity.WARN,
                metadata=metadata,
            )
        report = unmapped_label_report(unmapped_segments(mapped_shapes), batch_images)
        yield dg.AssetCheckResult(
            asset_key="qa_report", check_name="unmapped_labels", passed=report.is_empty(),
            severity=dg.AssetCheckSeverity.ERROR if taxonomy.unmapped == "error" else dg.AssetCheckSeverity.WARN,
            metadata={"unmapped_labels": report.height, "policy": taxonomy.unmapped,
                      "labels": metadata_table(report, max_rows=50)},
        )
        stats = class_statistics(annotation_masks.join(excluded_entries(qa_report), on="entry_id", how="anti"), taxonomy)
        table = dg.MetadataValue.md(markdown_table(stats.table, max_rows=256))
        yield dg.AssetCheckResult(
            asset_key="qa_report", check_name="class_never_present", passed=not stats.never_present,
            severity=dg.AssetCheckSeverity.WARN, metadata={"never_present": stats.never_present, "classes": table})
        limit = settings.qa.max_class_imbalance
        yield dg.AssetCheckResult(
            asset_key="qa_report", check_name="class_imbalance", passed=stats.imbalance is None or stats.imbalance <= limit,
            severity=dg.AssetCheckSeverity.WARN, metadata={"imbalance": stats.imbalance or 0.0, "allowed": limit, "classes": table})


@dg.definitions
def qa_checks() -> dg.Definitions:
    return dg.Definitions(asset_checks=[qa_gate])
