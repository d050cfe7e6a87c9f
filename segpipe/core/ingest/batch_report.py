"""What one ingested batch amounts to for whoever delivered it: its quarantine by rule, with what to
do about each rule, and whether anything of it could be used at all.

A batch of which nothing could be used (its format unreadable, every item quarantined, or no item
in it) is still ingested: failing its step would leave its partition unmaterialized, which holds up
every later release. So it is reported instead, by the step's metadata, a check and an alert.
"""

from dataclasses import dataclass

import polars as pl

from segpipe.core.ingest.batch import IngestedBatch
from segpipe.core.shared.quarantine_rules import quarantine_rule

SHOWN_FILES = 3  # per rule; the count says how many more
NO_ENTRY_ACTION = ("Check that the batch holds its images and the annotation export that names them; `segpipe "
                   "check-source` on the batch lists what it holds and how each file was used.")


def quarantine_reasons(quarantine: pl.DataFrame) -> pl.DataFrame:
    """One row per rule, the most frequent first: how many entries it quarantined, the first files,
    the message of the first, and what to do (from the rule's declaration)."""
    if quarantine.is_empty():
        return pl.DataFrame(schema={"rule": pl.String, "entries": pl.Int64, "files": pl.String,
                                    "message": pl.String, "what_to_do": pl.String})
    by_rule = (
        quarantine.sort("file_name")
        .group_by("rule")
        .agg(pl.len().cast(pl.Int64).alias("entries"), pl.col("file_name").alias("all_files"),
             pl.col("message").first())
        .sort(["entries", "rule"], descending=[True, False])
    )
    return by_rule.select(
        "rule", "entries",
        pl.col("all_files").map_elements(_listed_files, return_dtype=pl.String).alias("files"),
        "message",
        pl.col("rule").map_elements(lambda rule: quarantine_rule(rule).action, return_dtype=pl.String)
        .alias("what_to_do"),
    )


def _listed_files(files: pl.Series) -> str:
    names = [name or "(the batch itself)" for name in files.to_list()]
    more = len(names) - SHOWN_FILES
    return ", ".join(names[:SHOWN_FILES]) + (f" +{more} more" if more > 0 else "")


@dataclass(frozen=True)
class UnusableBatch:
    """Why nothing of a batch can be released: `problem` in a few words, then the most frequent rule
    with its first file and message, and what to do. `file` is the file that could not be read when
    the format could not be; rule and file are empty for a batch with no item."""

    problem: str
    rule: str
    file: str
    message: str
    what_to_do: str


def unusable_batch(batch: IngestedBatch) -> UnusableBatch | None:
    """None when at least one entry of the batch was accepted."""
    if not batch.images.is_empty():
        return None
    if batch.quarantine.is_empty():
        return UnusableBatch("the batch holds no entry: no image, or no annotation of one", "", "",
                             "nothing to ingest", NO_ENTRY_ACTION)
    reasons = quarantine_reasons(batch.quarantine)
    first = reasons.row(0, named=True)
    example = batch.quarantine.filter(pl.col("rule") == first["rule"]).sort("file_name").row(0, named=True)
    items = "its one item is" if batch.quarantine.height == 1 else f"all {batch.quarantine.height} of its items are"
    file = example["file_name"]
    if batch.source_format is None:
        problem = f"its format could not be read ({first['rule']}), so {items} quarantined"
        rejected = batch.files.filter(pl.col("outcome") == "rejected")["path"]
        file = rejected[0] if rejected.len() else file  # the annotation file that could not be read
    else:
        by_rule = ", ".join(f"{rule} {n}" for rule, n in reasons.select("rule", "entries").iter_rows())
        problem = f"it was read as {batch.source_format}, but {items} quarantined ({by_rule})"
    return UnusableBatch(problem, first["rule"], file, example["message"], first["what_to_do"])
