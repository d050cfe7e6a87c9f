"""Whether a taxonomy maps anything of a batch at all.

A taxonomy whose rules miss a whole batch (a source without rules, a batch.json `source` that
differs from the rules' key, the packaged placeholder) would draw masks with no class in them. The
build would then fail stages later, in QA or sampling, for a reason that names neither the labels
nor the taxonomy. So mapping stops the batch at once, saying which labels it found.
"""

import polars as pl

from segpipe.core.ingest.formats.annotation import SEGMENTATION_KINDS
from segpipe.core.shared.errors import ConfigProblem
from segpipe.core.taxonomy.model import Taxonomy

SHOWN_LABELS = 12


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
    found = ", ".join(f"{label!r} ({n} shapes)" for label, n in labels.head(SHOWN_LABELS).iter_rows())
    more = f" and {labels.height - SHOWN_LABELS} more" if labels.height > SHOWN_LABELS else ""
    rules = taxonomy.mappings.get(source, ())
    if rules:
        why = f"none of the {len(rules)} rules for source {source!r} matches them: add rules for them there"
    else:
        known = ", ".join(repr(s) for s in sorted(taxonomy.mappings)) or "none"
        why = (f"the taxonomy has no rules for source {source!r} (it has rules for: {known}): set batch.json's "
               f"source to the one whose rules fit, add rules under mappings.{source}")
    return ConfigProblem(origin, None, f"mappings.{source}", (
        f"no label was mapped to a class in batch {batch_id!r}, whose {labels.height} labels are {found}{more}; "
        f"{why}, or start from a taxonomy of these labels, which `segpipe init` writes (docs/taxonomy.md)"))
