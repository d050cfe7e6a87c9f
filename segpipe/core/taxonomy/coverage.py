"""Whether a taxonomy maps anything of a batch at all, and the rules its unmapped labels need.

A taxonomy whose rules miss a whole batch (a source without rules, a batch.json `source` that
differs from the rules' key, the packaged placeholder) would draw masks with no class in them. The
build would then fail stages later, in QA or sampling, for a reason that names neither the labels
nor the taxonomy. So mapping stops the batch at once, saying which labels it found.
"""

import json
import re

import polars as pl

from segpipe.core.ingest.formats.annotation import SEGMENTATION_KINDS
from segpipe.core.shared.errors import ConfigProblem
from segpipe.core.shared.batch_tables import BatchTables
from segpipe.core.taxonomy.model import Taxonomy, unmapped_label_report, unmapped_segment, unmapped_segments

SHOWN_LABELS = 12
_PLAIN_YAML = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_. -]*")


def no_label_mapped(batch_id: str, mapped: pl.DataFrame, sources: pl.DataFrame, taxonomy: Taxonomy,
                    origin: str) -> ConfigProblem | None:
    """The problem with `origin` (the taxonomy file) when none of the batch's segmentation shapes
    (`mapped`, map_labels of the batch; `sources`, its entry_id -> source) maps to a class; None
    when one does, or when the batch has nothing to draw."""
    drawn = mapped.filter(pl.col("kind").is_in(sorted(SEGMENTATION_KINDS)))
    if drawn.is_empty() or (drawn["mapping"] == "mapped").any():
        return None
    source = sources.filter(pl.col("entry_id").is_in(drawn["entry_id"].unique().to_list()))["source"].first() or ""
    labels = drawn.group_by("raw_label").len().sort(["len", "raw_label"], descending=[True, False])
    found = ", ".join(f"{label!r} ({n} shape{'s' if n != 1 else ''})"
                      for label, n in labels.head(SHOWN_LABELS).iter_rows())
    more = f" and {labels.height - SHOWN_LABELS} more" if labels.height > SHOWN_LABELS else ""
    rules = taxonomy.rules(source)
    if rules:
        why = f"none of the {len(rules)} rules for source {source!r} matches them: add rules for them there"
    else:
        known = ", ".join(repr(s) for s in sorted(taxonomy.mappings)) or "none"
        why = (f"the taxonomy has no rules for source {source!r} (it has rules for: {known}): set batch.json's "
               f"source to the one whose rules fit, add rules under mappings.{source}")
    return ConfigProblem(origin, None, f"mappings.{source}", (
        f"no label was mapped to a class in batch {batch_id!r}, whose {labels.height} labels are {found}{more}; "
        f"{why}, or start from a taxonomy of these labels, which `segpipe init` writes (docs/taxonomy.md)"))


def unmapped_labels_with_rules(mapped: pl.DataFrame, images: pl.DataFrame, taxonomy: Taxonomy) -> pl.DataFrame:
    """unmapped_label_report of `mapped` (map_labels of shapes; `images` gives entry_id, batch_id,
    file_name and source) with, per label, the rule to add for it: the line to write under its
    source's mappings key, the target left for whoever knows what the label means."""
    report = unmapped_label_report(unmapped_segments(mapped), images)
    return report.with_columns(
        pl.struct("source", "raw_label").map_elements(
            lambda row: rule_to_add(taxonomy, row["source"], row["raw_label"]), return_dtype=pl.String)
        .alias("rule_to_add"))


def unmapped_shapes(mapped: BatchTables) -> pl.DataFrame:
    """The shapes of every batch that unmapped_segments reports, in the columns it reads: each
    batch's shapes read alone, so a dataset's outlines never wait in memory together."""
    columns = ("entry_id", "raw_label", "kind", "mapping")
    found = [shapes.filter(unmapped_segment()) for _, shapes in mapped.each(columns)]
    return pl.concat(found) if found else pl.DataFrame(
        schema={"entry_id": pl.String, "raw_label": pl.String, "kind": pl.String, "mapping": pl.String})


def rule_to_add(taxonomy: Taxonomy, source: str, raw_label: str) -> str:
    """`mappings.<key>: - {label: <label>, to: <class, void or skip>}`, for the key whose rules the
    source uses (an alias answers to its source's key)."""
    label = raw_label if _PLAIN_YAML.fullmatch(raw_label) else json.dumps(raw_label, ensure_ascii=False)
    return f"mappings.{taxonomy.rule_source(source)}: - {{label: {label}, to: <class, void or skip>}}"
