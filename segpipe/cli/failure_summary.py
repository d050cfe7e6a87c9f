"""The few lines `segpipe build` and `segpipe backfill` end with when no release came out: which step
or check failed, on which entries and files, and what to do, from the failed run's event log."""

from collections.abc import Callable

import dagster as dg
import polars as pl

from segpipe.cli.run_failure import FailedCheck, RunFailure, StepError
from segpipe.core.qa.rules import QA_RULES
from segpipe.core.shared.quarantine_rules import quarantine_rule
from segpipe.core.taxonomy.model import load_taxonomy
from segpipe.environment import Environment

SHOWN_ENTRIES = 3
SHOWN_ERROR_LINES = 12
QA_REPORT = dg.AssetKey("qa_report")
QA_RULE_BY_ID = {rule.id: rule for rule in QA_RULES}
# What to do about an error a step raises, by its class, when its message does not say where to change it.
STEP_ACTIONS: dict[str, Callable[[Environment], str]] = {
    "InfeasibleSpec": lambda env: (f"Change the distribution spec (`sampling` in {env.pipeline_path}, see "
                                   "docs/sampling.md) as each line says, or land more data."),
    "ConfigError": lambda env: "Fix each line above, then run the command again.",
}


def format_failure(failure: RunFailure, batches: list[str], defs: dg.Definitions, instance: dg.DagsterInstance,
                   env: Environment) -> list[str]:
    """The failed run's steps and checks; for a failed release, also the batches of the build that ingest
    quarantined whole; then where to read the rest."""
    where = f"{failure.job} run {failure.run_id[:8]}" + (f" (batch {failure.partition})" if failure.partition else "")
    lines = [f"RELEASE BLOCKED: {where} failed"]
    for step in failure.steps:
        lines += _step_lines(step, env)
    for check in failure.checks:
        lines += _check_lines(check, defs, env)
    if failure.job == "release_job":
        lines += _quarantined_batches(batches, defs, instance)
    lines.append(f"details: run {failure.run_id} in the Dagster UI (make dev)")
    return lines


def _quarantined_batches(batches: list[str], defs: dg.Definitions, instance: dg.DagsterInstance) -> list[str]:
    """The batches ingest quarantined whole, by rule, with what to do: a release over them has less to
    gate and sample than expected, which is often why its run failed."""
    ingested = instance.get_materialized_partitions(dg.AssetKey("batch_quarantine"))
    lines = []
    for batch in (b for b in batches if b in ingested):
        if not defs.load_asset_value("batch_images", partition_key=batch, instance=instance).is_empty():
            continue
        quarantine = defs.load_asset_value("batch_quarantine", partition_key=batch, instance=instance)
        rules = quarantine.group_by("rule").agg(pl.len(), pl.col("message").first()).sort("len", "rule", descending=[True, False])
        for rule, count, example in rules.iter_rows():
            lines.append(f"batch {batch}: nothing accepted, {count} x {rule} at ingest: e.g. {example}")
            lines.append(f"  what to do: {quarantine_rule(rule).action}")
    return lines


def _step_lines(step: StepError, env: Environment) -> list[str]:
    message = step.message.splitlines()
    hidden = len(message) - SHOWN_ERROR_LINES
    action = STEP_ACTIONS.get(step.error_type)
    return [
        f"step {step.step or '(none: the run failed before any step)'} raised {step.error_type}:",
        *(f"  {line}" for line in message[:SHOWN_ERROR_LINES]),
        *([f"  +{hidden} more lines"] if hidden > 0 else []),
        "  what to do: " + (action(env) if action else "Fix what the error names, then run the command again; the "
                                                        "step's traceback is in the run's log."),
    ]


def _check_lines(check: FailedCheck, defs: dg.Definitions, env: Environment) -> list[str]:
    name, meta = check.key.to_user_string(), check.metadata
    rule = QA_RULE_BY_ID.get(check.key.name) if check.key.asset_key == QA_REPORT else None
    if rule is not None:
        entries = [f"{e['batch_id']}/{e['file_name']}: {e['reason']}" for e in meta["failing_entries"]]
        return [
            f"check {name} failed on {_count(meta['failures'], 'entry', 'entries')}, {meta['allowed_failures']} "
            f"allowed (qa.max_error_failures in {env.pipeline_path})",
            f"  rule: {rule.description}",
            f"  entries: {_first(entries, meta['failures'])}",
            f"  what to do: {rule.action}",
        ]
    if check.key.asset_key == QA_REPORT and check.key.name == "unmapped_labels":
        return _unmapped_lines(name, meta, env)
    values = ", ".join(f"{key}: {value}" for key, value in meta.items() if isinstance(value, int | float | str))
    description = defs.resolve_asset_graph().get_check_spec(check.key).description
    return [f"check {name} failed: {description}", *([f"  {values}"] if values else [])]


def _unmapped_lines(name: str, meta: dict, env: Environment) -> list[str]:
    """The labels no rule maps, per source, and the mappings entry each belongs under."""
    labels = meta["labels"]
    taxonomy = load_taxonomy(env.taxonomy_path)
    rules = sorted({f"mappings.{taxonomy.rule_source(row['source'])}" for row in labels})
    described = [f"{row['raw_label']!r} (source {row['source']}): {_count(row['shapes'], 'shape', 'shapes')} in "
                 f"{_count(row['entries'], 'entry', 'entries')}, e.g. {row['examples']}" for row in labels]
    return [
        f"check {name} failed: {_count(meta['unmapped_labels'], 'label', 'labels')} no rule maps, and the taxonomy "
        f"says unmapped: {meta['policy']}",
        f"  labels: {_first(described, meta['unmapped_labels'])}",
        f"  what to do: Add a rule for each under {', '.join(rules)} in {env.taxonomy_path} (to a class, void or skip), "
        "then run `segpipe backfill`; `segpipe check-source --taxonomy` on a batch lists them too.",
    ]


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _first(items: list[str], total: int) -> str:
    """The first few items, and how many more the check counted."""
    more = total - min(len(items), SHOWN_ENTRIES)
    return "; ".join(items[:SHOWN_ENTRIES]) + (f"; +{more} more" if more > 0 else "")
