"""One Dagster asset check per QA rule; ERROR rules are blocking, so a failure stops the release."""

import dagster as dg
import polars as pl

from segpipe.core.qa import QA_RULES, QaRule, summarize_rule
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


@dg.definitions
def qa_checks() -> dg.Definitions:
    return dg.Definitions(asset_checks=[_build_rule_check(rule) for rule in QA_RULES])
