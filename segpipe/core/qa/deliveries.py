"""Which delivery of an image by an annotator counts: the newest.

An annotator who corrects an annotation delivers the image again in a later batch. Of the entries
with the same image content and annotator, the current one comes from the batch that landed last
(`landed_at`, recorded at ingest; batches that landed at the same moment are ordered by id, the
greater id counting as later), and within that batch it is the first file by name. Every entry of
another batch is replaced by it; another file of its own batch is a copy of it. QA excludes both
(rule entry_not_superseded), so consensus, honeypot scoring and the release see one entry per image
and annotator, and the release's ledger names what the current entry replaced.

A delivery's annotator is its pseudonym: a correction is recognised only when it names the same
annotator (batch.json's `annotator`, or the export's) as the entry it corrects.
"""

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class Superseded:
    """Why an entry does not count: the current entry of its image and annotator takes its place."""

    by_entry: str  # the current entry's id
    by_name: str  # the current entry as `<batch>/<file>`
    replaced: bool  # True: delivered again in a later batch (a correction); False: a copy in the same batch

    def reason(self) -> str:
        if self.replaced:
            return f"replaced by {self.by_name}, delivered later"
        return f"same image and annotator as {self.by_name}, earlier in the same batch"


def superseded_entries(entries: pl.DataFrame) -> dict[str, Superseded]:
    """Every entry that is not the current one of its (image content, annotator), by entry id, with
    the entry that is. `entries` has entry_id, batch_id, file_name, image_id, annotator, landed_at."""
    current: dict[tuple[str, str], tuple[str, str, str]] = {}  # (image, annotator) -> (entry, batch, name)
    superseded: dict[str, Superseded] = {}
    newest_first = entries.sort(["landed_at", "batch_id", "file_name"], descending=[True, True, False],
                                nulls_last=True)  # a time unknown (check-source) counts as the oldest
    for eid, batch_id, file_name, image_id, annotator in newest_first.select(
            "entry_id", "batch_id", "file_name", "image_id", "annotator").iter_rows():
        key = (image_id, annotator)
        if key not in current:
            current[key] = (eid, batch_id, f"{batch_id}/{file_name}")
            continue
        by_entry, by_batch, by_name = current[key]
        superseded[eid] = Superseded(by_entry, by_name, replaced=batch_id != by_batch)
    return superseded


def replaced_deliveries(entries: pl.DataFrame) -> dict[str, list[str]]:
    """Per current entry that replaced earlier deliveries, those deliveries as `<batch>/<file>`, sorted."""
    names = {eid: f"{batch_id}/{file_name}" for eid, batch_id, file_name in
             entries.select("entry_id", "batch_id", "file_name").iter_rows()}
    replaced: dict[str, list[str]] = {}
    for eid, why in superseded_entries(entries).items():
        if why.replaced:
            replaced.setdefault(why.by_entry, []).append(names[eid])
    return {eid: sorted(found) for eid, found in replaced.items()}
