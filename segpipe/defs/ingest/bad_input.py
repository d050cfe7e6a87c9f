"""A batch of which nothing can be released (its format unreadable, every item quarantined): how its
run and its partition are marked, so it stands out in the Runs list and on the asset, and what the
bad-input alert reads back. Ingest never fails for it: an unmaterialized partition would hold up
every later release."""

import dagster as dg

from segpipe.core.ingest.batch_report import UnusableBatch

BAD_INPUT_TAG = "segpipe/bad_input"  # on the run: the unusable batches it ingested
BATCH_USABLE = dg.AssetCheckKey(dg.AssetKey("batch_images"), "batch_usable")
SHOWN_IN_TAG = 5
USABLE_DESCRIPTION = (
    "At least one entry of the batch was accepted: its format was read and not every item was quarantined. "
    "A warning: the batch is ingested all the same (it adds nothing to a release), its run gets the tag "
    f"{BAD_INPUT_TAG}, and the bad_input_alert sensor reports it with the file, the reason and what to do.")


def tag_value(batches: list[str]) -> str:
    """The unusable batches, the first few by name."""
    more = len(batches) - SHOWN_IN_TAG
    return ", ".join(batches[:SHOWN_IN_TAG]) + (f" +{more} more" if more > 0 else "")


def usable_result(batch: str, unusable: UnusableBatch | None) -> dg.AssetCheckResult:
    """The batch_usable result of one batch: the problem, its first file and rule, and what to do."""
    if unusable is None:
        return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN,
                                   metadata={"batch": batch}, description=f"batch {batch}: entries accepted")
    return dg.AssetCheckResult(
        passed=False, severity=dg.AssetCheckSeverity.WARN,
        description=f"Warning: nothing of batch {batch} can be released: {unusable.problem}",
        metadata={"batch": batch, "problem": unusable.problem, "rule": unusable.rule, "file": unusable.file,
                  "message": unusable.message, "what_to_do": unusable.what_to_do},
    )
