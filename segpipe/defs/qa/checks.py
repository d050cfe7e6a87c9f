"""One Dagster asset check per QA rule; ERROR rules are blocking, so a failure stops the release."""

import dagster as dg
import polars as pl

from segpipe.core.qa import QA_RULES, QaRule, summarize_rule
from segpipe.core.taxonomy import unmapped_label_report, unmapped_segments
from segpipe.defs.metadata import markdown_table
from segpipe.io.pipeline_config import PipelineConfig


def _build_rule_check(rule: QaRule) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset="qa_report",
        name=rule.id,
        description=f"{rule.description} Severity: {rule.severity}.",
        blocking=rule.severity == "ERROR",
    )
    def _rule_check(pipeline_config: PipelineConfig, qa_report: pl.DataFrame) -> dg.AssetCheckResult:
        failures, worst = summarize_rule(qa_report, rule.id)
        severity = qa_report.filter(pl.col("check_id") == rule.id)["severity"].first() or rule.severity
        budget = pipeline_config.settings().qa.max_error_failures if severity == "ERROR" else 0
        return dg.AssetCheckResult(
            passed=failures <= budget,
            severity=dg.AssetCheckSeverity.ERROR if severity == "ERROR" else dg.AssetCheckSeverity.WARN,
            metadata={"failures": failures, "allowed_failures": budget, "failing_entries": dg.MetadataValue.md(markdown_table(worst))},
        )

    return _rule_check


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


@dg.definitions
def qa_checks() -> dg.Definitions:
    return dg.Definitions(asset_checks=[*(_build_rule_check(rule) for rule in QA_RULES), unmapped_labels_check])
