"""The QA gate: one Dagster asset check per QA rule, plus the unmapped-label report and the class
statistics. Which of them block follows the policy in force when the definitions load: ERROR rules
and, under the taxonomy's `unmapped: error`, the unmapped labels; everything else is a warning,
declared non-blocking and described as such, so the UI never calls a warning blocking.

All of them are evaluated in one step: they read the same tables, and a step per check would cost
a Dagster step each (with its event-log writes) for a table lookup.
"""

import dagster as dg
import polars as pl

from segpipe.core.qa.class_statistics import class_statistics
from segpipe.core.qa.pictures import failure_pictures, problem_colour
from segpipe.core.qa.rules import QA_RULES, QaRule, Severity, excluded_entries, rule_severity, summarize_rule, \
    unmapped_labels_severity
from segpipe.core.shared.pictures import colour_swatch
from segpipe.core.shared.batch_tables import BatchTables
from segpipe.core.shared.class_pixels import concat_sparse
from segpipe.core.taxonomy.coverage import unmapped_labels_with_rules, unmapped_shapes
from segpipe.core.taxonomy.model import Taxonomy, load_taxonomy
from segpipe.defs.metadata import md_table, metadata_table, readable
from segpipe.defs.pictures import CHECK_PICTURES, gallery, stored_pictures
from segpipe.defs.retries import OBJECT_STORE_RETRY, only_transient_retried
from segpipe.environment import current_environment
from segpipe.io.object_store import ObjectStore
from segpipe.io.pipeline_config import PipelineConfig

UNMAPPED_EFFECT = {"void": "their pixels are painted as ignore_index", "ignore": "their shapes are not drawn"}


def effect(severity: Severity, when: str = "when it fails") -> str:
    """What a failed check of this severity does, in the words its description and result use."""
    if severity == "ERROR":
        return f"an error: {when}, it stops the release (a blocking check)"
    return "a warning: a failure is reported and the release goes on"


def rule_spec(rule: QaRule, taxonomy: Taxonomy) -> dg.AssetCheckSpec:
    severity = rule_severity(rule, taxonomy)
    policy = f" (taxonomy unmapped: {taxonomy.unmapped})" if rule.id == "labels_mapped" else ""
    when = "when more entries fail than qa.max_error_failures allows"
    return dg.AssetCheckSpec(rule.id, asset="qa_report", blocking=severity == "ERROR", description=(
        f"{rule.description} Under the current policy{policy}, {effect(severity, when)}. What to do: {rule.action}"))


def unmapped_spec(taxonomy: Taxonomy) -> dg.AssetCheckSpec:
    severity = unmapped_labels_severity(taxonomy)
    if severity == "ERROR":
        policy = f"Under the current taxonomy (unmapped: error), {effect(severity)}."
    else:
        policy = (f"Under the current taxonomy (unmapped: {taxonomy.unmapped}), {effect(severity)}: "
                  f"{UNMAPPED_EFFECT[taxonomy.unmapped]}. With unmapped: error it would stop the release.")
    return dg.AssetCheckSpec(
        "unmapped_labels", asset="qa_report", blocking=severity == "ERROR",
        additional_deps=["mapped_shapes", "batch_images"],
        description=f"Every unmapped source label, with its shape and entry counts, example files and the rule to "
                    f"add. {policy} The policy is read when the definitions load: reload them after changing it.")


CLASS_SPECS = [
    dg.AssetCheckSpec("class_never_present", asset="qa_report", additional_deps=["annotation_masks"],
                      description=f"Every trainable class appears in at least one mask that QA kept; {effect('WARN')}."),
    dg.AssetCheckSpec("class_imbalance", asset="qa_report", additional_deps=["annotation_masks"], description=(
        "The most common trainable class has at most qa.max_class_imbalance times the pixels of the rarest "
        f"one present; {effect('WARN')}.")),
]


class PolicyChanged(Exception):
    """The taxonomy's unmapped policy now makes a check an error that was declared non-blocking."""


def qa_gate_checks(taxonomy: Taxonomy) -> dg.AssetChecksDefinition:
    """The gate as declared under `taxonomy` (the one in force when the definitions load)."""
    specs = [*(rule_spec(rule, taxonomy) for rule in QA_RULES), unmapped_spec(taxonomy), *CLASS_SPECS]
    declared_blocking = {spec.name: spec.blocking for spec in specs}

    @dg.multi_asset_check(
        name="qa_gate",
        retry_policy=OBJECT_STORE_RETRY,
        specs=specs,
        ins={"qa_report": dg.AssetIn("qa_report"), "mapped_shapes": dg.AssetIn("mapped_shapes"),
             "batch_images": dg.AssetIn("batch_images"), "annotation_masks": dg.AssetIn("annotation_masks")},
    )
    def qa_gate(pipeline_config: PipelineConfig, object_store: ObjectStore, qa_report: pl.DataFrame,
                mapped_shapes: BatchTables, batch_images: BatchTables, annotation_masks: BatchTables):
        yield from gate_results(declared_blocking, pipeline_config, object_store, qa_report, mapped_shapes,
                                batch_images, annotation_masks)

    return qa_gate


def gate_results(declared_blocking: dict[str, bool], pipeline_config: PipelineConfig, object_store: ObjectStore,
                 qa_report: pl.DataFrame, mapped_shapes: BatchTables, batch_images: BatchTables,
                 annotation_masks: BatchTables):
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
            _refuse_undeclared_error(rule.id, severity, failures > budget, declared_blocking, pipeline_config)
            metadata = {"failures": failures, "allowed_failures": budget, "failing_entries": metadata_table(worst, total=failures)}
            if pictures := failure_pictures(qa_report, rule.id):
                metadata["thumbnails"] = gallery(stored_pictures(object_store, pictures), CHECK_PICTURES)
                metadata["problem_colour"] = dg.MetadataValue.md(
                    f"{colour_swatch(problem)} marks the problem; the mask's colours are in qa_report's legend")
            yield dg.AssetCheckResult(
                asset_key="qa_report", check_name=rule.id, passed=failures <= budget,
                severity=dg.AssetCheckSeverity.ERROR if severity == "ERROR" else dg.AssetCheckSeverity.WARN,
                description=_outcome(failures, budget, severity),
                metadata=metadata,
            )
        report = unmapped_labels_with_rules(unmapped_shapes(mapped_shapes), batch_images.concat(
            ("entry_id", "batch_id", "file_name", "source")), taxonomy)
        severity = unmapped_labels_severity(taxonomy)
        _refuse_undeclared_error("unmapped_labels", severity, not report.is_empty(), declared_blocking,
                                 pipeline_config)
        yield dg.AssetCheckResult(
            asset_key="qa_report", check_name="unmapped_labels", passed=report.is_empty(),
            severity=dg.AssetCheckSeverity.ERROR if severity == "ERROR" else dg.AssetCheckSeverity.WARN,
            description=_unmapped_outcome(report.height, taxonomy),
            metadata={"unmapped_labels": report.height, "policy": taxonomy.unmapped,
                      "labels": metadata_table(report, max_rows=50)},
        )
        masks = concat_sparse(annotation_masks, ("entry_id", "class_pixels"))
        stats = class_statistics(masks.join(excluded_entries(qa_report), on="entry_id", how="anti"), taxonomy)
        table = md_table(stats.table, max_rows=256, percent=("pixel_share",))
        yield dg.AssetCheckResult(
            asset_key="qa_report", check_name="class_never_present", passed=not stats.never_present,
            severity=dg.AssetCheckSeverity.WARN, metadata={"never_present": stats.never_present, "classes": table})
        limit = settings.qa.max_class_imbalance
        yield dg.AssetCheckResult(
            asset_key="qa_report", check_name="class_imbalance", passed=stats.imbalance is None or stats.imbalance <= limit,
            severity=dg.AssetCheckSeverity.WARN,
            metadata=readable({"imbalance": stats.imbalance or 0.0, "allowed": limit, "classes": table}))


def _outcome(failures: int, budget: int, severity: str) -> str:
    """The result in words: a warning reads as a warning, an error says it stops the release."""
    entries = f"{failures} {'entry fails' if failures == 1 else 'entries fail'} the rule"
    if failures == 0:
        return "every entry passes"
    if severity == "ERROR":
        return f"{entries}, {budget} allowed" + ("; the release is stopped" if failures > budget else "")
    return f"Warning: {entries}; the release goes on"


def _unmapped_outcome(labels: int, taxonomy: Taxonomy) -> str:
    if labels == 0:
        return "every label maps"
    found = f"{labels} {'label' if labels == 1 else 'labels'} no rule maps"
    if taxonomy.unmapped == "error":
        return f"{found}; the taxonomy says unmapped: error, so the release is stopped"
    return (f"Warning: {found}; the taxonomy says unmapped: {taxonomy.unmapped}, so "
            f"{UNMAPPED_EFFECT[taxonomy.unmapped]} and the release goes on")


def _refuse_undeclared_error(check: str, severity: str, fails: bool, declared_blocking: dict[str, bool],
                             pipeline_config: PipelineConfig) -> None:
    """A check the taxonomy now makes an error, but declared non-blocking when the definitions loaded
    under another policy, would let the release through: stop the step instead, saying why."""
    if fails and severity == "ERROR" and not declared_blocking[check]:
        raise PolicyChanged(
            f"{pipeline_config.taxonomy_path} now says unmapped: error, but the definitions were loaded under "
            f"another policy, so check {check} was declared as a warning and would not stop the release. Reload "
            "the definitions (Reload definitions in the Dagster UI, or restart it) and run the release again.")


@dg.definitions
def qa_checks() -> dg.Definitions:
    """Declared under the taxonomy of the environment: a broken taxonomy fails the load, naming the key."""
    return dg.Definitions(asset_checks=[qa_gate_checks(load_taxonomy(current_environment().taxonomy_path))])
