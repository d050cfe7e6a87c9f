"""One Dagster asset check per QA rule; ERROR rules are blocking, so a failure stops the release.

The rule checks are evaluated together in one step: they all read the same qa_report, and a
step per rule would cost a Dagster step each (with its event-log writes) for a table lookup.
"""

import dagster as dg
import polars as pl

from segpipe.core.class_statistics import class_statistics
from segpipe.core.qa import QA_RULES, excluded_entries, summarize_rule
from segpipe.core.taxonomy import unmapped_label_report, unmapped_segments
from segpipe.defs.metadata import markdown_table
from segpipe.io.object_store import ObjectStore
from segpipe.io.pipeline_config import PipelineConfig


@dg.multi_asset_check(
    name="qa_rules",
    specs=[dg.AssetCheckSpec(rule.id, asset="qa_report", description=f"{rule.description} Severity: {rule.severity}.",
                             blocking=rule.severity == "ERROR") for rule in QA_RULES],
)
def qa_rule_checks(pipeline_config: PipelineConfig, object_store: ObjectStore, qa_report: pl.DataFrame):
    """Each rule passes while its failures stay within the budget: max_error_failures for ERROR rules, none for WARN."""
    allowed_errors = pipeline_config.settings().qa.max_error_failures
    for rule in QA_RULES:
        failures, worst = summarize_rule(qa_report, rule.id)
        worst = worst.with_columns(pl.col("thumbnail_key").map_elements(object_store.url, return_dtype=pl.String))
        severity = qa_report.filter(pl.col("check_id") == rule.id)["severity"].first() or rule.severity
        budget = allowed_errors if severity == "ERROR" else 0
        yield dg.AssetCheckResult(
            asset_key="qa_report",
            check_name=rule.id,
            passed=failures <= budget,
            severity=dg.AssetCheckSeverity.ERROR if severity == "ERROR" else dg.AssetCheckSeverity.WARN,
            metadata={"failures": failures, "allowed_failures": budget, "failing_entries": dg.MetadataValue.md(markdown_table(worst))},
        )


@dg.asset_check(
    asset="qa_report",
    name="unmapped_labels",
    description="Every unmapped source label, with its shape and entry counts and example files. Blocking when "
                "the taxonomy's unmapped policy is error.",
    blocking=True,
    additional_ins={"mapped_shapes": dg.AssetIn("mapped_shapes"), "batch_images": dg.AssetIn("batch_images")},
)
def unmapped_labels_check(
    pipeline_config: PipelineConfig, qa_report: pl.DataFrame, mapped_shapes: pl.DataFrame, batch_images: pl.DataFrame,
) -> dg.AssetCheckResult:
    report = unmapped_label_report(unmapped_segments(mapped_shapes), batch_images)
    policy = pipeline_config.taxonomy().unmapped
    return dg.AssetCheckResult(
        passed=report.is_empty(),
        severity=dg.AssetCheckSeverity.ERROR if policy == "error" else dg.AssetCheckSeverity.WARN,
        metadata={"unmapped_labels": report.height, "policy": policy,
                  "labels": dg.MetadataValue.md(markdown_table(report.head(50)))},
    )


@dg.multi_asset_check(
    name="class_statistics",
    specs=[
        dg.AssetCheckSpec("class_never_present", asset="qa_report", additional_deps=["annotation_masks"],
                          description="Every trainable class appears in at least one mask that QA kept. Severity: WARN."),
        dg.AssetCheckSpec("class_imbalance", asset="qa_report", additional_deps=["annotation_masks"], description=(
            "The most common trainable class has at most qa.max_class_imbalance times the pixels of the rarest "
            "one present. Severity: WARN.")),
    ],
    ins={"qa_report": dg.AssetIn("qa_report"), "annotation_masks": dg.AssetIn("annotation_masks")},
)
def class_statistics_checks(pipeline_config: PipelineConfig, qa_report: pl.DataFrame, annotation_masks: pl.DataFrame):
    """Pixels per class over the masks QA kept, with their share, in both checks' metadata."""
    taxonomy, settings = pipeline_config.taxonomy(), pipeline_config.settings()
    kept = annotation_masks.join(excluded_entries(qa_report), on="entry_id", how="anti")
    stats = class_statistics(kept, taxonomy)
    table = dg.MetadataValue.md(markdown_table(stats.table, max_rows=256))
    yield dg.AssetCheckResult(
        asset_key="qa_report", check_name="class_never_present", passed=not stats.never_present,
        severity=dg.AssetCheckSeverity.WARN, metadata={"never_present": stats.never_present, "classes": table})
    limit = settings.qa.max_class_imbalance
    yield dg.AssetCheckResult(
        asset_key="qa_report", check_name="class_imbalance", passed=stats.imbalance is None or stats.imbalance <= limit,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"imbalance": stats.imbalance or 0.0, "allowed": limit, "classes": table})


@dg.definitions
def qa_checks() -> dg.Definitions:
    return dg.Definitions(asset_checks=[qa_rule_checks, unmapped_labels_check, class_statistics_checks])
