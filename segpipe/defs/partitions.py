"""The batch partitions, and how a step over several of them gives each batch its own check result.

A batch stage runs the batches of a backfill in runs of up to BACKFILL_RUN_BATCHES, each run one
step over its batches (BATCH_BACKFILL_POLICY, for a backfill launched from the UI as for `segpipe
backfill`): fewer runs than one per batch, and a step's memory that of its run's batches, not of
every batch. Its metadata is added per partition (`context.add_asset_metadata(...,
partition_key=batch)`), and its batch checks are declared per partition
(`partitions_def=annotation_batches`, a preview feature of Dagster 1.13). Dagster's
AssetCheckResult takes its partition from the run, which a run over several partitions has not,
and a check's result may be yielded once per step; so each batch's result is yielded as an
evaluation of its own partition, and the check's output once.
"""

from collections.abc import Iterator, Mapping

import dagster as dg

annotation_batches = dg.DynamicPartitionsDefinition(name="annotation_batches")
# Batches per run of a backfill: their tables are in memory together in a batch stage's step, so its
# memory stays that of this many batches however many there are, at a run's overhead per chunk.
BACKFILL_RUN_BATCHES = 10
BATCH_BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=BACKFILL_RUN_BATCHES)
# Tag of a run over several batches that shares the machine with other such runs (`segpipe backfill
# --workers N`): its drawing step computes the release's annotations of the masks it makes, as a
# batch's own run does, instead of leaving them to the release (see annotation_masks).
PARALLEL_RUN_TAG = "segpipe/parallel_run"


def batch_check_spec(name: str, asset: str, description: str) -> dg.AssetCheckSpec:
    """A check of one batch, shown per partition; a warning, so it never holds a batch up."""
    return dg.AssetCheckSpec(name, asset=asset, partitions_def=annotation_batches, blocking=False,
                             description=description)


def batch_check_results(
    context: dg.AssetExecutionContext, asset: str, check_name: str, results: Mapping[str, dg.AssetCheckResult],
) -> Iterator[dg.AssetCheckEvaluation | dg.Output]:
    """Each batch's result (`results`: batch -> its AssetCheckResult) as an evaluation of its
    partition, then the check's output; nothing when the run did not select the check."""
    key = dg.AssetCheckKey(dg.AssetKey(asset), check_name)
    if key not in context.selected_asset_check_keys:
        return
    blocking = context.assets_def.get_spec_for_check_key(key).blocking
    for batch, result in results.items():
        yield dg.AssetCheckEvaluation(
            asset_key=key.asset_key, check_name=check_name, passed=result.passed, metadata=result.metadata,
            severity=result.severity, description=result.description, blocking=blocking, partition=batch)
    yield dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(key))
